"""The message a region queue carries: one execution to run, nothing more.

The outbox row written at intake *is* the message (``payload``), so what a worker reads is exactly
what the submission transaction committed. A message names an execution; everything else (prompt,
model, options, deadlines) is read from the database when the worker claims it, so a stale or
duplicated message can never carry stale instructions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beacon.config import REGIONS


class MessageError(ValueError):
    """A payload is not a valid execution message; the text is the dead-letter reason."""


@dataclass(frozen=True)
class Message:
    execution_id: str
    job_id: str
    region: str
    attempt: int = 0
    """How many times this message was handed back for a retry (the execution row counts claims)."""
    enqueued_at: float | None = None
    max_attempts: int | None = None
    """A per-message retry budget; None means the deployment's ``MAX_ATTEMPTS``."""
    reason: str | None = None
    """Why it was (re)published: None at intake, ``retry``, ``sweeper``, ``requeue``."""

    @classmethod
    def parse(cls, payload: Any) -> Message:
        """Validate a payload; raise :class:`MessageError` saying what is wrong."""
        if not isinstance(payload, dict):
            raise MessageError(f"payload is a {type(payload).__name__}, not a JSON object")
        missing = [key for key in ("execution_id", "job_id", "region") if not payload.get(key)]
        if missing:
            raise MessageError(f"payload lacks {', '.join(missing)}")
        for key in ("execution_id", "job_id", "region"):
            if not isinstance(payload[key], str):
                raise MessageError(f"payload field {key!r} is not a string")
        if payload["region"] not in REGIONS:
            raise MessageError(f"payload names unknown region {payload['region']!r}")
        attempt = payload.get("attempt", 0)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
            raise MessageError("payload field 'attempt' is not a non-negative integer")
        budget = payload.get("max_attempts")
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
            raise MessageError("payload field 'max_attempts' is not a positive integer")
        enqueued_at = payload.get("enqueued_at")
        if enqueued_at is not None and (
            not isinstance(enqueued_at, int | float) or isinstance(enqueued_at, bool)
        ):
            raise MessageError("payload field 'enqueued_at' is not a number (epoch seconds)")
        reason = payload.get("reason")
        return cls(
            execution_id=payload["execution_id"],
            job_id=payload["job_id"],
            region=payload["region"],
            attempt=attempt,
            enqueued_at=float(enqueued_at) if enqueued_at is not None else None,
            max_attempts=budget,
            reason=reason if isinstance(reason, str) else None,
        )

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "execution_id": self.execution_id,
            "job_id": self.job_id,
            "region": self.region,
            "attempt": self.attempt,
            "enqueued_at": self.enqueued_at,
        }
        if self.max_attempts is not None:
            payload["max_attempts"] = self.max_attempts
        if self.reason is not None:
            payload["reason"] = self.reason
        return payload


def execution_message(
    execution_id: str,
    job_id: str,
    region: str,
    *,
    enqueued_at: float,
    attempt: int = 0,
    reason: str | None = None,
    max_attempts: int | None = None,
) -> dict[str, Any]:
    """The payload of the message that runs one execution (the ``payload`` of its outbox row)."""
    return Message(execution_id, job_id, region, attempt, enqueued_at, max_attempts, reason).to_payload()


def outbox_row(message: Message) -> dict[str, Any]:
    """The outbox row that publishes ``message`` to its region's stream, written when it is enqueued.

    Intake, the sweeper, the dead-letter requeue and a restore all write these rows, and only these:
    the relay publishes each ``payload`` to the stream named by ``topic``.
    """
    if message.enqueued_at is None:
        raise ValueError("an outbox row is written when its message is enqueued: enqueued_at is required")
    return {"topic": message.region, "payload": message.to_payload(), "created_at": message.enqueued_at}
