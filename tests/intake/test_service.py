"""The submission transaction on SQLite and PostgreSQL: what a 202 writes, and that a refusal writes nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon.benchmark.questions import question_set
from beacon.intake import Intake, IntakeError, Scheme, Verification, sign_jobspec, stamp
from beacon.intake.service import normalise
from beacon.keys import Ed25519Key
from beacon.runtime import Runtime
from beacon.store.tables import executions, idempotency_keys, job_events, jobs, nonces, outbox
from tests.intake import gojson

Sign = Callable[[dict[str, Any]], bytes]
MINIMAL = {"id": "day1-minimal", "version": "1", "benchmark": "noop", "container": {"image": "noop"}}


async def counts(runtime: Runtime) -> dict[str, int]:
    out = {}
    async with runtime.db.connect() as conn:
        for table in (jobs, job_events, executions, outbox, nonces, idempotency_keys):
            out[table.name] = (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
    return out


async def test_a_minimal_day1_job_is_stored_planned_and_queued_in_one_go(
    runtime: Runtime, sign: Sign
) -> None:
    body = sign(MINIMAL)
    response = await Intake(runtime).submit(body, request_id="req-1")
    assert response.status == 202
    answer = orjson.loads(response.body)
    assert answer["id"] == answer["job_id"] == "day1-minimal"
    assert answer["status"] == "enqueued"
    assert answer["scheme"] == "jcs"
    assert answer["kid"] == "dev"
    assert answer["executions"] == 1
    assert answer["regions"] == ["US"]  # the admin config's default region
    assert response.headers["Location"] == "/api/v1/jobs/day1-minimal"

    async with runtime.db.connect() as conn:
        job = (await conn.execute(sa.select(jobs))).one()
        events = (await conn.execute(sa.select(job_events).order_by(job_events.c.id))).all()
        planned = (await conn.execute(sa.select(executions))).all()
        messages = (await conn.execute(sa.select(outbox))).all()
        nonce = (await conn.execute(sa.select(nonces))).one()
    assert job.status == "enqueued"
    assert job.raw == body.decode()
    assert job.spec_hash == hashlib.sha256(body).hexdigest() == answer["spec_hash"]
    assert job.signature_scheme == "jcs"
    assert job.request_id == "req-1"
    assert job.enqueued_at == job.created_at
    # The minimal form is normalised into the full shape (after verification).
    assert job.spec["benchmark"]["name"] == "noop"
    assert job.spec["benchmark"]["container"] == {
        "image": "noop",
        "tag": None,
        "command": None,
        "environment": None,
        "resources": None,
    }
    assert "container" not in job.spec
    assert [e.status for e in events] == ["created", "enqueued"]
    assert [(e.region, e.question_id, e.status, e.attempt) for e in planned] == [("US", "noop", "queued", 0)]
    assert planned[0].queued_at == job.created_at
    assert len(messages) == 1
    assert messages[0].topic == "US"
    assert messages[0].published_at is None
    assert messages[0].payload == {
        "execution_id": planned[0].id,
        "job_id": "day1-minimal",
        "region": "US",
        "attempt": 0,
        "enqueued_at": job.created_at,
    }
    assert nonce.public_key == job.public_key


async def test_a_bias_job_plans_every_region_model_and_question(runtime: Runtime, sign: Sign) -> None:
    spec = {
        "id": "bias-1",
        "version": "v1",
        "benchmark": {"name": "bias-detection", "container": {"image": "x"}},
        "constraints": {"regions": ["US", "eu-west", "APAC"]},
        "metadata": {"models": ["llama3.2-1b", {"id": "qwen2.5-1.5b"}]},
    }
    answer = orjson.loads((await Intake(runtime).submit(sign(spec))).body)
    questions = len(question_set().ids)
    assert answer["regions"] == ["US", "EU", "ASIA"]
    assert answer["executions"] == 3 * 2 * questions
    totals = await counts(runtime)
    assert totals["executions"] == totals["outbox"] == 3 * 2 * questions
    async with runtime.db.connect() as conn:
        topics = dict(
            (await conn.execute(sa.select(outbox.c.topic, sa.func.count()).group_by(outbox.c.topic))).all()
        )
    assert topics == {"US": 2 * questions, "EU": 2 * questions, "ASIA": 2 * questions}


@pytest.mark.parametrize(
    ("change", "code", "path"),
    [
        ({"constraints": {"regions": ["MARS"]}}, "unknown_region", "constraints.regions.0"),
        (
            {"benchmark": "bias-detection", "questions": ["no_such_question"]},
            "unknown_question",
            "questions.0",
        ),
        ({"priority": "high"}, "unknown_fields", "priority"),
        (
            {"container": {"image": "noop", "privileged": True}},
            "unknown_fields",
            "benchmark.container.privileged",
        ),
        ({"benchmark": "nope"}, "unknown_benchmark", "benchmark.name"),
        ({"constraints": {"timeout": "forever"}}, "invalid_jobspec", "constraints.timeout"),
        ({"constraints": {"max_cost": 99}}, "exceeds_max_cost", "constraints.max_cost"),
        ({"constraints": {"timeout": "1h"}}, "exceeds_max_duration", "constraints.timeout"),
        ({"id": "a/b"}, "invalid_jobspec", "id"),
        ({"constraints": {"timeout": 1e30}}, "invalid_jobspec", "constraints.timeout"),
        ({"constraints": {"provider_timeout": "9" * 400}}, "invalid_jobspec", "constraints.provider_timeout"),
    ],
)
async def test_invalid_jobs_are_refused_with_paths_and_nothing_is_written(
    runtime: Runtime, sign: Sign, change: dict[str, Any], code: str, path: str
) -> None:
    with pytest.raises(IntakeError) as refused:
        await Intake(runtime).submit(sign({**MINIMAL, **change}), idempotency_key="k-refused")
    assert refused.value.status == 400
    assert refused.value.code == code
    assert path in [e["path"] for e in refused.value.errors or []]
    assert set((await counts(runtime)).values()) == {0}  # not even the nonce or the idempotency claim


async def test_metadata_is_free_form(runtime: Runtime, sign: Sign) -> None:
    spec = {**MINIMAL, "metadata": {"created_by": "portal", "anything": {"nested": [1, None]}}}
    assert (await Intake(runtime).submit(sign(spec))).status == 202


async def test_a_default_timeout_is_clamped_to_the_admin_limit(runtime: Runtime, sign: Sign) -> None:
    await runtime.admin_config.update({"constraints": {"max_duration": 120}}, actor="test")
    await Intake(runtime).submit(sign(MINIMAL))
    async with runtime.db.connect() as conn:
        spec = (await conn.execute(sa.select(jobs.c.spec))).scalar_one()
    assert spec["constraints"]["timeout"] == 120.0


async def test_the_default_region_comes_from_the_admin_config(runtime: Runtime, sign: Sign) -> None:
    await runtime.admin_config.update({"constraints": {"default_region": "eu"}}, actor="test")
    assert orjson.loads((await Intake(runtime).submit(sign(MINIMAL))).body)["regions"] == ["EU"]


async def test_paused_submissions_are_refused_with_503(runtime: Runtime, sign: Sign) -> None:
    await runtime.admin_config.update({"submissions_paused": True}, actor="test")
    with pytest.raises(IntakeError) as refused:
        await Intake(runtime).submit(sign(MINIMAL))
    assert (refused.value.status, refused.value.code) == (503, "submissions_paused")
    assert refused.value.headers["Retry-After"] == "60"


async def test_the_same_signed_document_is_accepted_once(runtime: Runtime, sign: Sign) -> None:
    body = sign(MINIMAL)
    await Intake(runtime).submit(body)
    with pytest.raises(IntakeError) as refused:
        await Intake(runtime).submit(body)
    assert refused.value.code == "replay_detected"


async def test_a_new_document_with_a_taken_id_is_a_conflict(runtime: Runtime, sign: Sign) -> None:
    await Intake(runtime).submit(sign(MINIMAL))
    with pytest.raises(IntakeError) as refused:
        await Intake(runtime).submit(sign(MINIMAL))  # new nonce, same id
    assert (refused.value.status, refused.value.code) == (409, "job_exists")
    assert (await counts(runtime))["nonces"] == 1  # the refused one's nonce was rolled back


async def test_a_job_without_an_id_gets_one(runtime: Runtime, sign: Sign) -> None:
    spec = {k: v for k, v in MINIMAL.items() if k != "id"}
    answer = orjson.loads((await Intake(runtime).submit(sign(spec))).body)
    assert answer["id"].startswith("job-")


LEGACY_MINIMAL = {"version": "1.0", "benchmark": {"name": "noop", "container": {"image": "noop"}}}
"""The minimal job in the original runner's shape (benchmark an object), as its tools signed it."""


