"""A Hypothesis fuzzer of signed JobSpecs through the real intake of a `beacon serve`, on SQLite and PostgreSQL.

Issue 16, item 7: whatever a trusted key signs, the answer is a 202 or a problem+json 4xx — never a
5xx. Documents are near-valid JobSpecs with fields replaced by arbitrary JSON, so most reach the
model, the planner and the admin limits past the signature check (the tally shows how far).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beacon.intake import sign_jobspec, stamp
from beacon.keys import Ed25519Key
from beacon.models.jobspec import JobSpec
from tests.api.conftest import start_server, stop_server

JSON_HEADERS = {"Content-Type": "application/json"}

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["noop", "who-are-you", "bias-detection", "US", "eu-west", "APAC", "1h", "PT5M", ""])
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_fields = st.sampled_from(sorted(({*JobSpec.model_fields} - {"signature", "public_key"}) | {"container"}))
_constraints = st.fixed_dictionaries(
    {},
    optional={
        "regions": st.lists(st.sampled_from(["US", "EU", "ASIA", "apac", "MARS"]) | _scalars, max_size=4),
        "timeout": _json,
        "provider_timeout": _json,
        "min_regions": _json,
        "min_success_rate": _json,
        "max_cost": _json,
    },
)
BASE = {"version": "1", "benchmark": "noop", "container": {"image": "noop"}}
documents = st.one_of(
    st.builds(lambda c: {**BASE, "constraints": c}, _constraints),
    st.builds(lambda changes: {**BASE, **changes}, st.dictionaries(_fields, _json, max_size=4)),
    st.dictionaries(_fields, _json, max_size=6),
)


BEFORE_THE_SIGNATURE = ("400 invalid_json", "400 invalid_body", "400 duplicate_key", "400 signature_missing")


@pytest.mark.slow
def test_no_signed_jobspec_is_a_server_error(tmp_path: Path, database_url: str) -> None:
    key = Ed25519Key.generate()
    extra = {"SUBMIT_RATE_LIMIT_PER_MINUTE": "1000000", "BEACON_ACCESS_LOG": "false"}
    if database_url.startswith("postgresql"):
        extra["DATABASE_URL"] = database_url
    served = start_server(
        tmp_path / "serve", extra, trusted=[{"kid": "fuzz", "public_key": key.public_key_b64}]
    )
    tally: Counter[str] = Counter()

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(document=documents)
    def submit(document: dict[str, Any]) -> None:
        try:
            body = json.dumps(sign_jobspec(stamp(document), key)).encode()
        except (ValueError, TypeError):  # no canonical form (an integer beyond 2**53, say): unsigned
            body = json.dumps(document).encode()
        response = http.post("/api/v1/jobs", content=body, headers=JSON_HEADERS)
        code = response.json().get("code", "") if response.status_code >= 400 else ""
        tally[f"{response.status_code} {code}".strip()] += 1
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"

    try:
        with httpx.Client(base_url=served.url, timeout=30) as http:
            submit()
    finally:
        stop_server(served)
    print(json.dumps(tally, indent=1))  # the closing note's numbers
    past_the_signature = sum(n for status, n in tally.items() if not status.startswith(BEFORE_THE_SIGNATURE))
    assert sum(tally.values()) >= 300 and past_the_signature >= 200, tally
