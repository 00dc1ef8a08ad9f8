"""C2SP tlog-checkpoint and c2sp.org/tlog-proof@v1: exact text forms, parsing, and verification."""

from __future__ import annotations

import base64

import pytest

from beacon.keys import Ed25519Key
from beacon.transparency.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from beacon.transparency.merkle import EMPTY_ROOT, InMemoryTree
from beacon.transparency.note import Signer
from beacon.transparency.proof import HEADER, TlogProof, TlogProofError, make_proof

SIGNER = Signer("example.com/log", Ed25519Key.from_seed(b"\x01" * 32))
ENTRIES = [b"leaf %d" % i for i in range(11)]
TREE = InMemoryTree.from_entries(ENTRIES)


def test_checkpoint_text_is_three_lines() -> None:
    checkpoint = Checkpoint("example.com/log", 11, TREE.root())
    assert checkpoint.text() == f"example.com/log\n11\n{base64.b64encode(TREE.root()).decode()}\n"
    signed = open_checkpoint(checkpoint.sign(SIGNER), [SIGNER.verifier], "example.com/log")
    assert signed.checkpoint == checkpoint and signed.verified_by == ("example.com/log",)
    with pytest.raises(CheckpointError, match="from log"):
        open_checkpoint(checkpoint.sign(SIGNER), [SIGNER.verifier], "other.example/log")


@pytest.mark.parametrize(
    "text",
    [
        "example.com/log\n011\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n",  # leading zero
        "example.com/log\n-1\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n",
        "example.com/log\n1\n" + base64.b64encode(EMPTY_ROOT[:31]).decode() + "\n",  # short root
        "example.com/log\n1\nnot base64!\n",
        "example.com/log\n1\n",  # no root line
        "example.com/log\n1\n" + base64.b64encode(EMPTY_ROOT).decode(),  # no final newline
    ],
)
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse_text(text)


def test_extension_lines_round_trip() -> None:
    checkpoint = Checkpoint("example.com/log", 0, EMPTY_ROOT, ("ext one",))
    assert Checkpoint.parse_text(checkpoint.text()) == checkpoint


def proof_text(index: int, extra: bytes | None = None) -> str:
    return make_proof(
        index, TREE.inclusion_proof(index), Checkpoint("example.com/log", 11, TREE.root()).sign(SIGNER), extra
    )


def test_tlog_proof_text_and_verification() -> None:
    text = proof_text(6, extra=b"\x00\x01")
    lines = text.split("\n")
    assert lines[:3] == [HEADER, "extra AAE=", "index 6"]
    assert len(TREE.inclusion_proof(6)) == 4 and lines[7] == ""
    parsed = TlogProof.parse(text)
    assert parsed.index == 6 and parsed.extra == b"\x00\x01" and parsed.text() == text
    signed = parsed.verify([SIGNER.verifier], entry=ENTRIES[6], origin="example.com/log")
    assert signed.size == 11
    parsed.verify([SIGNER.verifier], leaf=TREE.levels[0][6])


def test_tlog_proof_rejections() -> None:
    text = proof_text(6)
    with pytest.raises(TlogProofError, match="inclusion"):
        TlogProof.parse(text).verify([SIGNER.verifier], entry=ENTRIES[5])
    with pytest.raises(TlogProofError, match="signature"):
        TlogProof.parse(text).verify(
            [Signer("example.com/log", Ed25519Key.generate()).verifier], entry=ENTRIES[6]
        )
    with pytest.raises(TlogProofError, match="inclusion"):
        TlogProof.parse(text.replace("index 6", "index 7")).verify([SIGNER.verifier], entry=ENTRIES[6])
    for bad in (
        text.replace(HEADER, "c2sp.org/tlog-proof@v2"),
        text.replace("index 6", "index 06"),
        text.replace("index 6\n", ""),
        text.replace("\n\n", "\n", 1),
        text.replace("index 6\n", "index 6\nnot-base64\n"),
        text.replace("index 6\n", "index 6\nAAAA\n"),  # not 32 bytes
    ):
        with pytest.raises(TlogProofError):
            TlogProof.parse(bad).verify([SIGNER.verifier], entry=ENTRIES[6])
