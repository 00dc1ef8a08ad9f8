"""The ten files of the original (beacon/benchmark/data/original-jobspecs) through intake: each one's verdict.

The unsigned ones are signed here through the project's own signing functions (``sign_jobspec``),
so these tests follow the primary scheme wherever it goes; the Go-signed ones are submitted as they
are, with their embedded keys trusted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from beacon.benchmark.originals import GO_SIGNED, UNIFIED_SPECS, V1_SPECS, original_path
from beacon.boot import open_runtime
from beacon.intake import Intake, IntakeError, sign_jobspec, stamp
from beacon.keys import Ed25519Key
from beacon.runtime import Runtime
from beacon.store.tables import jobs, outbox

ORIGINALS = original_path("questions-phase2.json").parent
UNIFIED = list(UNIFIED_SPECS)
V1 = list(V1_SPECS)
YEARS = 10 * 365 * 86400.0


def original(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ORIGINALS / name).read_text(encoding="utf-8"))
    return document


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
async def runtime(
    database_url: str, make_settings: Callable[..., Any], signing_key: Ed25519Key
) -> AsyncIterator[Runtime]:
    trusted = [{"kid": "dev", "public_key": signing_key.public_key_b64}] + [
        {"kid": f"go-{i}", "public_key": key}
        for i, key in enumerate(sorted({original(name)["public_key"] for name in GO_SIGNED}))
    ]
    settings = make_settings(
        database_url=database_url,
        trusted_keys=json.dumps(trusted),
        timestamp_max_age_s=YEARS,  # the Go-signed files were stamped in 2025: let them reach planning
        timestamp_max_skew_s=YEARS,
    )
    async with open_runtime(settings) as rt:
        yield rt


def signed(name: str, key: Ed25519Key) -> bytes:
    return json.dumps(sign_jobspec(stamp(original(name)), key)).encode()


async def refusal(runtime: Runtime, body: bytes) -> IntakeError:
    with pytest.raises(IntakeError) as refused:
        await Intake(runtime).submit(body)
    return refused.value


@pytest.mark.parametrize("name", UNIFIED)
async def test_a_unified_spec_over_the_duration_limit_names_the_admin_setting(
    runtime: Runtime, signing_key: Ed25519Key, name: str
) -> None:
    refused = await refusal(runtime, signed(name, signing_key))
    assert (refused.status, refused.code) == (400, "exceeds_max_duration")
    assert "constraints.max_duration" in refused.detail and "1800" in refused.detail
    assert refused.extensions["setting"] == "constraints.max_duration"


@pytest.mark.parametrize("name", UNIFIED)
async def test_a_unified_spec_is_accepted_once_the_admin_allows_30_minutes(
    runtime: Runtime, signing_key: Ed25519Key, name: str
) -> None:
    await runtime.admin_config.update({"constraints": {"max_duration": 1800}}, actor="test")
    body = signed(name, signing_key)
    response = await Intake(runtime).submit(body)
    answer = orjson.loads(response.body)
    assert response.status == 202 and answer["regions"] == ["US", "EU", "ASIA"]
    assert answer["executions"] == 3 * (8 + 23 - 1)  # both modes' sets; tiananmen_neutral is in both
    async with runtime.db.connect() as conn:
        job = (await conn.execute(sa.select(jobs))).one()
        budgets = {row.payload.get("max_attempts") for row in (await conn.execute(sa.select(outbox))).all()}
    assert job.raw == body.decode()  # the verified document, verbatim
    assert job.spec["dialect"]["name"] == "original-v2"
    assert job.spec["question_sets"]["advanced"]["version"] == "bias-detection-context-v1"
    assert budgets == {3}  # max_retries 2 → three attempts


@pytest.mark.parametrize("name", V1)
async def test_a_v1_spec_is_accepted(runtime: Runtime, signing_key: Ed25519Key, name: str) -> None:
    response = await Intake(runtime).submit(signed(name, signing_key))
    answer = orjson.loads(response.body)
    assert response.status == 202 and answer["executions"] == 3 * 8


async def test_a_command_style_spec_is_refused_where_no_backend_isolates_a_container(
    runtime: Runtime,
) -> None:
    body = (ORIGINALS / "day1-test-job.signed.json").read_bytes()
    refused = await refusal(runtime, body)
    assert (refused.status, refused.code) == (400, "container_isolation_unavailable")
    assert "llamacpp" in refused.detail and "never runs a JobSpec's command on its own host" in refused.detail


@pytest.mark.parametrize("name", ["minimal.jobspec.signed.json", "who.signed.json"])
async def test_the_stale_go_signed_examples_do_not_verify(runtime: Runtime, name: str) -> None:
    """They verify under none of the original's schemes (reference §9, failure mode 3: committed
    examples went stale as the scheme changed); read as JobSpecs they are command-style too."""
    refused = await refusal(runtime, (ORIGINALS / name).read_bytes())
    assert (refused.status, refused.code) == (400, "signature_mismatch")


async def test_a_command_style_spec_is_planned_for_a_region_served_by_golem(
    database_url: str, make_settings: Callable[..., Any]
) -> None:
    document = original("day1-test-job.signed.json")
    settings = make_settings(
        database_url=database_url,
        trusted_keys=json.dumps([{"kid": "go", "public_key": document["public_key"]}]),
        timestamp_max_age_s=YEARS,
        timestamp_max_skew_s=YEARS,
        region_backends={"US": "golem"},
    )
    async with open_runtime(settings) as rt:
        response = await Intake(rt).submit((ORIGINALS / "day1-test-job.signed.json").read_bytes())
        assert response.status == 202 and orjson.loads(response.body)["executions"] == 1


async def test_the_phase2_question_file_is_not_a_jobspec(runtime: Runtime) -> None:
    refused = await refusal(runtime, (ORIGINALS / "questions-phase2.json").read_bytes())
    assert (refused.status, refused.code) == (400, "signature_missing")


def _leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaf_paths(v, (*prefix, k))]
    if isinstance(value, list) and value:
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*prefix, i))]
    return [prefix]


def _tampered(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    return "tampered"


async def test_tampering_any_signed_field_of_an_original_is_refused(
    runtime: Runtime, signing_key: Ed25519Key
) -> None:
    await runtime.admin_config.update({"constraints": {"max_duration": 1800}}, actor="test")
    document = sign_jobspec(stamp(original(UNIFIED[0])), signing_key)
    paths = [p for p in _leaf_paths(document) if p[0] not in ("signature", "public_key")]
    assert len(paths) > 25
    for path in paths:
        changed = json.loads(json.dumps(document))
        holder = changed
        for part in path[:-1]:
            holder = holder[part]
        holder[path[-1]] = _tampered(holder[path[-1]])
        refused = await refusal(runtime, json.dumps(changed).encode())
        assert (refused.status, refused.code) == (400, "signature_mismatch"), path
    assert (await Intake(runtime).submit(json.dumps(document).encode())).status == 202  # untouched: accepted