def legacy_signed(document: dict[str, Any], message: bytes, key: Ed25519Key) -> bytes:
    return json.dumps(
        {**document, "public_key": key.public_key_b64, "signature": key.sign_b64(message)}
    ).encode()


async def test_a_portal_v1_job_is_named_by_the_runner_and_keeps_its_id_as_a_label(
    runtime: Runtime, signing_key: Ed25519Key
) -> None:
    document = stamp({"id": "portal-job-1", "created_at": "2025-10-01T12:00:00Z", **LEGACY_MINIMAL})
    body = legacy_signed(document, gojson.portal_v1_message(document), signing_key)
    answer = orjson.loads((await Intake(runtime).submit(body)).body)
    assert answer["scheme"] == "portal-v1"
    assert answer["id"].startswith("job-") and answer["id"] != "portal-job-1"
    assert answer["label"] == "portal-job-1"
    assert answer["unsigned_fields"] == ["id", "created_at"]
    async with runtime.db.connect() as conn:
        job = (await conn.execute(sa.select(jobs))).one()
        created = (await conn.execute(sa.select(job_events).where(job_events.c.status == "created"))).one()
    assert job.id == answer["id"]
    assert job.spec["id"] == answer["id"]
    assert created.detail["label"] == "portal-job-1"


async def test_an_id_added_to_someone_elses_signed_job_decides_nothing(
    runtime: Runtime, signing_key: Ed25519Key
) -> None:
    # The probe's attack (issue 16, item 1): a document signed without an id, seen before it is
    # submitted; the attacker adds an id (portal-v1 does not sign it) and submits first.
    document = stamp(LEGACY_MINIMAL)
    signed = json.loads(legacy_signed(document, gojson.go_strip_message(document), signing_key))
    attacked = json.dumps({**signed, "id": "attacker-chosen", "created_at": "2030-01-01T00:00:00Z"}).encode()
    answer = orjson.loads((await Intake(runtime).submit(attacked)).body)
    assert answer["scheme"] == "portal-v1"
    assert answer["id"] != "attacker-chosen"
    assert answer["label"] == "attacker-chosen"
    async with runtime.db.connect() as conn:
        ids = (await conn.execute(sa.select(jobs.c.id))).scalars().all()
    assert ids == [answer["id"]]


