"""Schemathesis hooks for the fuzzing run (``SCHEMATHESIS_HOOKS=tests.api.schemathesis_hooks``).

Generated JobSpecs get fresh replay fields and a signature by the trusted fuzzing key (its seed in
``BEACON_FUZZ_KEY``), so POST /api/v1/jobs is exercised past the signature check, into intake.
Every response to that operation is counted by status in ``BEACON_FUZZ_TALLY`` (a JSON file), so
the test can show how often intake was reached.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis

from beacon.intake import sign_jobspec, stamp
from beacon.keys import Ed25519Key

_KEY = (
    Ed25519Key.from_seed(base64.b64decode(os.environ["BEACON_FUZZ_KEY"]))
    if "BEACON_FUZZ_KEY" in os.environ
    else None
)
_TALLY: Counter[str] = Counter()


def _operation(context: Any) -> tuple[str, str] | None:
    operation = context.operation
    return (operation.method.upper(), operation.path) if operation is not None else None


def _is_submission(context: Any) -> bool:
    return _operation(context) == ("POST", "/api/v1/jobs")


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    """Sign what is generated for POST /api/v1/jobs (a JobSpec that cannot be signed is sent as is).

    An admin config update keeps the runner open: a fuzzed ``submissions_paused: true`` or a zero
    rate limit would turn every later submission into a deliberate 503/429 (tested elsewhere).
    """
    if _operation(context) == ("PUT", "/admin/config") and isinstance(body, dict):
        return {k: v for k, v in body.items() if k not in ("submissions_paused", "rate_limits")}
    if _KEY is None or not _is_submission(context) or not isinstance(body, dict):
        return body
    _TALLY["signed by the hook"] += 1
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        return body
    metadata = {k: v for k, v in metadata.items() if k not in ("timestamp", "nonce")}
    try:
        return sign_jobspec(stamp({**body, "metadata": metadata}), _KEY)
    except ValueError:  # no canonical form (an integer beyond 2**53, say)
        return body


@schemathesis.hook
def map_headers(context: schemathesis.HookContext, headers: Any) -> Any:
    """A fresh Idempotency-Key on each submission that has one: repeated generated keys would make
    most submissions a 422 before intake (its rules are tested in tests/intake/test_service.py)."""
    if _is_submission(context) and isinstance(headers, dict) and "Idempotency-Key" in headers:
        return {**headers, "Idempotency-Key": uuid.uuid4().hex}
    return headers


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: Any, response: Any) -> None:
    """Count POST /api/v1/jobs answers by status (202 and 4xx past the signature are intake's)."""
    if not _is_submission(context) or "BEACON_FUZZ_TALLY" not in os.environ:
        return
    body = response.text if response.status_code >= 400 else ""
    code = json.loads(body).get("code", "") if body.startswith("{") else ""
    _TALLY[f"{response.status_code} {code}".strip()] += 1
    Path(os.environ["BEACON_FUZZ_TALLY"]).write_text(json.dumps(_TALLY))
