"""c2sp.org/tlog-proof@v1: an inclusion proof bound to a signed checkpoint, as one text file.

::

    c2sp.org/tlog-proof@v1
    extra <base64>          (optional, opaque to the log)
    index <leaf index>
    <base64 hash>           (the inclusion proof, one hash per line, leaf side first)
    ...
                            (blank line)
    <the signed checkpoint, verbatim, with every signature>

Verifying it needs only the entry (or its leaf hash) and the log's verifier key: the checkpoint's
signature, then the inclusion of the leaf in the tree of the checkpoint's size and root.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from beacon.errors import VerificationError
from beacon.transparency.checkpoint import CheckpointError, SignedCheckpoint, open_checkpoint
from beacon.transparency.merkle import HASH_SIZE, ProofError, leaf_hash, verify_inclusion
from beacon.transparency.note import NoteError, Verifier, b64decode_strict

HEADER = "c2sp.org/tlog-proof@v1"


class TlogProofError(VerificationError):
    """A tlog-proof is malformed or does not verify; the message says which part failed."""

    code = "bad_inclusion_proof"


@dataclass(frozen=True)
class TlogProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode("ascii"))
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode("ascii") for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint_note

    @classmethod
    def parse(cls, text: str) -> TlogProof:
        head, sep, checkpoint_note = text.partition("\n\n")
        if not sep:
            raise TlogProofError("a tlog-proof has a blank line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise TlogProofError(f"the first line must be {HEADER!r}")
        rest = lines[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            try:
                extra = b64decode_strict(rest.pop(0)[len("extra ") :])
            except NoteError as exc:
                raise TlogProofError("the extra line is not base64") from exc
        if not rest or not re.fullmatch(r"index (0|[1-9][0-9]*)", rest[0]):
            raise TlogProofError("expected an 'index N' line (decimal, no leading zeros)")
        index = int(rest.pop(0)[len("index ") :])
        hashes = []
        for line in rest:
            try:
                value = b64decode_strict(line)
            except NoteError as exc:
                raise TlogProofError(f"proof line {line[:50]!r} is not base64") from exc
            if len(value) != HASH_SIZE:
                raise TlogProofError(f"proof hashes have {HASH_SIZE} bytes")
            hashes.append(value)
        return cls(index, tuple(hashes), checkpoint_note, extra)

    def verify(
        self,
        verifiers: Iterable[Verifier],
        *,
        entry: bytes | None = None,
        leaf: bytes | None = None,
        origin: str | None = None,
    ) -> SignedCheckpoint:
        """Check the checkpoint signature and the inclusion of ``entry`` (or its ``leaf`` hash)."""
        if entry is not None:
            leaf = leaf_hash(entry)
        if leaf is None:
            raise ValueError("give the entry or its leaf hash")
        try:
            signed = open_checkpoint(self.checkpoint_note, verifiers, origin)
        except CheckpointError as exc:
            raise TlogProofError(str(exc)) from exc
        try:
            verify_inclusion(
                leaf,
                self.index,
                signed.size,
                list(self.hashes),
                signed.root,
            )
        except ProofError as exc:
            raise TlogProofError(f"inclusion in checkpoint of size {signed.size}: {exc}") from exc
        return signed


def make_proof(index: int, hashes: Sequence[bytes], checkpoint_note: str, extra: bytes | None = None) -> str:
    """The tlog-proof text for leaf ``index`` with its inclusion proof and checkpoint."""
    return TlogProof(index, tuple(hashes), checkpoint_note, extra).text()