async def test_an_unsigned_label_must_still_be_a_valid_id(runtime: Runtime, signing_key: Ed25519Key) -> None:
    document = stamp({"id": "a/b", **LEGACY_MINIMAL})
    body = legacy_signed(document, gojson.portal_v1_message(document), signing_key)
    with pytest.raises(IntakeError) as refused:
        await Intake(runtime).submit(body)
    assert (refused.value.status, refused.value.code) == (400, "invalid_jobspec")
    assert set((await counts(runtime)).values()) == {0}


async def test_untrusted_keys_are_refused_before_anything_is_written(runtime: Runtime) -> None:
    stranger = Ed25519Key.generate()
    body = json.dumps(sign_jobspec(stamp(MINIMAL), stranger)).encode()
    with pytest.raises(IntakeError) as refused:
        await Intake(runtime).submit(body)
    assert refused.value.code == "key_unknown"
    assert set((await counts(runtime)).values()) == {0}


# --- Idempotency-Key ---------------------------------------------------------------------------------


async def test_same_key_same_body_replays_the_stored_response(runtime: Runtime, sign: Sign) -> None:
    body = sign(MINIMAL)
    first = await Intake(runtime).submit(body, idempotency_key="day1-001")
    again = await Intake(runtime).submit(body, idempotency_key='"day1-001"')  # RFC 8941 string form
    assert not first.replayed
    assert again.replayed
    assert (again.status, again.body) == (first.status, first.body)
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await counts(runtime))["jobs"] == 1


async def test_same_key_other_body_is_422(runtime: Runtime, sign: Sign) -> None:
    await Intake(runtime).submit(sign(MINIMAL), idempotency_key="k")
    with pytest.raises(IntakeError) as refused:
        await Intake(runtime).submit(sign({**MINIMAL, "id": "other"}), idempotency_key="k")
    assert (refused.value.status, refused.value.code) == (422, "idempotency_key_reused")


async def test_a_failed_request_releases_its_key(runtime: Runtime, sign: Sign) -> None:
    with pytest.raises(IntakeError):
        await Intake(runtime).submit(
            sign({**MINIMAL, "constraints": {"regions": ["MARS"]}}), idempotency_key="k"
        )
    assert (await Intake(runtime).submit(sign(MINIMAL), idempotency_key="k")).status == 202


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\there", "ünï"])
async def test_malformed_keys_are_400(runtime: Runtime, sign: Sign, key: str) -> None:
    with pytest.raises(IntakeError) as refused:
        await Intake(runtime).submit(sign(MINIMAL), idempotency_key=key)
    assert refused.value.code == "invalid_idempotency_key"


async def test_concurrent_identical_requests_create_one_job(runtime: Runtime, sign: Sign) -> None:
    body = sign(MINIMAL)
    intake = Intake(runtime)

    async def attempt() -> tuple[int, str]:
        try:
            response = await intake.submit(body, idempotency_key="burst")
            return response.status, "replayed" if response.replayed else "fresh"
        except IntakeError as exc:
            return exc.status, exc.code

    outcomes = await asyncio.gather(*(attempt() for _ in range(50)))
    assert outcomes.count((202, "fresh")) == 1
    assert set(outcomes) <= {(202, "fresh"), (202, "replayed"), (409, "idempotency_in_flight")}
    totals = await counts(runtime)
    assert (totals["jobs"], totals["outbox"], totals["idempotency_keys"]) == (1, 1, 1)


# --- normalisation never fails with anything but a refusal ------------------------------------------

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_field = st.sampled_from(
    [
        "id",
        "version",
        "benchmark",
        "container",
        "constraints",
        "metadata",
        "questions",
        "models",
        "runs",
        "options",
        "wallet_auth",
        "created_at",
        "jobspec_id",
        "extra",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_field, _values, max_size=8))
def test_normalise_refuses_garbage_cleanly(document: dict[str, Any]) -> None:
    verification = Verification(Scheme.JCS, b"\x00" * 32)
    try:
        normalise(document, verification)
    except IntakeError as exc:
        assert exc.status == 400
