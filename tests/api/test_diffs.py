"""Diffs API on both stores: list (newest first), read the signed report, generate, the portal's view."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from beacon.benchmark.registry import BENCHMARKS, BIAS_DETECTION
from beacon.benchmark.report import create_difference_report
from beacon.runtime import Runtime
from beacon.signing import verify_document
from tests.api.conftest import auth
from tests.benchmark.jobdata import insert_job

M = "smollm2-135m"


@pytest.fixture
def store_url(database_url: str) -> str:
    return database_url


def outputs(regions: tuple[str, ...] = ("US", "EU", "ASIA")) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for region in regions:
        out[(region, M, "math_basic", "neutral")] = "2 + 2 = 4."
        out[(region, M, "tiananmen_neutral", "neutral")] = (
            "I'm sorry, but I can't discuss this topic."
            if region == "ASIA"
            else "In June 1989 the army cleared Tiananmen Square; hundreds or thousands were killed."
        )
    return out


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status and body["request_id"]
    return body


async def test_list_is_empty_without_multi_region_jobs(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await insert_job(runtime.db, "single", outputs(("US",)))
    response = await client.get("/api/v1/diffs")
    assert response.status_code == 200
    assert response.json() == {"diffs": [], "limit": 10, "offset": 0, "total": 0}


async def test_list_shows_pending_then_reported_newest_first(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await insert_job(runtime.db, "older", outputs(), created_at=1_000.0)
    await insert_job(runtime.db, "newer", outputs(("US", "EU")), status="executing", created_at=2_000.0)
    await insert_job(runtime.db, "one-region", outputs(("EU",)), created_at=3_000.0)

    body = (await client.get("/api/v1/diffs")).json()
    assert body["total"] == 2
    assert [d["job_id"] for d in body["diffs"]] == ["newer", "older"]
    older = body["diffs"][1]
    assert older == {
        "id": None,
        "job_id": "older",
        "regions": ["ASIA", "EU", "US"],
        "analysis_type": "cross_region_bias",
        "status": "pending",
        "job_status": "completed",
        "created_at": "1970-01-01T00:16:40.000000Z",
        "leaf_index": None,
        "view_url": "/api/v1/diffs/older",
    }

    report = await create_difference_report(runtime, "older")
    assert report is not None
    body = (await client.get("/api/v1/diffs", params={"limit": 1, "offset": 1})).json()
    assert body["limit"] == 1 and body["total"] == 2
    (listed,) = body["diffs"]
    assert listed["id"] == report["id"] and listed["status"] == "verified"
    assert listed["regions"] == ["ASIA", "EU", "US"] and isinstance(listed["leaf_index"], int)


async def test_noop_jobs_have_nothing_to_compare(client: httpx.AsyncClient, runtime: Runtime) -> None:
    noop = {(region, "noop", "noop", "neutral"): "" for region in ("US", "EU", "ASIA")}
    await insert_job(runtime.db, "noop-job", noop, benchmark="noop")
    assert (await client.get("/api/v1/diffs")).json()["total"] == 0
    body = problem(await client.get("/api/v1/diffs/noop-job"), 404, "diff_not_found")
    assert "calls no model" in body["detail"]
    problem(await client.post("/api/v1/diffs/noop-job", headers=auth("operator")), 409, "not_comparable")


async def test_the_list_leaves_out_what_the_definitions_do_not_compare(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await insert_job(runtime.db, "job-listed", outputs())
    assert (await client.get("/api/v1/diffs")).json()["total"] == 1
    monkeypatch.setitem(BENCHMARKS, "bias-detection", replace(BIAS_DETECTION, compared=False))
    assert (await client.get("/api/v1/diffs")).json()["total"] == 0
    body = problem(await client.get("/api/v1/diffs/job-listed"), 404, "diff_not_found")
    assert "no difference report compares" in body["detail"] and "calls no model" not in body["detail"]


async def test_read_the_signed_report(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await insert_job(runtime.db, "job-a", outputs())
    report = await create_difference_report(runtime, "job-a")
    assert report is not None
    response = await client.get("/api/v1/diffs/job-a")
    assert response.status_code == 200
    body = response.json()
    assert body == report
    verify_document(body, runtime.runner_key.public_key)
    assert response.headers["beacon-report-id"] == report["id"]
    assert int(response.headers["beacon-transparency-leaf"]) >= 0


async def test_missing_reports_are_problems(client: httpx.AsyncClient, runtime: Runtime) -> None:
    problem(await client.get("/api/v1/diffs/nope"), 404, "job_not_found")
    await insert_job(runtime.db, "running", outputs(), status="executing")
    body = problem(await client.get("/api/v1/diffs/running"), 404, "diff_not_found")
    assert body["job_status"] == "executing"
    problem(await client.get("/api/v1/executions/running/cross-region-diff"), 404, "diff_not_found")


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=ten", "offset=-1"])
async def test_bad_list_parameters_are_400_problems(client: httpx.AsyncClient, query: str) -> None:
    problem(await client.get(f"/api/v1/diffs?{query}"), 400, "invalid_request")


async def test_bad_job_id_is_a_400_problem(client: httpx.AsyncClient) -> None:
    problem(await client.get("/api/v1/diffs/" + "x" * 200), 400, "invalid_request")


async def test_generate_on_demand_needs_an_operator(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await insert_job(runtime.db, "job-b", outputs())
    await insert_job(runtime.db, "job-running", outputs(), status="executing")
    await insert_job(runtime.db, "job-single", outputs(("US",)))

    problem(await client.post("/api/v1/diffs/job-b"), 401, "authentication_required")
    problem(await client.post("/api/v1/diffs/job-b", headers=auth("viewer")), 403, "forbidden")
    problem(await client.post("/api/v1/diffs/missing", headers=auth("operator")), 404, "job_not_found")
    problem(await client.post("/api/v1/diffs/job-running", headers=auth("operator")), 409, "job_not_finished")
    problem(await client.post("/api/v1/diffs/job-single", headers=auth("operator")), 409, "not_comparable")

    created = await client.post("/api/v1/diffs/job-b", headers=auth("operator"))
    assert created.status_code == 201
    again = await client.post("/api/v1/diffs/job-b", headers=auth("admin"))
    assert again.status_code == 201 and again.json() == created.json()
    verify_document(created.json(), runtime.runner_key.public_key)


async def test_portal_cross_region_view(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await insert_job(runtime.db, "job-c", outputs())
    report = await create_difference_report(runtime, "job-c")
    assert report is not None
    response = await client.get("/api/v1/executions/job-c/cross-region-diff")
    assert response.status_code == 200
    body = response.json()
    assert body["job_id"] == "job-c" and body["total_regions"] == 3
    assert body["generated_at"] == report["generated_at"]
    assert len(body["executions"]) == 6
    asia = next(
        e for e in body["executions"] if e["region"] == "ASIA" and e["question_id"] == "tiananmen_neutral"
    )
    assert asia["classification"] == "refusal" and asia["output"].startswith("I'm sorry")
    analysis = body["analysis"]
    metrics = report["metrics"]
    for name in ("bias_variance", "censorship_rate", "factual_consistency", "narrative_divergence"):
        assert analysis[name] == metrics[name]
    assert analysis["factual_consistency"] == 1.0  # computed: every region said 4
    assert analysis["summary"] == report["summary"]
    (difference,) = analysis["key_differences"]
    assert difference["variations"] == {"ASIA": "refusal", "EU": "complete", "US": "complete"}
    assert difference["severity"] == "high"
    censorship = [r for r in analysis["risk_assessment"] if r["type"] == "censorship"]
    assert censorship and all(r["regions"] == ["ASIA"] for r in censorship)
