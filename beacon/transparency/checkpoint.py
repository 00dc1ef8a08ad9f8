"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the signed statement of a log's size and root.

The note text is exactly three lines — origin, decimal tree size (no leading zeros), base64 root
hash — optionally followed by non-empty extension lines. It is signed as a C2SP signed note
(:mod:`beacon.transparency.note`); Beacon's log signs under a key named after its origin.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass

from beacon.errors import VerificationError
from beacon.transparency.merkle import HASH_SIZE
from beacon.transparency.note import Note, NoteError, Signer, Verifier, b64decode_strict, open_note, sign_note


class CheckpointError(VerificationError):
    """A checkpoint is malformed, unsigned by a known key, or from another log."""

    code = "bad_checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("the origin is one non-empty line")
        if self.size < 0:
            raise CheckpointError("the tree size is not negative")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"the root hash has {HASH_SIZE} bytes")
        if any(not line or "\n" in line for line in self.extensions):
            raise CheckpointError("extension lines are single non-empty lines")

    def text(self) -> str:
        """The note text (before signing)."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii"), *self.extensions]
        return "\n".join(lines) + "\n"

    def sign(self, signer: Signer) -> str:
        """The signed note of this checkpoint."""
        return sign_note(self.text(), [signer])

    @classmethod
    def parse_text(cls, text: str) -> Checkpoint:
        """Read the note text of a checkpoint (no signature check)."""
        if not text.endswith("\n"):
            raise CheckpointError("the checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("a checkpoint has an origin, a size and a root line")
        origin, size_text, root_text, *extensions = lines
        if not re.fullmatch(r"0|[1-9][0-9]*", size_text):
            raise CheckpointError(f"the tree size {size_text[:30]!r} is not a decimal without leading zeros")
        try:
            root = b64decode_strict(root_text)
        except NoteError as exc:
            raise CheckpointError("the root hash is not base64") from exc
        return cls(origin, int(size_text), root, tuple(extensions))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with the signed note it was read from."""

    checkpoint: Checkpoint
    note: str
    verified_by: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def open_checkpoint(note: str, verifiers: Iterable[Verifier], origin: str | None = None) -> SignedCheckpoint:
    """Verify a signed checkpoint note and parse it; ``origin`` pins the log it must come from."""
    try:
        opened: Note = open_note(note, verifiers)
    except NoteError as exc:
        raise CheckpointError(f"checkpoint signature: {exc}") from exc
    checkpoint = Checkpoint.parse_text(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"the checkpoint is from log {checkpoint.origin!r}, not {origin!r}")
    return SignedCheckpoint(checkpoint, note, tuple(opened.verified_by()))
