"""beacon.signing: which of a runner's keys signed a document."""

from __future__ import annotations

from typing import Any

import pytest

from beacon.keys import Ed25519Key
from beacon.signing import SignatureError, sign_document, signed_by


def test_signed_by_returns_the_key_that_signed() -> None:
    old, current = Ed25519Key.generate(), Ed25519Key.generate()
    document = sign_document({"kind": "test", "n": 1}, old)
    assert signed_by(document, [current.public_key, old.public_key]) == old.public_key
    assert signed_by(document, [current.public_key_b64, old.public_key_b64]) == old.public_key_b64


def test_signed_by_names_each_distinct_reason() -> None:
    signer, other, third = Ed25519Key.generate(), Ed25519Key.generate(), Ed25519Key.generate()
    document = sign_document({"kind": "test"}, signer)
    with pytest.raises(SignatureError) as caught:
        signed_by(document, [other.public_key, third.public_key])
    assert str(caught.value) == "signed by a different key than the one expected"
    tampered = {**document, "kind": "changed"}
    with pytest.raises(SignatureError) as caught:
        signed_by(tampered, [other.public_key, signer.public_key])
    assert str(caught.value) == (
        "signed by a different key than the one expected; signature does not match the document"
    )


def test_signed_by_without_keys_fails() -> None:
    document = sign_document({"kind": "test"}, Ed25519Key.generate())
    with pytest.raises(SignatureError, match="no public key"):
        signed_by(document, [])


def test_signed_by_uses_the_given_check() -> None:
    key = Ed25519Key.generate()
    document = sign_document({"kind": "test"}, key)

    def refuse(doc: dict[str, Any], public_key: bytes) -> None:
        raise SignatureError(f"refused {doc['kind']}")

    with pytest.raises(SignatureError, match="refused test"):
        signed_by(document, [key.public_key], refuse)
