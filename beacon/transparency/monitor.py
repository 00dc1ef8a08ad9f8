"""A log monitor: follow a runner's checkpoints and prove each one extends the last one seen.

The monitor trusts nothing the runner says beyond what it can check: every checkpoint's signature
(with the log's verifier keys), and a consistency proof between the last checkpoint it accepted and
the new one, verified against the two *signed* roots. Two signed checkpoints that cannot be proven
consistent are a fork (:class:`ForkDetected`) — the evidence (both notes) is kept in the exception.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from beacon.errors import ExitCode, VerificationError
from beacon.transparency.checkpoint import SignedCheckpoint, open_checkpoint
from beacon.transparency.merkle import ProofError, verify_consistency
from beacon.transparency.note import Verifier


class ForkDetected(VerificationError):
    """Two signed checkpoints of the log that are not consistent with each other."""

    code = "log_forked"
    exit_code = (
        ExitCode.UNTRUSTED
    )  # each checkpoint verifies; the log that signed both does not deserve trust

    def __init__(self, message: str, old_note: str, new_note: str) -> None:
        super().__init__(message)
        self.old_note = old_note
        self.new_note = new_note


class LogSource(Protocol):
    """What the monitor reads (``BeaconClient`` satisfies it)."""

    def checkpoint(self) -> str: ...

    def consistency_proof(self, first: int, second: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Poll:
    event: str
    """``first`` (nothing seen before), ``same``, ``grew`` (proven consistent) or ``stale`` (an older
    checkpoint than one already seen, proven consistent with it)."""
    size: int
    root: bytes
    previous_size: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "size": self.size,
            "root": self.root.hex(),
            "previous_size": self.previous_size,
        }


class Monitor:
    def __init__(
        self, source: LogSource, verifiers: Sequence[Verifier], last_note: str | None = None
    ) -> None:
        self.source = source
        self.verifiers = list(verifiers)
        self.last: SignedCheckpoint | None = None
        if last_note is not None:
            self.last = open_checkpoint(last_note, self.verifiers)

    def _prove(self, old: SignedCheckpoint, new: SignedCheckpoint) -> None:
        if old.size == new.size:
            if old.root != new.root:
                raise ForkDetected(f"two signed roots for tree size {old.size}", old.note, new.note)
            return
        if old.size == 0:
            return  # every tree extends the empty tree
        body = self.source.consistency_proof(old.size, new.size)
        try:
            proof = [bytes.fromhex(h) for h in body.get("proof", [])]
            verify_consistency(old.size, new.size, old.root, new.root, proof)
        except (ProofError, ValueError, TypeError) as exc:
            raise ForkDetected(
                f"checkpoint {new.size} is not consistent with checkpoint {old.size}: {exc}",
                old.note,
                new.note,
            ) from exc

    def poll(self) -> Poll:
        """Fetch the latest checkpoint, check it, and prove it consistent with the last one accepted."""
        note = self.source.checkpoint()
        origin = self.last.checkpoint.origin if self.last else None
        new = open_checkpoint(note, self.verifiers, origin)
        previous = self.last
        if previous is None:
            self.last = new
            return Poll("first", new.size, new.root, None)
        if new.size < previous.size:
            self._prove(new, previous)
            return Poll("stale", new.size, new.root, previous.size)
        self._prove(previous, new)
        self.last = new
        return Poll("same" if new.size == previous.size else "grew", new.size, new.root, previous.size)


def load_state(path: Path) -> tuple[str | None, list[str]]:
    """The last accepted checkpoint note and the verifier keys pinned at ``path`` (if it exists)."""
    if not path.exists():
        return None, []
    data = json.loads(path.read_text(encoding="utf-8"))
    note = data.get("checkpoint")
    vkeys = [str(v) for v in data.get("vkeys") or []]
    return (note if isinstance(note, str) else None), vkeys


def save_state(path: Path, monitor: Monitor) -> None:
    """Keep the last accepted checkpoint and the keys it was checked with (a later run pins them)."""
    if monitor.last is None:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = {
        "checkpoint": monitor.last.note,
        "size": monitor.last.size,
        "root": monitor.last.root.hex(),
        "vkeys": [v.vkey for v in monitor.verifiers],
    }
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    tmp.replace(path)
