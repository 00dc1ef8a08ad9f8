"""C2SP signed notes (c2sp.org/signed-note), Ed25519 keys only (signature type 0x01).

A note is UTF-8 text ending in a newline, then a blank line, then one signature per line::

    — <key name> base64(key ID (4 bytes) || signature)

The key ID of an Ed25519 key is the first four bytes of SHA-256(name || "\\n" || 0x01 || public
key); a verifier key is written ``<name>+<hex key ID>+base64(0x01 || public key)``. Verifiers ignore
signatures by keys they do not know (witness cosignatures, rotated keys), accept notes with many
signatures (at least 16), reject a note that no known key verifies, and reject a note whose
signature by a known key does not verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from beacon.errors import VerificationError
from beacon.keys import Ed25519Key

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "— "  # U+2014 EM DASH, then a space
MAX_SIGNATURES = 100
"""More than the spec's minimum of 16; Go's sumdb uses the same bound."""


class NoteError(VerificationError):
    """A note, key or signature is malformed, or the note does not verify."""

    code = "bad_note"


def _check_name(name: str) -> None:
    if not name or any(ch.isspace() or ch == "+" for ch in name):
        raise NoteError(f"invalid key name {name!r}: it must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def b64decode_strict(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"not standard base64: {text[:40]!r}") from exc


@dataclass(frozen=True)
class Verifier:
    """A public key that can verify notes, with the name it signs under."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise NoteError("an Ed25519 public key has 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string ``name+hexid+base64(0x01||key)``."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Read a verifier key string; NoteError if it is malformed or its ID does not match."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("a verifier key has the form name+hexid+base64key")
        name, hex_id, encoded = parts
        _check_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise NoteError("the key ID of a verifier key is 8 lower-case hex digits")
        raw = b64decode_strict(encoded)
        if not raw or raw[0] != ALG_ED25519:
            raise NoteError("unsupported key type (only Ed25519, type 0x01)")
        if len(raw) != 33:
            raise NoteError("an Ed25519 verifier key holds 32 key bytes")
        verifier = cls(name, raw[1:])
        if verifier.key_id.hex() != hex_id:
            raise NoteError("the key ID does not match the name and key")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            VerifyKey(self.public_key).verify(message, signature)
        except BadSignatureError:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A private key that signs notes under a name."""

    name: str
    key: Ed25519Key

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key.public_key)

    @property
    def skey(self) -> str:
        """The signer key string in Go's format (``PRIVATE+KEY+name+hexid+base64(0x01||seed)``)."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.key.seed).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, skey: str) -> Signer:
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key has the form PRIVATE+KEY+name+hexid+base64key")
        name, hex_id, encoded = parts[2:]
        raw = b64decode_strict(encoded)
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("only Ed25519 signer keys (type 0x01, 32-byte seed) are supported")
        signer = cls(name, Ed25519Key.from_seed(raw[1:]))
        if signer.verifier.key_id.hex() != hex_id:
            raise NoteError("the key ID does not match the name and key")
        return signer

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        encoded = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True)
class Note:
    """A note: its text and the signatures read from it (verified ones only after :func:`open_note`)."""

    text: str
    signatures: tuple[Signature, ...]

    def verified_by(self) -> list[str]:
        return [sig.name for sig in self.signatures]


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("the note text must end with a newline")
    if "\n\n" in text:
        raise NoteError("the note text must not contain a blank line")
    for char in text:
        if char != "\n" and (ord(char) < 0x20 or ord(char) == 0x7F):
            raise NoteError("the note text contains a control character")


def sign_note(text: str, signers: Sequence[Signer], existing: str | None = None) -> str:
    """The signed note: ``text``, a blank line, and one signature line per signer.

    With ``existing`` (a signed note of the same text), its signature lines are kept and the new
    ones appended — how a witness adds a cosignature.
    """
    _check_text(text)
    if not signers:
        raise NoteError("at least one signer is needed")
    lines: list[str] = []
    if existing is not None:
        other_text, other = split_note(existing)
        if other_text != text:
            raise NoteError("the existing note has a different text")
        lines.extend(sig.line() for sig in other)
    message = text.encode("utf-8")
    for signer in signers:
        lines.append(Signature(signer.name, signer.verifier.key_id, signer.sign(message)).line())
    return text + "\n" + "".join(lines)


def split_note(note: str) -> tuple[str, list[Signature]]:
    """Split a signed note into its text and its (unverified) signature lines."""
    if len(note) > 1 << 20:
        raise NoteError("the note is too large")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("a signed note has a blank line between the text and the signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    _check_text(text)
    if not block.endswith("\n"):
        raise NoteError("the signature block must end with a newline")
    signatures: list[Signature] = []
    for line in block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"malformed signature line {line[:60]!r}")
        name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not space:
            raise NoteError(f"malformed signature line {line[:60]!r}")
        _check_name(name)
        raw = b64decode_strict(encoded)
        if len(raw) < 5:
            raise NoteError("a signature carries a 4-byte key ID and the signature")
        signatures.append(Signature(name, raw[:4], raw[4:]))
        if len(signatures) > MAX_SIGNATURES:
            raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    return text, signatures


def open_note(note: str, verifiers: Iterable[Verifier]) -> Note:
    """Verify a signed note; return its text and the signatures that known keys verified.

    Signatures by unknown keys are ignored; a bad signature by a known key is an error; at least
    one known key must have signed.
    """
    text, signatures = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    message = text.encode("utf-8")
    verified: list[Signature] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(message, sig.signature):
            raise NoteError(f"invalid signature by known key {sig.name}+{sig.key_id.hex()}")
        if (sig.name, sig.key_id) not in seen:
            seen.add((sig.name, sig.key_id))
            verified.append(sig)
    if not verified:
        raise NoteError("no signature by a known key")
    return Note(text, tuple(verified))
