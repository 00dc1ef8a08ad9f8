"""Replay protection: the timestamp window, and nonces claimed in the submission transaction (by the
intake's writer, as production claims them)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from beacon.intake import IntakeError, check_freshness, stamp
from beacon.intake.replay import Freshness, purge_expired_nonces
from beacon.intake.writer import PreparedJob, SubmissionWriter
from beacon.store.tables import nonces
from tests.intake.test_writer import outcome, prepared

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


def submission(job_id: str, public_key: str, freshness: Freshness, **job: Any) -> PreparedJob:
    """A submission as intake hands it to its writer, claiming ``freshness``'s nonce for ``public_key``."""
    nonce = {"public_key": public_key, "nonce": freshness.nonce, "expires_at": freshness.expires_at}
    return replace(prepared(job_id, freshness.nonce, **job), nonce=nonce)


def current() -> Freshness:
    """The freshness of a document signed now (its nonce is still in its window for the writer)."""
    return fresh(doc(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")), now=time.time())


async def test_a_nonce_is_accepted_once_per_key(db: Any) -> None:
    writer, freshness = SubmissionWriter(db), current()
    assert await outcome(writer, submission("a", "key-A", freshness)) == "ok"
    assert await outcome(writer, submission("b", "key-B", freshness)) == "ok"  # another key, same nonce
    assert await outcome(writer, submission("c", "key-A", freshness)) == "replay_detected"


async def test_a_refused_submission_leaves_no_nonce_behind(db: Any) -> None:
    writer, freshness = SubmissionWriter(db), current()
    broken = submission("broken", "key-A", freshness, benchmark=None)  # the job insert fails (NOT NULL)
    assert await outcome(writer, broken) == "IntegrityError"
    assert await outcome(writer, submission("fine", "key-A", freshness)) == "ok"


async def test_an_expired_nonce_can_be_claimed_again_and_is_purged(db: Any) -> None:
    writer, stale = SubmissionWriter(db), fresh(doc())  # its window closed long before the writer's clock
    assert await outcome(writer, submission("a", "key-A", stale)) == "ok"
    assert await outcome(writer, submission("b", "key-A", stale)) == "ok"  # the old row had expired
    async with db.begin() as conn:
        assert await purge_expired_nonces(conn, now=stale.expires_at + 1) == 1
        assert (await conn.execute(sa.select(sa.func.count()).select_from(nonces))).scalar_one() == 0
