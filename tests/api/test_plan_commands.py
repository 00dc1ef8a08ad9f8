"""The Day-1 plan's own commands, replayed with curl against a real `beacon serve` process.

Sections: "Smoke Tests & Health Checks" (runner commands), "CORS & API Endpoint Verification",
"Error Path Validation", then the signing and submission workflow and the emergency step
"Halt new submissions: set rate limits to zero" / "Revert admin config". Each command is the
plan's text with ``https://<runner>`` pointed at the local server; tests run in file order.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from beacon.keys import read_key_file
from tests.api.conftest import Served, start_server, stop_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("curl") is None or shutil.which("jq") is None, reason="needs curl and jq"
    ),
]


@pytest.fixture(scope="module")
def day1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("day1")
    # "JobSpec Signing Process": the key exists before the runner, whose TRUSTED_KEYS lists it.
    generated = subprocess.run(
        [
            str(Path(__import__("sys").executable).parent / "jobspec-signer"),
            "generate-keypair",
            "-o",
            "dev-key.json",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Public Key:" in generated.stdout
    key = read_key_file(workdir / "dev-key.json")
    served = start_server(
        workdir, trusted=[{"kid": "day1", "public_key": key.public_key_b64, "status": "active"}]
    )
    yield served
    stop_server(served)


def sh(served: Served, command: str, *, pipefail: bool = True) -> subprocess.CompletedProcess[str]:
    command = command.replace("https://<runner>", served.url)
    return subprocess.run(
        ["bash", "-c", ("set -o pipefail; " if pipefail else "") + command],
        cwd=served.workdir,
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def json_of(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}\n{result.stdout}"
    return json.loads(result.stdout)


def headers_of(raw: str) -> tuple[int, dict[str, str]]:
    lines = raw.replace("\r\n", "\n").split("\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line.strip():
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


# --- Smoke Tests & Health Checks ---------------------------------------------------------------------


def test_runner_health(day1: Served) -> None:
    body = json_of(sh(day1, "curl -sSf https://<runner>/health | jq"))
    assert body["status"] == "healthy"
    assert body["components"]["database"]["status"] == "up"


def test_runner_ready(day1: Served) -> None:
    assert json_of(sh(day1, "curl -sSf https://<runner>/health/ready | jq"))["ready"] is True


def test_role_discovery(day1: Served) -> None:
    body = json_of(
        sh(day1, 'curl -sSf -H "Authorization: Bearer $ADMIN_TOKEN" https://<runner>/auth/whoami | jq')
    )
    assert body["role"] == "admin"
    assert day1.env["ADMIN_TOKEN"] not in json.dumps(body)


def test_config_read(day1: Served) -> None:
    body = json_of(
        sh(day1, 'curl -sSf -H "Authorization: Bearer $OPERATOR_TOKEN" https://<runner>/admin/config | jq')
    )
    assert body["config"]["constraints"]["default_region"] == "US"


def test_config_update_admin_only(day1: Served) -> None:
    body = json_of(
        sh(
            day1,
            """curl -sSf -X PUT https://<runner>/admin/config \\
      -H "Authorization: Bearer $ADMIN_TOKEN" \\
      -H 'Content-Type: application/json' \\
      -d '{
            "ipfs_gateway": "https://w3s.link",
            "features": { "ws_live_updates": false },
            "constraints": { "default_region": "EU", "max_cost": 2.5 }
          }' | jq""",
        )
    )
    assert body["config"]["ipfs_gateway"] == "https://w3s.link"
    assert body["config"]["features"]["ws_live_updates"] is False
    assert body["config"]["constraints"] == {"default_region": "EU", "max_cost": 2.5, "max_duration": 900}
    as_operator = sh(
        day1,
        """curl -sSf -X PUT https://<runner>/admin/config -H "Authorization: Bearer $OPERATOR_TOKEN" \\
      -H 'Content-Type: application/json' -d '{"features": {"ws_live_updates": true}}'""",
    )
    assert as_operator.returncode == 22  # curl -f: HTTP 403


# --- CORS & API Endpoint Verification ----------------------------------------------------------------


