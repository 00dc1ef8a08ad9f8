"""The probes the phase notebooks drive: error paths, the RBAC matrix, CORS, log searches.

Each returns plain rows (dicts), so a notebook shows them as a table and records them as checks;
none of them decides pass/fail on its own beyond comparing expected with actual.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from beacon.client import BeaconClient, problem_of
from beacon.harness import jobs
from beacon.intake import stamp
from beacon.keys import Ed25519Key

PROBLEM_MEDIA_TYPE = "application/problem+json"


def header_set(value: str | None) -> set[str]:
    """A comma-separated header value as a set of lower-case tokens."""
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def response_row(response: httpx.Response) -> dict[str, Any]:
    """Status, problem code and request id of a response."""
    problem = problem_of(response) if response.status_code >= 400 else {}
    return {
        "status": response.status_code,
        "code": problem.get("code"),
        "request_id": response.headers.get("x-request-id") or problem.get("request_id"),
        "content_type": response.headers.get("content-type", "").split(";")[0],
        "detail": problem.get("detail"),
    }


# --- T-15: invalid submissions ----------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCase:
    """One invalid submission: what to send, and what the plan expects back."""

    id: str
    description: str
    send: Callable[[BeaconClient], httpx.Response]
    job_id: str | None
    """The id the refused document carries (it must not exist afterwards)."""


def _post(
    body: bytes, content_type: str = "application/json", idempotency_key: str | None = None
) -> Callable[[BeaconClient], httpx.Response]:
    def send(client: BeaconClient) -> httpx.Response:
        return client.request(
            "POST",
            "/api/v1/jobs",
            content=body,
            headers={"Content-Type": content_type},
            idempotency_key=idempotency_key,
        )

    return send


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def error_cases(key: Ed25519Key, *, prefix: str, max_body_bytes: int = 1 << 20) -> list[ErrorCase]:
    """The T-15 table: every way a submission must be refused (the rate limit is separate)."""
    stranger = Ed25519Key.generate()
    ids = {
        name: jobs.new_job_id(f"{prefix}-{name}")
        for name in ("unsigned", "badsig", "untrusted", "ctype", "question", "region", "idem")
    }

    unsigned = jobs.minimal_jobspec(
        ids["unsigned"]
    )  # the plan's own unsigned example, verbatim but for the id
    tampered = jobs.sign(jobs.minimal_jobspec(ids["badsig"]), key)
    tampered["version"] = "2"  # a signed field changed after signing
    untrusted = jobs.sign(jobs.minimal_jobspec(ids["untrusted"]), stranger)
    wrong_type = jobs.sign(jobs.minimal_jobspec(ids["ctype"]), key)
    bad_question = jobs.sign(
        jobs.jobspec(ids["question"], benchmark="bias-detection", questions=["no_such_question"]), key
    )
    bad_region = jobs.sign(jobs.jobspec(ids["region"], benchmark="noop", regions=["MARS"]), key)
    oversized = b'{"id":"' + b"x" * (max_body_bytes + 1) + b'"}'
    first = jobs.sign(jobs.minimal_jobspec(ids["idem"]), key)
    second = jobs.sign(jobs.minimal_jobspec(ids["idem"] + "-b"), key)
    idem_key = f"{prefix}-idem-{time.time_ns()}"

    def reuse(client: BeaconClient) -> httpx.Response:
        accepted = _post(_json(first), idempotency_key=idem_key)(client)
        if accepted.status_code != 202:
            return accepted  # the first half already failed: show that response
        return _post(_json(second), idempotency_key=idem_key)(client)

    return [
        ErrorCase(
            "unsigned",
            "no signature or public_key (the plan's own example)",
            _post(_json(unsigned)),
            ids["unsigned"],
        ),
        ErrorCase(
            "bad_signature", "a signed field changed after signing", _post(_json(tampered)), ids["badsig"]
        ),
        ErrorCase(
            "untrusted_key", "signed by a key not in TRUSTED_KEYS", _post(_json(untrusted)), ids["untrusted"]
        ),
        ErrorCase("malformed_json", "the body is not JSON", _post(b'{"id": "broken", '), None),
        ErrorCase(
            "wrong_content_type",
            "a valid signed body sent as text/plain",
            _post(_json(wrong_type), "text/plain"),
            ids["ctype"],
        ),
        ErrorCase("oversized_body", f"a body over {max_body_bytes} bytes", _post(oversized), None),
        ErrorCase(
            "unknown_question",
            "a question id not in the question set",
            _post(_json(bad_question)),
            ids["question"],
        ),
        ErrorCase("unknown_region", "region MARS", _post(_json(bad_region)), ids["region"]),
        ErrorCase(
            "idempotency_key_reused", "the same Idempotency-Key with another body", reuse, ids["idem"] + "-b"
        ),
    ]


def probe_rate_limit(
    admin: BeaconClient,
    client: BeaconClient,
    *,
    limit: int,
    key: Ed25519Key,
    prefix: str,
    max_requests: int = 20,
) -> tuple[httpx.Response | None, int]:
    """Lower the submit limit to ``limit``, submit until refused; restore the limit. Returns (429 response, sent)."""
    before = admin.admin_config()["config"]["rate_limits"]["submit_per_minute"]
    admin.update_admin_config({"rate_limits": {"submit_per_minute": limit}})
    refused: httpx.Response | None = None
    sent = 0
    try:
        for _ in range(max_requests):
            document = stamp(
                jobs.minimal_jobspec(jobs.new_job_id(f"{prefix}-rate"))
            )  # unsigned: never accepted
            response = _post(_json(document))(client)
            sent += 1
            if response.status_code == 429:
                refused = response
                break
    finally:
        admin.update_admin_config({"rate_limits": {"submit_per_minute": before}})
    return refused, sent


# --- T-30: RBAC --------------------------------------------------------------------------------------

ROLES = ("anonymous", "viewer", "operator", "admin")


def rbac_matrix(
    clients: Mapping[str, BeaconClient], expectations: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Call each endpoint as each role; rows of expected vs actual status.

    An expectation: ``{"method": "GET", "path": "/admin/config", "anonymous": 401, "viewer": 403,
    "operator": 200, "admin": 200, "body": {...}?}``. Roles without a client are reported as skipped.
    """
    rows = []
    for expectation in expectations:
        method = str(expectation["method"]).upper()
        path = str(expectation["path"])
        for role in ROLES:
            if role not in expectation:
                continue
            expected = int(expectation[role])
            client = clients.get(role)
            if client is None:
                rows.append(
                    {
                        "method": method,
                        "path": path,
                        "role": role,
                        "expected": expected,
                        "actual": None,
                        "match": None,
                    }
                )
                continue
            response = client.request(method, path, json=expectation.get("body"))
            rows.append(
                {
                    "method": method,
                    "path": path,
                    "role": role,
                    "expected": expected,
                    "actual": response.status_code,
                    "code": response_row(response)["code"],
                    "match": response.status_code == expected,
                }
            )
    return rows


