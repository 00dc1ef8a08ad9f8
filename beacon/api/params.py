"""One rule per kind of identifier the API reads from a path, a query or a body, checked at the edge.

Every route takes its identifiers through these annotations, so a malformed one (a NUL byte, a
slash, a control character, 10 kB of text) is a 400 ``invalid_request`` naming the parameter before
any store sees it — PostgreSQL refuses NUL in text, SQLite would just not find it — and the OpenAPI
document states the same rule (``pattern``/``maxLength``) to clients.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict

from beacon.api.problems import Problem
from beacon.config import REGION_ALIASES, REGIONS, normalize_region
from beacon.models.jobspec import ID_PATTERN

JOB_ID_PATTERN = ID_PATTERN
"""Job ids: letters, digits and ``._:@+-``, at most 128, not starting with punctuation."""
EXECUTION_ID_PATTERN = r"^ex_[0-9a-z]{1,61}$"
"""Execution ids: ``ex_`` and lower-case letters or digits (the planner writes 29 hex digits)."""
WORKER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$"
"""Worker ids: ``region-host-pid-random`` or an operator's ``--id``, same alphabet as job ids."""
REGION_SPELLINGS = tuple(sorted({*REGION_ALIASES, *(name.lower() for name in REGION_ALIASES)}))
REGION_PATTERN = "^(?:" + "|".join(REGION_SPELLINGS) + ")$"
"""A region as a client may spell it (``EU``, ``eu-west``, ``APAC``: a known alias, upper or lower case),
canonicalised by :func:`region_filter`. Exactly these: what the schema allows, the server accepts."""
CID_PATTERN = r"^[A-Za-z0-9]{1,128}$"
"""A content address in any multibase form (``bafy…``, ``BAFY…``, ``z…``); see beacon.transparency.cid."""
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,512}$"
"""An opaque page cursor: unpadded base64url, as the API hands it out."""
PUBLIC_KEY_PATTERN = r"^[A-Za-z0-9+/=_:-]{1,128}$"
"""An Ed25519 public key as the key tools write it (base64, optionally with its scheme prefix)."""

JobId = Annotated[str, Path(description="The job id", pattern=JOB_ID_PATTERN, max_length=128)]
JobIdFilter = Annotated[
    str | None,
    Query(description="Only this job's executions", pattern=JOB_ID_PATTERN, max_length=128),
]
ExecutionId = Annotated[
    str, Path(description="The execution id (ex_…)", pattern=EXECUTION_ID_PATTERN, max_length=64)
]
WorkerId = Annotated[str, Path(description="The worker id", pattern=WORKER_ID_PATTERN, max_length=128)]
RegionFilter = Annotated[
    str | None,
    Query(description="Only this region (US, EU, ASIA, or an alias)", pattern=REGION_PATTERN, max_length=16),
]
Cid = Annotated[str, Path(description="CIDv1 of the bundle", pattern=CID_PATTERN, max_length=128)]
Cursor = Annotated[
    str | None,
    Query(description="next_cursor of the previous page", pattern=CURSOR_PATTERN, max_length=512),
]


class RequestBody(BaseModel):
    """The base of every JSON request body: unknown fields refused and no coercion, so ``false`` is
    not the version 0 and ``"7"`` is not the id 7 (pydantic's strict mode)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def json_integers(value: Any) -> Any:
    """``7.0`` as ``7`` (JSON Schema's "integer" includes it), in a list too; anything else unchanged.

    For ``field_validator(..., mode="before")`` on integer fields of a strict body: ``true`` and
    ``"7"`` stay refused.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [json_integers(item) for item in value]
    return value


def region_filter(value: str | None) -> str | None:
    """The canonical region for a filter value; 400 ``unknown_region`` for a spelling no region has."""
    if value is None:
        return None
    region = normalize_region(value)
    if region is None:
        raise Problem(
            400, "unknown_region", "Unknown region", f"{value!r} is not one of {', '.join(REGIONS)}"
        )
    return region