def test_allowed_origin_preflight(day1: Served) -> None:
    result = sh(
        day1,
        """curl -sS -i -X OPTIONS https://<runner>/api/v1/jobs \\
    -H 'Origin: https://projectbeacon.netlify.app' \\
    -H 'Access-Control-Request-Method: POST' \\
    -H 'Access-Control-Request-Headers: Content-Type, Idempotency-Key, Authorization'""",
    )
    status, headers = headers_of(result.stdout)
    assert status in (200, 204)
    assert headers["access-control-allow-origin"] == "https://projectbeacon.netlify.app"
    methods = {m.strip() for m in headers["access-control-allow-methods"].split(",")}
    assert methods >= {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert allowed >= {"content-type", "authorization", "idempotency-key"}


def test_preflight_from_the_plan_of_action(day1: Served) -> None:
    result = sh(
        day1,
        """curl -sS -i -X OPTIONS "https://<runner>/api/v1/jobs" \\
    -H "Origin: https://projectbeacon.netlify.app" \\
    -H 'Access-Control-Request-Method: POST' \\
    -H 'Access-Control-Request-Headers: Content-Type, Idempotency-Key'""",
    )
    status, headers = headers_of(result.stdout)
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://projectbeacon.netlify.app"


def test_idempotency_key_allowed_on_post(day1: Served) -> None:
    result = sh(
        day1,
        """curl -sS -i -X POST https://<runner>/api/v1/jobs \\
    -H 'Origin: https://projectbeacon.netlify.app' \\
    -H 'Content-Type: application/json' \\
    -H 'Idempotency-Key: cors-check-001' \\
    -H "Authorization: Bearer $OPERATOR_TOKEN" \\
    -d '{"id":"cors-check","version":"1","benchmark":"noop","container":{"image":"noop"}}' | head -n 20""",
        pipefail=False,
    )
    status, headers = headers_of(result.stdout)
    assert headers["access-control-allow-origin"] == "https://projectbeacon.netlify.app"
    assert status == 400  # unsigned: refused, and the portal can still read the answer


def test_questions(day1: Served) -> None:
    body = json_of(sh(day1, "curl -sS https://<runner>/api/v1/questions | jq"))
    assert set(body["categories"]) == {"control_questions", "bias_detection", "cultural_perspective"}
    assert all({"question_id", "question"} <= set(q) for qs in body["categories"].values() for q in qs)


def _registered(day1: Served, path: str) -> bool:
    return path in httpx.get(f"{day1.url}/openapi.json", timeout=30).json()["paths"]


@pytest.mark.parametrize(("path", "key"), [("/api/v1/executions", "executions"), ("/api/v1/diffs", "diffs")])
def test_portal_list_endpoints(day1: Served, path: str, key: str) -> None:
    if not _registered(day1, path):
        pytest.skip(f"{path} is not registered yet (another subsystem's route)")
    body = json_of(sh(day1, f"curl -sS 'https://<runner>{path}?limit=5' | jq"))
    assert isinstance(body[key], list)


# --- Error Path Validation ---------------------------------------------------------------------------


def test_unsigned_submission_is_400(day1: Served) -> None:
    body = json_of(
        sh(
            day1,
            """curl -sS -X POST https://<runner>/api/v1/jobs \\
      -H 'Content-Type: application/json' \\
      -d '{"id":"job-invalid-unsigned","version":"1","benchmark":"noop","container":{"image":"noop"}}' | jq""",
        )
    )
    assert (body["status"], body["code"]) == (400, "signature_missing")
    assert body["request_id"]


# --- Signing and live submission ---------------------------------------------------------------------


def test_sign_submit_and_monitor(day1: Served) -> None:
    (day1.workdir / "jobspec.json").write_text(
        json.dumps({"id": "day1-live", "version": "1", "benchmark": "noop", "container": {"image": "noop"}})
    )
    signed = sh(day1, "jobspec-signer sign -k dev-key.json -i ./jobspec.json -o ./jobspec.signed.json")
    assert signed.returncode == 0, signed.stderr
    submit = """curl -sS -X POST https://<runner>/api/v1/jobs \\
      -H 'Content-Type: application/json' \\
      -H 'Idempotency-Key: day1-001' \\
      -d @./jobspec.signed.json | tee ./day1-submit.json | jq"""
    accepted = json_of(sh(day1, submit))
    assert (accepted["id"], accepted["status"], accepted["regions"]) == ("day1-live", "enqueued", ["EU"])
    assert json_of(sh(day1, submit)) == accepted  # the same key and body: the stored answer again
    job_id = json.loads((day1.workdir / "day1-submit.json").read_text())["id"]

    monitor = (
        f"JOB_ID='{job_id}'\n  curl -sS \"https://<runner>/api/v1/jobs/$JOB_ID?include=executions\" | jq"
    )
    detail = json_of(sh(day1, monitor))
    assert [event["status"] for event in detail["timeline"]][:2] == ["created", "enqueued"]
    assert len(detail["executions"]) == 1
    assert detail["executions"][0]["region"] == "EU"
    deadline = time.monotonic() + 30  # the embedded workers run the noop job; note how far it got
    while detail["status"] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        detail = json_of(sh(day1, monitor))
    recent = json_of(sh(day1, "curl -sS 'https://<runner>/api/v1/jobs?limit=5' | jq"))
    assert recent["jobs"][0]["id"] == "day1-live"


def test_beacon_submit(day1: Served) -> None:
    (day1.workdir / "second.json").write_text(
        json.dumps({"id": "day1-cli", "version": "1", "benchmark": "noop", "container": {"image": "noop"}})
    )
    assert sh(day1, "beacon sign -k dev-key.json -i second.json -o second.signed.json").returncode == 0
    result = sh(day1, "beacon submit second.signed.json --runner $RUNNER --idempotency-key day1-002")
    assert result.returncode == 0, result.stdout + result.stderr
    accepted = json.loads(result.stdout)
    assert accepted["id"] == "day1-cli"
    # the file went out byte for byte: spec_hash is the SHA-256 of the signed file as written
    assert (
        accepted["spec_hash"]
        == hashlib.sha256((day1.workdir / "second.signed.json").read_bytes()).hexdigest()
    )
    unsigned = sh(day1, "beacon submit second.json --runner $RUNNER")
    assert unsigned.returncode == 1
    problem = json.loads(unsigned.stdout)  # the runner's problem document, printed as it came
    assert problem["status"] == 400 and problem["request_id"]


# --- Emergency Procedures ----------------------------------------------------------------------------


def test_halt_submissions_then_revert_to_safe_defaults(day1: Served) -> None:
    halt = """curl -sSf -X PUT https://<runner>/admin/config -H "Authorization: Bearer $ADMIN_TOKEN" \\
      -H 'Content-Type: application/json' -d '{"rate_limits": {"submit_per_minute": 0}}' | jq"""
    assert json_of(sh(day1, halt))["config"]["rate_limits"]["submit_per_minute"] == 0
    (day1.workdir / "third.json").write_text(
        json.dumps({"id": "day1-halted", "version": "1", "benchmark": "noop", "container": {"image": "noop"}})
    )
    assert sh(day1, "jobspec-signer sign -k dev-key.json -i third.json -o third.signed.json").returncode == 0
    post = """curl -sS -o /dev/null -w '%{http_code}' -X POST https://<runner>/api/v1/jobs \\
      -H 'Content-Type: application/json' -d @./third.signed.json"""
    assert sh(day1, post).stdout == "429"
    revert = """curl -sSf -X POST https://<runner>/admin/config/revert -H "Authorization: Bearer $ADMIN_TOKEN" \\
      -H 'Content-Type: application/json' -d '{"to": "safe_default"}' | jq"""
    reverted = json_of(sh(day1, revert))
    assert reverted["reason"] == "revert-safe"
    assert reverted["config"]["constraints"]["default_region"] == "US"
    assert sh(day1, post).stdout == "202"


def test_server_log_is_json_without_secrets(day1: Served) -> None:
    lines = [line for line in day1.log.read_text().splitlines() if line.startswith("{")]
    assert lines, "GIN_MODE=release logs JSON lines"
    entries = [json.loads(line) for line in lines]
    access = [e for e in entries if e.get("logger") == "beacon.access"]
    assert any(e.get("route") == "/admin/config" and e.get("request_id") for e in access)
    text = day1.log.read_text()
    assert day1.env["ADMIN_TOKEN"] not in text
    assert day1.env["OPERATOR_TOKEN"] not in text
