"""Ed25519 keys: generation, key files, signing, verifying, and the trusted-key registry.

Encodings follow the original runner (reference §4.1): signatures and public keys are standard
base64 with padding; a private key file holds 64 bytes (32-byte seed ‖ 32-byte public key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey


class KeyFileError(ValueError):
    """A key or key file could not be read."""


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (the original's encoding)."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not; raise ValueError on anything else."""
    cleaned = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9+/_-]*={0,2}", cleaned):
        raise ValueError("not base64")
    cleaned = cleaned.replace("-", "+").replace("_", "/").rstrip("=")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from exc


def decode_public_key(public_key_b64: str) -> bytes:
    """The 32 raw bytes of a base64 Ed25519 public key; ValueError if it is not one."""
    raw = b64decode(public_key_b64)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, this one has {len(raw)}")
    return raw


def key_id(public_key: bytes) -> str:
    """A short, stable identifier of a public key: hex of the first 8 bytes of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def verify(public_key: bytes | str, message: bytes, signature: bytes | str) -> bool:
    """True if ``signature`` (raw or base64) is a valid Ed25519 signature of ``message``."""
    try:
        raw_key = decode_public_key(public_key) if isinstance(public_key, str) else public_key
        raw_sig = b64decode(signature) if isinstance(signature, str) else signature
        if len(raw_sig) != 64:
            return False
        VerifyKey(raw_key).verify(message, raw_sig)
    except (BadSignatureError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Ed25519Key:
    """A private Ed25519 key with its public half."""

    signing_key: SigningKey

    @classmethod
    def generate(cls) -> Ed25519Key:
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Key:
        if len(seed) != 32:
            raise KeyFileError(f"an Ed25519 seed has 32 bytes, got {len(seed)}")
        return cls(SigningKey(seed))

    @classmethod
    def from_private_b64(cls, text: str) -> Ed25519Key:
        """Accept a 64-byte Go private key (seed ‖ public) or a 32-byte seed, base64."""
        try:
            raw = b64decode(text)
        except ValueError as exc:
            raise KeyFileError("private key is not base64") from exc
        if len(raw) == 64:
            key = cls.from_seed(raw[:32])
            if key.public_key != raw[32:]:
                raise KeyFileError("private key: the last 32 bytes are not the public key of the seed")
            return key
        if len(raw) == 32:
            return cls.from_seed(raw)
        raise KeyFileError(f"private key has {len(raw)} bytes; expected 64 (seed ‖ public key) or 32 (seed)")

    @property
    def seed(self) -> bytes:
        return bytes(self.signing_key)

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def public_key_b64(self) -> str:
        return b64encode(self.public_key)

    @property
    def private_key_b64(self) -> str:
        """The Go form: base64 of seed ‖ public key (64 bytes)."""
        return b64encode(self.seed + self.public_key)

    @property
    def kid(self) -> str:
        return key_id(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature

    def sign_b64(self, message: bytes) -> str:
        return b64encode(self.sign(message))

    def to_json(self) -> dict[str, str]:
        return {
            "algorithm": "ed25519",
            "kid": self.kid,
            "public_key": self.public_key_b64,
            "private_key": self.private_key_b64,
        }


def write_key_file(key: Ed25519Key, path: Path) -> None:
    """Write a JSON key file readable only by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(key.to_json(), handle, indent=2)
        handle.write("\n")