# --- CORS --------------------------------------------------------------------------------------------


def preflight(
    client: BeaconClient, path: str, origin: str, method: str, request_headers: str
) -> dict[str, Any]:
    """The plan's OPTIONS preflight; the response's CORS headers."""
    response = client.request(
        "OPTIONS",
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": request_headers,
        },
    )
    return {
        "status": response.status_code,
        "allow_origin": response.headers.get("access-control-allow-origin"),
        "allow_methods": response.headers.get("access-control-allow-methods"),
        "allow_headers": response.headers.get("access-control-allow-headers"),
        "allow_credentials": response.headers.get("access-control-allow-credentials"),
        "vary": response.headers.get("vary"),
    }


def headers_allowed(allowed: str | None, wanted: Iterable[str]) -> bool:
    tokens = header_set(allowed)
    return "*" in tokens or all(h.lower() in tokens for h in wanted)


# --- logs ---------------------------------------------------------------------------------------------


def log_lines_for(log_text: str, request_id: str) -> list[str]:
    """The runner's log lines that carry ``request_id``."""
    return [line for line in log_text.splitlines() if request_id in line]


def error_log_lines(log_text: str) -> list[str]:
    """Log lines at ERROR or above, and traceback starts (JSON or text logs).

    Which of them the harness caused on purpose is decided by request id
    (:func:`beacon.harness.checks.error_lines`), never by problem code.
    """
    found = []
    for line in log_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("{"):
            try:
                entry = json.loads(stripped)
            except json.JSONDecodeError:
                entry = None
            if isinstance(entry, dict):
                if (
                    str(entry.get("level", "")).upper() in ("ERROR", "CRITICAL")
                    or entry.get("exc_info")
                    or entry.get("traceback")
                ):
                    found.append(line)
                continue
        if (
            stripped.startswith("Traceback (most recent call last)")
            or stripped.startswith(("ERROR", "CRITICAL"))
            or " ERROR " in line
        ):
            found.append(line)
    return found
