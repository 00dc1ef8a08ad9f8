"""The OpenAPI document describes every error, and the running server conforms to it (schemathesis).

The fuzzing run is bounded (about a dozen cases per operation, a few hundred in all) and signs the
JobSpecs it generates with a trusted key, so POST /api/v1/jobs is exercised past the signature check.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from beacon.api import create_app
from beacon.config import Settings
from beacon.intake import sign_jobspec, stamp
from beacon.keys import Ed25519Key
from tests.api.conftest import Served, auth, start_server, stop_server

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


# --- schemathesis against a real server -----------------------------------------------------------

FUZZ_KEY = Ed25519Key.generate()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start_server(
        tmp_path_factory.mktemp("fuzz"),
        {
            "RATE_LIMIT_PER_MINUTE": "1000000",
            "SUBMIT_RATE_LIMIT_PER_MINUTE": "1000000",
            "BEACON_ACCESS_LOG": "false",
        },
        trusted=[{"kid": "fuzz", "public_key": FUZZ_KEY.public_key_b64}],
    )
    yield served
    stop_server(served)


@pytest.fixture(scope="module")
def api_schema(fuzz_server: Served) -> Any:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json", timeout=30)

    @schema.hook("map_body")
    def sign_generated_jobspecs(context: schemathesis.HookContext, body: Any) -> Any:
        """Give generated JobSpecs fresh replay fields and a trusted signature."""
        operation = context.operation
        is_submission = operation is not None and (operation.method.upper(), operation.path) == (
            "POST",
            "/api/v1/jobs",
        )
        if not is_submission or not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            return body
        metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k not in ("timestamp", "nonce")}
        try:
            return sign_jobspec(stamp({**body, "metadata": metadata}), FUZZ_KEY)
        except ValueError:  # no JCS form (e.g. an integer beyond 2**53): send it unsigned
            return body

    return schema


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _operations() -> list[tuple[str, str]]:
    """Every operation the app documents (built in-process at collection; the server serves the same)."""
    app = create_app(Settings(data_dir=Path(tempfile.gettempdir()) / "beacon-openapi-collect"))
    paths = app.openapi()["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() for method in item)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda value: str(value))
def test_the_server_conforms_to_its_openapi_document(
    api_schema: Any, fuzz_server: Served, method: str, path: str
) -> None:
    """About a dozen generated cases per operation: no 5xx, only documented statuses, types and bodies."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=12,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def exercise(case: Any) -> None:
        case.call_and_validate(headers=auth("admin"), checks=CHECKS, timeout=30)

    if (method, path) == ("POST", "/api/v1/jobs"):
        # Operations fuzzed before this one may have paused submissions or lowered limits: start clean.
        httpx.post(
            f"{fuzz_server.url}/admin/config/revert", json={"to": "safe_default"}, headers=auth("admin")
        )
        # One valid document through the same checks (random ones rarely name a known benchmark).
        valid = sign_jobspec(
            stamp({"version": "1", "benchmark": "noop", "container": {"image": "noop"}}), FUZZ_KEY
        )
        response = operation.Case(body=valid, media_type="application/json").call_and_validate(
            headers=auth("admin"), checks=CHECKS, timeout=30
        )
        assert response.status_code == 202, response.text
    exercise()
