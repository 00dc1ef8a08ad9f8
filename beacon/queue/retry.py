"""Retry policy: exponential backoff with full jitter, up to a budget of attempts.

Pure and separate from the queue mechanism, so the worker decides *whether* and *when* and the queue
only does *how*. "Full jitter" (delay drawn uniformly from [0, min(cap, base·2^(n-1))]) spreads
retries of a failed batch instead of having them stampede the backend together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    """Attempts in all (the first included); after the last one the message is dead-lettered."""
    base_s: float = 1.0
    max_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_s <= 0 or self.max_s < self.base_s:
            raise ValueError("need 0 < base_s <= max_s")

    def budget(self, override: int | None = None) -> int:
        """The attempt budget of one message: its own if it carries one, else the policy's."""
        return override if override is not None else self.max_attempts

    def exhausted(self, attempts: int, override: int | None = None) -> bool:
        """True when ``attempts`` attempts have used the whole budget."""
        return attempts >= self.budget(override)

    def ceiling(self, attempts: int) -> float:
        """The largest delay after the ``attempts``-th failed attempt (1-based)."""
        exponent = max(0, attempts - 1)
        if exponent >= 63:
            return self.max_s
        return float(min(self.max_s, self.base_s * (2**exponent)))

    def delay(self, attempts: int) -> float:
        """How long to wait after the ``attempts``-th failed attempt: uniform in [0, ceiling]."""
        return self.rng.uniform(0.0, self.ceiling(attempts))