def read_key_file(path: Path) -> Ed25519Key:
    """Read a private key in any of the accepted forms.

    * Beacon's JSON (``{"private_key": …, "public_key": …}``; also ``privateKey``/``seed``),
    * the Go CLI's bare base64 file (64-byte private key, as written by ``sigtool keygen``),
    * the Go CLI's printed form (``Private Key: <b64>`` / ``Public Key: <b64>``).
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    return parse_private_key(text, source=str(path))


def parse_private_key(text: str, source: str = "key") -> Ed25519Key:
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise KeyFileError(f"{source}: invalid JSON ({exc.msg})") from exc
        for field in ("private_key", "privateKey", "seed", "secret_key"):
            if isinstance(data.get(field), str):
                key = Ed25519Key.from_private_b64(data[field])
                expected = data.get("public_key") or data.get("publicKey")
                if expected and b64decode(expected) != key.public_key:
                    raise KeyFileError(f"{source}: public_key does not match the private key")
                return key
        raise KeyFileError(f"{source}: no private_key field")
    match = re.search(r"Private Key:\s*(\S+)", text, re.IGNORECASE)
    if match:
        return Ed25519Key.from_private_b64(match.group(1))
    return Ed25519Key.from_private_b64(text)


def read_public_key(text_or_path: str) -> bytes:
    """A public key given inline (base64, or a JSON key file's text) or as a path to such a file."""
    candidate = text_or_path.strip()
    path = Path(candidate)
    if len(candidate) < 4096 and path.is_file():
        candidate = path.read_text(encoding="utf-8").strip()
    if candidate.startswith("{"):
        data = json.loads(candidate)
        candidate = str(data.get("public_key") or data.get("publicKey") or "")
    match = re.search(r"Public Key:\s*(\S+)", candidate, re.IGNORECASE)
    if match:
        candidate = match.group(1)
    try:
        return decode_public_key(candidate)
    except ValueError as exc:
        raise KeyFileError(f"not an Ed25519 public key: {exc}") from exc


def load_or_create_key(path: Path) -> Ed25519Key:
    """The key at ``path``, generated and persisted (mode 600) on first use."""
    if path.exists():
        return read_key_file(path)
    key = Ed25519Key.generate()
    write_key_file(key, path)
    return key


# --- trusted keys -----------------------------------------------------------------------------------


class KeyStatus(StrEnum):
    TRUSTED = "trusted"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    public_key: bytes
    status: str = "active"
    not_before: datetime | None = None
    not_after: datetime | None = None

    def status_at(self, now: datetime) -> KeyStatus:
        if self.status == "revoked":
            return KeyStatus.REVOKED
        if self.not_before and now < self.not_before:
            return KeyStatus.NOT_YET_VALID
        if self.not_after and now > self.not_after:
            return KeyStatus.EXPIRED
        return KeyStatus.TRUSTED


def _parse_time(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected an RFC 3339 time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{where}: {value!r} is not an RFC 3339 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class TrustedKeys:
    """The allowlist of JobSpec signing keys, looked up by raw public key bytes."""

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self._by_key: dict[bytes, TrustedKey] = {}
        for key in keys:
            if key.public_key in self._by_key:
                raise ValueError(f"trusted key {key.kid!r}: public key listed twice")
            self._by_key[key.public_key] = key

    @classmethod
    def from_entries(cls, entries: Iterable[Mapping[str, Any]]) -> TrustedKeys:
        keys: list[TrustedKey] = []
        kids: set[str] = set()
        for index, entry in enumerate(entries):
            where = f"trusted key #{index}"
            if not isinstance(entry, Mapping):
                raise ValueError(
                    f"{where}: expected an object {{kid, public_key, status, not_before, not_after}}"
                )
            kid = entry.get("kid")
            if not isinstance(kid, str) or not kid:
                raise ValueError(f"{where}: 'kid' is required")
            if kid in kids:
                raise ValueError(f"{where}: kid {kid!r} listed twice")
            kids.add(kid)
            try:
                public_key = decode_public_key(str(entry.get("public_key", "")))
            except ValueError as exc:
                raise ValueError(f"{where} ({kid}): public_key: {exc}") from exc
            status = entry.get("status") or "active"
            if status not in ("active", "revoked"):
                raise ValueError(f"{where} ({kid}): status must be 'active' or 'revoked'")
            not_before = _parse_time(entry.get("not_before"), f"{where} ({kid}) not_before")
            not_after = _parse_time(entry.get("not_after"), f"{where} ({kid}) not_after")
            if not_before and not_after and not_before > not_after:
                raise ValueError(f"{where} ({kid}): not_before is after not_after")
            keys.append(TrustedKey(kid, public_key, status, not_before, not_after))
        return cls(keys)

    def __len__(self) -> int:
        return len(self._by_key)

    def lookup(self, public_key: bytes) -> TrustedKey | None:
        return self._by_key.get(public_key)

    def status(self, public_key: bytes, now: datetime | None = None) -> tuple[KeyStatus, TrustedKey | None]:
        key = self._by_key.get(public_key)
        if key is None:
            return KeyStatus.UNKNOWN, None
        return key.status_at(now or datetime.now(UTC)), key


def read_trusted_key_entries(source: str) -> list[dict[str, Any]]:
    """Trusted-key entries in ``TRUSTED_KEYS``'s forms: an inline JSON array, or the path of a file holding one.

    The entries are checked as :meth:`TrustedKeys.from_entries` reads them; ValueError says what is wrong.
    """
    text = source.strip()
    if not text.startswith(("[", "{")):  # inline JSON is an array; an object is an error said as such
        try:
            text = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {text}: {exc.strerror}") from exc
    return parse_trusted_key_entries(text)


def parse_trusted_key_entries(text: str) -> list[dict[str, Any]]:
    """The entries of a JSON array of trusted keys, checked as :meth:`TrustedKeys.from_entries` reads them."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, list):
        raise ValueError(
            "expected a JSON array of key objects {kid, public_key, status, not_before, not_after}"
        )
    TrustedKeys.from_entries(data)  # bad keys, statuses or validity windows are refused here
    return data
