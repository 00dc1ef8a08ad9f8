"""RetryPolicy: exponential backoff with full jitter, a budget, per-message overrides."""

from __future__ import annotations

import random

import pytest

from beacon.queue.retry import RetryPolicy


def test_the_ceiling_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=1.0, max_s=30.0)
    assert [policy.ceiling(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert policy.ceiling(10_000) == 30.0  # no overflow however many attempts


def test_delays_are_jittered_within_the_ceiling() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=0.5, max_s=60.0, rng=random.Random(7))
    delays = [policy.delay(4) for _ in range(500)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert max(delays) - min(delays) > 2.0  # spread out, not a stampede at the same instant


def test_the_budget_counts_every_attempt_and_a_message_may_carry_its_own() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert policy.exhausted(3, override=5) is False
    assert policy.exhausted(1, override=1) is True


@pytest.mark.parametrize(("attempts", "base", "cap"), [(0, 1.0, 1.0), (1, 0.0, 1.0), (1, 2.0, 1.0)])
def test_nonsense_policies_are_refused(attempts: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=attempts, base_s=base, max_s=cap)
