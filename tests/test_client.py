"""BeaconClient against a real embedded runner: typed calls, problem errors, timing, tokens by name."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from beacon.client import (
    BeaconAPIError,
    BeaconClient,
    BeaconConfigError,
    BeaconConnectionError,
    CallRecord,
)
from beacon.harness import jobs
from beacon.harness.launcher import EmbeddedRunner
from beacon.keys import read_key_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runner() -> Iterator[EmbeddedRunner]:
    with EmbeddedRunner() as embedded:
        yield embedded


@pytest.fixture
def tokens(runner: EmbeddedRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    assert runner.credentials is not None
    for name, value in runner.credentials.env().items():
        monkeypatch.setenv(name, value)


def test_tokens_come_from_environment_variable_names(runner: EmbeddedRunner, tokens: None) -> None:
    with BeaconClient(runner.url, token_env="ADMIN_TOKEN") as admin:
        assert admin.whoami()["role"] == "admin"
        assert admin.label == "admin"
        assert admin.anonymous().whoami()["role"] == "anonymous"
        assert "categories" in admin.questions()
        with pytest.raises(BeaconAPIError) as caught:
            admin.anonymous().admin_config()
        assert caught.value.status == 401
        assert admin.with_token("OPERATOR_TOKEN").whoami()["role"] == "operator"
    with pytest.raises(BeaconConfigError, match="NOT_SET_ANYWHERE is not set"):
        BeaconClient(runner.url, token_env="NOT_SET_ANYWHERE")


def test_problems_raise_one_exception_with_status_code_detail_and_request_id(
    runner: EmbeddedRunner, tokens: None
) -> None:
    client = BeaconClient(runner.url, token_env="VIEWER_TOKEN")
    with pytest.raises(BeaconAPIError) as caught:
        client.admin_config()
    error = caught.value
    assert error.status == 403
    assert error.code == "forbidden"
    assert error.detail and "operator" in error.detail
    assert error.request_id and len(error.request_id) >= 16
    with pytest.raises(BeaconAPIError) as missing:
        client.job("no-such-job")
    assert (missing.value.status, missing.value.code) == (404, "job_not_found")


def test_every_call_is_timed_and_recorded_with_its_route(runner: EmbeddedRunner, tokens: None) -> None:
    client = BeaconClient(runner.url, token_env="OPERATOR_TOKEN")
    seen: list[CallRecord] = []
    unsubscribe = client.log.subscribe(seen.append)
    client.health()
    with pytest.raises(BeaconAPIError):
        client.job("missing-job")
    unsubscribe()
    client.health()
    assert [r.route for r in seen] == ["/health", "/api/v1/jobs/{id}"]
    assert seen[1].status == 404 and seen[1].code == "job_not_found"
    assert all(r.duration_s > 0 and r.request_id for r in seen)
    assert len(client.calls) == 3


def test_idempotency_key_replays_the_submission(runner: EmbeddedRunner, tokens: None) -> None:
    assert runner.credentials is not None
    key = read_key_file(runner.credentials.signing_key_file)
    client = BeaconClient(runner.url, token_env="OPERATOR_TOKEN")
    job_id = jobs.new_job_id("client")
    document = jobs.sign(jobs.minimal_jobspec(job_id), key)
    first = client.submit_job(document, idempotency_key=f"k-{job_id}")
    again = client.submit_job(document, idempotency_key=f"k-{job_id}")
    assert first["id"] == again["id"] == job_id
    other = jobs.sign(jobs.minimal_jobspec(job_id + "-other"), key)
    with pytest.raises(BeaconAPIError) as conflict:
        client.submit_job(other, idempotency_key=f"k-{job_id}")
    assert (conflict.value.status, conflict.value.code) == (422, "idempotency_key_reused")
    assert client.job(job_id)["id"] == job_id


def test_a_signed_file_is_submitted_byte_for_byte(
    runner: EmbeddedRunner, tokens: None, tmp_path: Path
) -> None:
    assert runner.credentials is not None
    key = read_key_file(runner.credentials.signing_key_file)
    job_id = jobs.new_job_id("client-bytes")
    path = tmp_path / "signed.json"
    path.write_text(json.dumps(jobs.sign(jobs.minimal_jobspec(job_id), key), indent=2) + "\n")
    body = path.read_bytes()
    assert body != json.dumps(json.loads(body), separators=(",", ":")).encode()  # not what a client writes
    client = BeaconClient(runner.url, token_env="OPERATOR_TOKEN")
    accepted = client.submit_job(body, idempotency_key=f"k-{job_id}")
    assert accepted["id"] == job_id
    assert accepted["spec_hash"] == client.job(job_id)["spec_hash"] == hashlib.sha256(body).hexdigest()
    assert client.submit_job(body, idempotency_key=f"k-{job_id}")["id"] == job_id  # the key replays


def test_unreachable_runner_is_a_connection_error_and_recorded() -> None:
    client = BeaconClient("http://127.0.0.1:9", timeout=2)
    with pytest.raises(BeaconConnectionError):
        client.health()
    assert client.calls[-1].status is None and client.calls[-1].code


def test_every_route_of_the_api_has_a_client_method(tmp_path) -> None:
    import re

    from beacon.api.app import create_app
    from beacon.client import _Routes
    from beacon.config import Settings

    app = create_app(Settings(data_dir=tmp_path))
    served = {
        (method, re.sub(r"\{[^}]+\}", "{}", route.path))
        for route in app.routes
        if hasattr(route, "methods") and not route.path.startswith(("/docs", "/redoc", "/portal"))  # pages
        for method in route.methods
        if method != "HEAD"
    }
    built = set()
    for _, builder in inspect.getmembers(_Routes, predicate=inspect.isfunction):
        required = [
            p for p in inspect.signature(builder).parameters.values() if p.default is inspect.Parameter.empty
        ]
        call = builder(
            *[{} if p.name in ("document", "patch") else 1 if p.name == "index" else "x" for p in required]
        )
        built.add((call.method, re.sub(r"\{[^}]+\}", "{}", call.route)))
    assert served - built == set()


@pytest.mark.parametrize("url", ["http://[::", "127.0.0.1:8090", "ftp://runner.example", ""])
def test_a_malformed_runner_url_is_a_config_error(url: str) -> None:
    with pytest.raises(BeaconConfigError, match="not a runner URL"):
        BeaconClient(url)
