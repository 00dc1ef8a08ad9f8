"""C2SP signed notes, checked against the Go sumdb vectors (golang.org/x/mod/sumdb/note note_test.go:
the PeterNeumann signer/verifier keys, its deterministic signature, and EnochRoot's cosignature)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from beacon.keys import Ed25519Key
from beacon.transparency.note import NoteError, Signer, Verifier, key_id, open_note, sign_note, split_note

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"


def test_go_signer_key_gives_the_go_verifier_key_and_signature() -> None:
    signer = Signer.parse(PETER_SKEY)
    assert signer.verifier.vkey == PETER_VKEY
    assert signer.skey == PETER_SKEY
    assert sign_note(TEXT, [signer]) == TEXT + "\n" + PETER_SIG


def test_key_id_rule() -> None:
    verifier = Verifier.parse(PETER_VKEY)
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_key).digest()[:4]
    assert key_id("PeterNeumann", verifier.public_key) == expected == bytes.fromhex("c74f20a3")


def test_open_ignores_unknown_signers_and_reports_known_ones() -> None:
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    peter, enoch = Verifier.parse(PETER_VKEY), Verifier.parse(ENOCH_VKEY)
    assert open_note(note, [enoch]).verified_by() == ["EnochRoot"]
    assert open_note(note, [peter, enoch]).verified_by() == ["PeterNeumann", "EnochRoot"]
    assert open_note(note, [peter]).text == TEXT


def test_rejections() -> None:
    peter = Verifier.parse(PETER_VKEY)
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(TEXT + "\n" + ENOCH_SIG, [peter])
    with pytest.raises(NoteError, match="invalid signature by known key"):
        open_note(TEXT.replace("problem,", "problem;") + "\n" + PETER_SIG, [peter])
    # A known key's bad signature fails the note, even next to a good signature by another known key.
    raw = bytearray(base64.b64decode(PETER_SIG.split()[2]))
    raw[-1] ^= 1  # same key ID, damaged signature
    damaged = f"— PeterNeumann {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(NoteError, match="invalid signature by known key PeterNeumann"):
        open_note(TEXT + "\n" + ENOCH_SIG + damaged, [peter, Verifier.parse(ENOCH_VKEY)])
    for bad in (
        TEXT + PETER_SIG,  # no blank line
        TEXT + "\n" + PETER_SIG.rstrip("\n"),  # signature block without final newline
        TEXT + "\n" + "- PeterNeumann AAAA\n",  # ASCII hyphen, not an em dash
        TEXT + "\n" + "— PeterNeumann not*base64\n",
        TEXT + "\n" + "— PeterNeumann AAAA\n",  # shorter than a key ID plus a signature
        "no final newline\n\n" + PETER_SIG.replace("\n", ""),
        "control \x07 char\n\n" + PETER_SIG,
    ):
        with pytest.raises(NoteError):
            open_note(bad, [peter])


def test_accepts_many_signatures() -> None:
    signers = [Signer(f"witness{i}.example", Ed25519Key.generate()) for i in range(20)]
    note = sign_note(TEXT, signers)
    assert len(split_note(note)[1]) == 20
    assert open_note(note, [signers[17].verifier]).verified_by() == ["witness17.example"]
    with pytest.raises(NoteError, match="more than 100"):
        split_note(TEXT + "\n" + PETER_SIG * 101)


def test_cosigning_keeps_existing_signatures() -> None:
    log = Signer("log.example/a", Ed25519Key.generate())
    witness = Signer("witness.example", Ed25519Key.generate())
    cosigned = sign_note(TEXT, [witness], existing=sign_note(TEXT, [log]))
    assert open_note(cosigned, [log.verifier, witness.verifier]).verified_by() == [
        "log.example/a",
        "witness.example",
    ]
    with pytest.raises(NoteError, match="different text"):
        sign_note("other\n", [witness], existing=cosigned)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a3",  # no key
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong ID
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # ID not lower-case hex
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in the name
        "PeterNeumann+c74f20a3+AhpczQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # key type 0x02
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # short key
    ],
)
def test_malformed_verifier_keys(vkey: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(vkey)
