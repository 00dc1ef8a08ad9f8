"""The execution message: what the outbox row carries and the queue delivers."""

from __future__ import annotations

from typing import Any

import pytest

from beacon.queue.message import Message, MessageError, execution_message, outbox_row


def test_an_intake_payload_round_trips() -> None:
    payload = execution_message("ex_1", "job-1", "EU", enqueued_at=12.5)
    assert payload == {
        "execution_id": "ex_1",
        "job_id": "job-1",
        "region": "EU",
        "attempt": 0,
        "enqueued_at": 12.5,
    }
    message = Message.parse(payload)
    assert (message.execution_id, message.region, message.attempt, message.max_attempts) == (
        "ex_1",
        "EU",
        0,
        None,
    )
    assert Message.parse(message.to_payload()) == message


def test_an_outbox_row_publishes_its_message_to_the_region_stream() -> None:
    row = outbox_row(Message("ex_1", "job-1", "ASIA", enqueued_at=7.0, max_attempts=2, reason="sweeper"))
    assert row == {
        "topic": "ASIA",
        "payload": {
            "execution_id": "ex_1",
            "job_id": "job-1",
            "region": "ASIA",
            "attempt": 0,
            "enqueued_at": 7.0,
            "max_attempts": 2,
            "reason": "sweeper",
        },
        "created_at": 7.0,
    }
    assert outbox_row(Message("ex_1", "job-1", "EU", enqueued_at=12.5))["payload"] == execution_message(
        "ex_1", "job-1", "EU", enqueued_at=12.5
    )
    with pytest.raises(ValueError, match="enqueued_at"):
        outbox_row(Message("ex_1", "job-1", "EU"))


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("ex_1", "not a JSON object"),
        ({"job_id": "j", "region": "EU"}, "execution_id"),
        ({"execution_id": "e", "job_id": "j", "region": "APAC"}, "unknown region"),
        ({"execution_id": "e", "job_id": "j", "region": "EU", "attempt": -1}, "attempt"),
        ({"execution_id": "e", "job_id": "j", "region": "EU", "attempt": True}, "attempt"),
        ({"execution_id": "e", "job_id": "j", "region": "EU", "max_attempts": 0}, "max_attempts"),
        ({"execution_id": 5, "job_id": "j", "region": "EU"}, "not a string"),
    ],
)
def test_malformed_payloads_say_what_is_wrong(payload: Any, problem: str) -> None:
    with pytest.raises(MessageError, match=problem):
        Message.parse(payload)
