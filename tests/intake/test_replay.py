"""Replay protection: the timestamp window, and nonces claimed in the submission transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.intake import IntakeError, check_freshness, stamp
from beacon.intake.replay import purge_expired_nonces, record_nonce
from beacon.store.tables import nonces

NOW = datetime(2025, 8, 30, 17, 0, tzinfo=UTC).timestamp()


def doc(timestamp: Any = "2025-08-30T17:00:00Z", nonce: Any = "n-1") -> dict[str, Any]:
    metadata = {}
    if timestamp is not None:
        metadata["timestamp"] = timestamp
    if nonce is not None:
        metadata["nonce"] = nonce
    return {"metadata": metadata}


def fresh(document: dict[str, Any], now: float = NOW) -> Any:
    return check_freshness(document, now=now, max_skew_s=300, max_age_s=600)


@pytest.mark.parametrize(
    "timestamp",
    ["2025-08-30T17:00:00Z", "2025-08-30T16:50:01Z", "2025-08-30T17:04:59Z", "2025-08-30T19:00:00+02:00"],
)
def test_timestamps_inside_the_window_pass(timestamp: str) -> None:
    freshness = fresh(doc(timestamp))
    assert freshness.nonce == "n-1"
    assert freshness.expires_at == freshness.timestamp + 900


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ({}, "timestamp_missing"),
        (doc(timestamp=None), "timestamp_missing"),
        (doc(timestamp=""), "timestamp_missing"),
        (doc(timestamp="yesterday"), "timestamp_invalid"),
        (doc(timestamp=1756573200), "timestamp_invalid"),
        (doc(timestamp="2025-08-30T17:00:00"), "timestamp_invalid"),
        (doc(timestamp="2025-08-30T16:49:59Z"), "timestamp_too_old"),
        (doc(timestamp="2025-08-30T17:05:01Z"), "timestamp_in_future"),
        (doc(nonce=None), "nonce_missing"),
        (doc(nonce=""), "nonce_missing"),
        (doc(nonce=7), "nonce_invalid"),
        (doc(nonce="x" * 256), "nonce_invalid"),
        (doc(nonce="line\nbreak"), "nonce_invalid"),
    ],
)
def test_stale_or_missing_replay_fields_are_refused(document: dict[str, Any], code: str) -> None:
    with pytest.raises(IntakeError) as refused:
        fresh(document)
    assert refused.value.code == code


def test_stamp_adds_what_is_missing_and_keeps_what_is_there() -> None:
    stamped = stamp({"id": "j", "metadata": {"nonce": "mine", "models": ["m"]}})
    assert stamped["metadata"]["nonce"] == "mine"
    assert stamped["metadata"]["models"] == ["m"]
    assert stamped["metadata"]["timestamp"].endswith("Z")
    fresh(stamped, now=datetime.now(UTC).timestamp())
    a, b = stamp({}), stamp({})
    assert a["metadata"]["nonce"] != b["metadata"]["nonce"]


async def test_a_nonce_is_accepted_once_per_key(db: Any) -> None:
    freshness = fresh(doc())
    async with db.begin() as conn:
        await record_nonce(db, conn, "key-A", freshness, now=NOW)
    async with db.begin() as conn:
        await record_nonce(db, conn, "key-B", freshness, now=NOW)  # another key may use the same nonce
    with pytest.raises(IntakeError) as refused:
        async with db.begin() as conn:
            await record_nonce(db, conn, "key-A", freshness, now=NOW + 1)
    assert refused.value.code == "replay_detected"


async def test_a_refused_submission_leaves_no_nonce_behind(db: Any) -> None:
    freshness = fresh(doc())
    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            await record_nonce(db, conn, "key-A", freshness, now=NOW)
            raise RuntimeError("the job insert failed")
    async with db.begin() as conn:
        await record_nonce(db, conn, "key-A", freshness, now=NOW)


async def test_an_expired_nonce_can_be_claimed_again_and_is_purged(db: Any) -> None:
    freshness = fresh(doc())
    async with db.begin() as conn:
        await record_nonce(db, conn, "key-A", freshness, now=NOW)
    later = freshness.expires_at + 1
    async with db.begin() as conn:
        await record_nonce(db, conn, "key-A", freshness, now=later)  # the old row had expired
    async with db.begin() as conn:
        assert await purge_expired_nonces(conn, now=later + freshness.expires_at) == 1
        assert (await conn.execute(sa.select(sa.func.count()).select_from(nonces))).scalar_one() == 0
