"""Which keys T+45 verifies against: pinned ones, or the runner's own (trusted on first use).

Without pins, the receipts and checkpoints of a runner are verified with the keys that same runner
serves (``GET /api/v1/keys``, ``/api/v1/transparency/keys``) — that proves internal consistency, not
who signed. ``beacon day1 --runner-key K --log-key V`` (or ``--pin-from`` a previous run's
``attestation.json``) pins the keys: only those verify, and a key the runner serves that is not
pinned is reported. The harness hands the pins to the phases in ``BEACON_PINNED_KEYS`` (JSON).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from beacon.harness.attest import _public_keys, _vkeys

ENV = "BEACON_PINNED_KEYS"

TrustMode = Literal["pinned", "trust_on_first_use"]


class PinError(ValueError):
    """A pinned key or the attestation to pin from cannot be read."""


@dataclass(frozen=True)
class PinnedKeys:
    """Runner receipt keys (base64 Ed25519) and log verifier keys (C2SP vkeys) to trust."""

    runner: tuple[str, ...] = ()
    log: tuple[str, ...] = ()
    source: str = "command line"

    def to_env(self) -> str:
        return json.dumps({"runner": list(self.runner), "log": list(self.log), "source": self.source})


@dataclass(frozen=True)
class TrustDecision:
    """The keys a phase verifies with, and how they were chosen."""

    mode: TrustMode
    runner_keys: list[str]
    log_keys: list[str]
    source: str
    unpinned_served: dict[str, list[str]] = field(default_factory=dict)
    """Keys the runner serves that were not pinned (they verify nothing)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def described(self) -> str:
        if self.mode == "trust_on_first_use":
            return "trusted on first use: the keys the runner under test serves"
        extra = sum(len(v) for v in self.unpinned_served.values())
        return f"pinned ({self.source})" + (
            f"; the runner also serves {extra} unpinned key(s)" if extra else ""
        )


def pinned_keys(
    runner_keys: Sequence[str], log_keys: Sequence[str], attestation: Path | None = None
) -> PinnedKeys | None:
    """Pins from the command line and/or a previous run's attestation; None when nothing is pinned."""
    from beacon.transparency.note import NoteError, Verifier

    runner = list(runner_keys)
    log = list(log_keys)
    sources = ["command line"] if runner or log else []
    if attestation is not None:
        path = attestation / "attestation.json" if attestation.is_dir() else attestation
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PinError(f"{path}: cannot read the attestation to pin keys from ({exc})") from exc
        if not isinstance(record, dict):
            raise PinError(f"{path}: not an attestation record")
        runner += _public_keys(record.get("runner_keys"))
        log += _vkeys(record.get("log_keys"))
        sources.append(str(path))
    for vkey in log:
        try:
            Verifier.parse(vkey)
        except NoteError as exc:
            raise PinError(f"--log-key {vkey[:40]!r}: {exc}") from exc
    for key in runner:
        if len(key) < 40:
            raise PinError(f"--runner-key {key!r}: not a base64 Ed25519 public key")
    if not runner and not log:
        return None
    return PinnedKeys(tuple(dict.fromkeys(runner)), tuple(dict.fromkeys(log)), " + ".join(sources))


def load_pins(environ: Mapping[str, str] | None = None) -> PinnedKeys | None:
    """The pins the harness passed to this phase (None: nothing pinned)."""
    text = (environ if environ is not None else os.environ).get(ENV)
    if not text:
        return None
    data = json.loads(text)
    return PinnedKeys(tuple(data.get("runner") or ()), tuple(data.get("log") or ()), str(data.get("source")))


def keys_to_trust(
    served_runner: Mapping[str, Any], served_log: Mapping[str, Any], pins: PinnedKeys | None
) -> TrustDecision:
    """Pinned keys where given (per kind), else the runner's own, and which of the served ones are unpinned."""
    runner_served = _public_keys(dict(served_runner))
    log_served = _vkeys(dict(served_log))
    if pins is None:
        return TrustDecision("trust_on_first_use", runner_served, log_served, "the runner under test")
    runner = list(pins.runner) or runner_served
    log = list(pins.log) or log_served
    unpinned = {
        "runner": [k for k in runner_served if pins.runner and k not in pins.runner],
        "log": [k for k in log_served if pins.log and k not in pins.log],
    }
    source = pins.source
    if not pins.runner or not pins.log:
        source += " (the " + ("runner" if not pins.runner else "log") + " keys trusted on first use)"
    return TrustDecision("pinned", runner, log, source, {k: v for k, v in unpinned.items() if v})
