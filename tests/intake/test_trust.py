"""Trusted-key evaluation: one refusal code per reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from beacon.intake import IntakeError, evaluate_trust
from beacon.keys import Ed25519Key, KeyStatus, TrustedKeys

NOW = datetime(2025, 8, 30, 17, 0, tzinfo=UTC)


def registry(**entries: dict[str, object]) -> tuple[TrustedKeys, dict[str, Ed25519Key]]:
    keys = {kid: Ed25519Key.generate() for kid in entries}
    return (
        TrustedKeys.from_entries(
            [{"kid": kid, "public_key": keys[kid].public_key_b64, **extra} for kid, extra in entries.items()]
        ),
        keys,
    )


TRUSTED, KEYS = registry(
    good={"status": "active"},
    revoked={"status": "revoked"},
    expired={"not_after": (NOW - timedelta(seconds=1)).isoformat()},
    early={"not_before": (NOW + timedelta(days=1)).isoformat().replace("+00:00", "Z")},
    windowed={"not_before": "2025-01-01T00:00:00Z", "not_after": "2026-01-01T00:00:00Z"},
)


@pytest.mark.parametrize("kid", ["good", "windowed"])
def test_trusted_keys_are_admitted_with_their_kid(kid: str) -> None:
    decision = evaluate_trust(TRUSTED, KEYS[kid].public_key, now=NOW)
    assert decision.status is KeyStatus.TRUSTED
    assert decision.kid == kid


@pytest.mark.parametrize(
    ("kid", "code"),
    [("revoked", "key_revoked"), ("expired", "key_expired"), ("early", "key_not_yet_valid")],
)
def test_listed_but_unusable_keys_are_refused_with_their_reason(kid: str, code: str) -> None:
    for require_trusted in (True, False):
        with pytest.raises(IntakeError) as refused:
            evaluate_trust(TRUSTED, KEYS[kid].public_key, now=NOW, require_trusted=require_trusted)
        assert refused.value.code == code
        assert refused.value.extensions["kid"] == kid


def test_unknown_keys_are_refused_when_trust_is_required() -> None:
    stranger = Ed25519Key.generate()
    with pytest.raises(IntakeError) as refused:
        evaluate_trust(TRUSTED, stranger.public_key, now=NOW)
    assert refused.value.code == "key_unknown"
    assert refused.value.extensions["kid"] == stranger.kid


def test_unknown_keys_pass_when_trust_is_not_required() -> None:
    stranger = Ed25519Key.generate()
    decision = evaluate_trust(TRUSTED, stranger.public_key, now=NOW, require_trusted=False)
    assert decision.status is KeyStatus.UNKNOWN
    assert decision.kid == stranger.kid


def test_allowed_submitters_narrow_trust_by_kid_or_public_key() -> None:
    good = KEYS["good"]
    assert evaluate_trust(TRUSTED, good.public_key, now=NOW, allowed_submitters=["good"]).kid == "good"
    assert (
        evaluate_trust(TRUSTED, good.public_key, now=NOW, allowed_submitters=[good.public_key_b64]).kid
        == "good"
    )
    with pytest.raises(IntakeError) as refused:
        evaluate_trust(TRUSTED, good.public_key, now=NOW, allowed_submitters=["windowed"])
    assert refused.value.code == "key_not_allowed"
