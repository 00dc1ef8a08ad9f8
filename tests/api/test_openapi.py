"""The OpenAPI document tells the truth, and the running server conforms to it (schemathesis).

The fuzzing run (issue 16, item 7) is schemathesis's own CLI against a real ``beacon serve`` on SQLite
and on PostgreSQL: its examples, coverage and fuzzing phases, positive and negative data, every check
that judges a single response (no 5xx, documented statuses, headers and bodies; ST201 schema-violating
requests refused; ST202 schema-valid ones accepted, widened in tests/api/schemathesis.toml only where
no schema can state the rule; ST204/ST205 405s and their Allow). It is bounded (a few cases per
operation; then POST /api/v1/jobs alone, 150 cases), and its hooks (tests/api/schemathesis_hooks.py) sign the
JobSpecs it generates with a trusted key, so submissions reach intake past the signature check.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from beacon.keys import Ed25519Key
from tests.api.conftest import TOKENS, Served, start_server, stop_server

REPO = Path(__file__).resolve().parents[2]

COMMON = {"500", "503"}


async def test_every_operation_documents_its_problems(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "code"} <= set(problem["required"])
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert set(responses) >= COMMON, where
            if operation.get("parameters") or operation.get("requestBody"):
                assert "400" in responses, where
            if method in ("post", "put", "patch"):
                assert {"413", "415"} <= set(responses), where
            if not path.startswith(("/health", "/metrics")):
                assert "429" in responses, where
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    content = response["content"]
                    assert content["application/problem+json"]["schema"] == {
                        "$ref": "#/components/schemas/Problem"
                    }


async def test_routes_behind_a_role_document_401_and_403(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"401", "403"} <= set(paths["/admin/config"]["put"]["responses"])
    assert {"401", "403"} <= set(paths["/admin/config"]["get"]["responses"])
    assert "403" not in paths["/api/v1/questions"]["get"]["responses"]
    submit = paths["/api/v1/jobs"]["post"]
    assert {"400", "409", "413", "415", "422", "429", "503"} <= set(submit["responses"])
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobSpecDocument"
    }
    assert any(p["name"] == "Idempotency-Key" for p in submit["parameters"])


async def test_the_document_states_security_bounds_and_bodies(client: httpx.AsyncClient) -> None:
    # Issue 16, item 7: what the server enforces, the document says.
    document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    paths = document["paths"]
    assert paths["/admin/config"]["put"]["security"] == [{"bearerAuth": []}]
    assert paths["/api/v1/questions"]["get"]["security"] == []
    assert paths["/api/v1/jobs"]["post"]["security"] == []  # authorised by the JobSpec's signature
    params = {p["name"]: p for p in paths["/api/v1/transparency/proof"]["get"]["parameters"]}
    assert params["index"]["required"] and params["index"]["schema"]["minimum"] == 0
    assert params["size"]["schema"]["anyOf"][0]["minimum"] == 1
    first = {p["name"]: p for p in paths["/api/v1/transparency/consistency"]["get"]["parameters"]}["first"]
    assert first["required"] and first["schema"]["minimum"] == 1
    attest = paths["/api/v1/transparency/attestations"]["post"]
    assert attest["requestBody"]["content"]["application/json"]["schema"]["minProperties"] == 1
    assert "200" in attest["responses"] and "201" in attest["responses"]
    selection = document["components"]["schemas"]["DeadLetterSelection"]
    assert [branch["required"] for branch in selection["anyOf"]] == [["ids"], ["region"]]
    cid = paths["/api/v1/transparency/bundles/{cid}"]["get"]["parameters"][0]["schema"]
    assert cid["pattern"] == "^[A-Za-z0-9]{1,128}$"


async def test_every_405_lists_exactly_the_documented_methods(client: httpx.AsyncClient) -> None:
    """Schemathesis's ST204/ST205 rule, on every path: an undeclared method (OPTIONS included) is a 405
    whose Allow names the path's documented methods — all of them, not one route's."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    wrong = []
    for template, item in paths.items():
        path = (
            template.replace("{job_id}", "j1").replace("{execution_id}", "ex_1").replace("{worker_id}", "w1")
        )
        path = path.replace("{cid}", "bafkreia").replace("{index}", "0")
        documented = {method.upper() for method in item}
        for method in sorted({"OPTIONS", "PATCH", "DELETE", "PUT", "POST", "GET"} - documented):
            response = await client.request(method, path)
            allow = {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}
            if response.status_code != 405 or allow - {"HEAD"} != documented:
                wrong.append(f"{method} {path}: {response.status_code} Allow: {sorted(allow)}")
    assert wrong == []


