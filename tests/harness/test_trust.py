"""Pinned keys for T+45: the runner's own keys are trusted only on first use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beacon.harness.trust import PinError, keys_to_trust, load_pins, pinned_keys
from beacon.keys import Ed25519Key
from beacon.transparency.note import Signer

RUNNER = Ed25519Key.generate().public_key_b64
OTHER = Ed25519Key.generate().public_key_b64
VKEY = Signer("beacon.test/log", Ed25519Key.generate()).verifier.vkey
served_runner = {"keys": [{"public_key": RUNNER}, {"public_key": OTHER}]}
served_log = {"keys": [{"vkey": VKEY}]}


def test_without_pins_the_runners_keys_are_trusted_on_first_use() -> None:
    decision = keys_to_trust(served_runner, served_log, None)
    assert decision.mode == "trust_on_first_use"
    assert decision.runner_keys == [RUNNER, OTHER] and decision.log_keys == [VKEY]
    assert "first use" in decision.described


def test_pins_replace_the_served_keys_and_unpinned_ones_are_named() -> None:
    pins = pinned_keys([RUNNER], [VKEY])
    assert pins is not None
    decision = keys_to_trust(served_runner, served_log, load_pins({"BEACON_PINNED_KEYS": pins.to_env()}))
    assert decision.mode == "pinned"
    assert decision.runner_keys == [RUNNER]  # OTHER, though served, verifies nothing
    assert decision.unpinned_served == {"runner": [OTHER]}
    assert "1 unpinned" in decision.described


def test_pins_from_a_previous_runs_attestation(tmp_path: Path) -> None:
    (tmp_path / "attestation.json").write_text(
        json.dumps({"runner_keys": served_runner, "log_keys": served_log})
    )
    pins = pinned_keys([], [], tmp_path)
    assert pins is not None and pins.runner == (RUNNER, OTHER) and pins.log == (VKEY,)
    assert pinned_keys([], []) is None
    with pytest.raises(PinError):
        pinned_keys([], ["not a vkey"])
    with pytest.raises(PinError):
        pinned_keys([], [], tmp_path / "absent.json")