# --- schemathesis against a real server, on both stores -------------------------------------------

FUZZ_KEY = Ed25519Key.generate()
SCHEMATHESIS_CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
    ]
)
BEFORE_THE_SIGNATURE = frozenset(
    {
        "400 invalid_request",
        "400 invalid_json",
        "400 invalid_body",
        "400 duplicate_key",
        "400 signature_missing",
        "400 invalid_public_key",
        "400 invalid_signature_encoding",
        "400 signature_mismatch",
        "400 invalid_idempotency_key",
        "405 method_not_allowed",
        "409 idempotency_in_flight",
        "413 payload_too_large",
        "415 unsupported_media_type",
        "422 idempotency_key_reused",
    }
)
"""Answers given before (or instead of) a verified signature; every other answer came from intake past it."""


def run_schemathesis(
    served: Served, workdir: Path, *selection: str, mode: str = "all"
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """One ``st run`` of the operations ``selection`` picks (CLI phase and filter options), and its tally."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **served.env,
        "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
        "BEACON_FUZZ_KEY": base64.b64encode(FUZZ_KEY.seed).decode(),
        "BEACON_FUZZ_TALLY": str(workdir / "tally.json"),
        "PYTHONPATH": str(REPO),
    }
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(REPO / "tests/api/schemathesis.toml"),
        "run",
        f"{served.url}/openapi.json",
        "--checks",
        SCHEMATHESIS_CHECKS,
        "-H",
        f"Authorization: Bearer {TOKENS['admin']}",
        "--max-examples",
        "3",
        "--workers",
        "2",
        *selection,
        "--mode",
        mode,
        "--seed",
        "16",
        "--continue-on-failure",
        "--no-color",
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-json-path",
        str(workdir / "report.json"),
    ]
    result = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    tally = json.loads((workdir / "tally.json").read_text()) if (workdir / "tally.json").exists() else {}
    return result, tally


@pytest.mark.slow
def test_schemathesis_finds_nothing(tmp_path: Path, database_url: str) -> None:
    """0 server errors, 0 schema violations, no ST201/ST202/ST205 — on SQLite and on PostgreSQL."""
    extra = {
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "SUBMIT_RATE_LIMIT_PER_MINUTE": "1000000",
        "BEACON_ACCESS_LOG": "false",
    }
    if database_url.startswith("postgresql"):
        extra["DATABASE_URL"] = database_url
    served = start_server(
        tmp_path / "serve", extra, trusted=[{"kid": "fuzz", "public_key": FUZZ_KEY.public_key_b64}]
    )
    try:
        # Every operation but the two that pause submissions (the pause route, and an admin config with
        # submissions_paused: every later submission would be a deliberate 503; test_admin covers both) ...
        everything = run_schemathesis(
            served,
            tmp_path / "all",
            "--phases",
            "examples,fuzzing",
            "--exclude-path",
            "/admin/ops/pause",
            "--exclude-path",
            "/admin/config",
        )
        # ... then submissions alone, data the schema allows only, repeated for 30 s, so that they reach
        # intake past the signature well over 100 times: a single pass stops after a varying number of
        # cases (34 to 150 signed JobSpecs were seen), and in mode "all" many are malformed on purpose.
        only_jobs = ("--phases", "fuzzing", "--include-name", "POST /api/v1/jobs", "--max-time", "30")
        submissions = run_schemathesis(served, tmp_path / "jobs", *only_jobs, mode="positive")
    finally:
        stop_server(served)
    for result, counted in (everything, submissions):
        summary = result.stdout[-8000:]
        assert result.returncode == 0, summary + result.stderr[-2000:]
        print(summary[summary.rfind("Test cases:") :], json.dumps(counted, indent=1))  # for the closing note
    tally = Counter(everything[1]) + Counter(submissions[1])
    answers = {status: n for status, n in tally.items() if status[:1].isdigit()}
    reached_intake = sum(n for status, n in answers.items() if status not in BEFORE_THE_SIGNATURE)
    assert sum(answers.values()) >= 120 and reached_intake >= 100, tally
    assert not [status for status in tally if status.startswith("5")], tally
