"""Admin configuration: read (operator), change and revert (admin), history and audit.

The plan's exact body works::

    PUT /admin/config
    {"ipfs_gateway": "https://w3s.link", "features": {"ws_live_updates": false},
     "constraints": {"default_region": "EU", "max_cost": 2.5}}

Updates are partial (objects merge key by key). Every change becomes a new numbered version; the
response's ``ETag`` is that version and ``If-Match`` on PUT refuses a stale edit (412).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from beacon.admin_config import (
    AdminConfig,
    ConfigUpdateError,
    ConfigVersion,
    NothingToRevert,
    VersionConflict,
)
from beacon.api.auth import Principal, Role, require
from beacon.api.deps import get_runtime
from beacon.api.openapi import add_component_schemas, problem_responses
from beacon.api.params import RequestBody, json_integers
from beacon.api.problems import Problem, request_id_of
from beacon.audit import entries as audit_entries
from beacon.clock import iso_time
from beacon.runtime import Runtime

router = APIRouter(prefix="/admin", tags=["admin"])

Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


class ConfigVersionOut(BaseModel):
    version: int = Field(description="0 is the safe default built from the settings")
    reason: str = Field(description="safe-default | update | revert | revert-safe")
    updated_by: str = Field(description="role:token-fingerprint of the author (never the token)")
    updated_at: str | None
    config: AdminConfig


class HistoryEntry(BaseModel):
    version: int
    reason: str
    actor: str
    change: dict[str, Any] | None
    created_at: str | None


class HistoryOut(BaseModel):
    versions: list[HistoryEntry]
    next_before: int | None = Field(description="pass as ?before= for the next page")


class AuditEntry(BaseModel):
    id: int
    at: str | None
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any] | None
    request_id: str | None


class AuditOut(BaseModel):
    entries: list[AuditEntry]
    next_before: int | None


class RevertRequest(RequestBody):
    to: Literal["previous", "safe_default"] | Annotated[int, Field(ge=0, le=2**53)] = "previous"
    """``previous`` (the version before the current one), ``safe_default`` (version 0), or a version number."""

    _integers = field_validator("to", mode="before")(json_integers)


def _answer(version: ConfigVersion, status: int = 200) -> JSONResponse:
    return JSONResponse(version.as_api(), status_code=status, headers={"ETag": f'"{version.version}"'})


def _if_match(header: str | None) -> int | None:
    if header is None or header.strip() == "*":
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise Problem(
            400, "invalid_if_match", "Invalid If-Match", 'If-Match must be a config version ETag, e.g. "3"'
        )
    return int(text)


def _update_schema() -> dict[str, Any]:
    """AdminConfig's schema with nothing required: the shape of a partial update."""
    schema = AdminConfig.model_json_schema(ref_template="#/components/schemas/AdminConfigUpdate.{model}")

    def relax(node: dict[str, Any]) -> dict[str, Any]:
        node.pop("required", None)
        for prop in node.get("properties", {}).values():
            prop.pop("default", None)
        return node

    defs = {f"AdminConfigUpdate.{name}": relax(d) for name, d in schema.pop("$defs", {}).items()}
    return {"AdminConfigUpdate": relax(schema), **defs}


add_component_schemas(_update_schema())


@router.get("/config", response_model=ConfigVersionOut)
async def get_config(_: Operator, runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    """The admin config in force, with its version (also the ``ETag``)."""
    return _answer(await runtime.admin_config.current())


@router.put(
    "/config",
    response_model=ConfigVersionOut,
    responses=problem_responses(412),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AdminConfigUpdate"}}},
        }
    },
)
async def put_config(
    request: Request,
    principal: Admin,
    runtime: Runtime = Depends(get_runtime),
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> JSONResponse:
    """Apply a partial update (admin only). Unknown fields and bad values → 400 with field paths."""
    expected = _if_match(if_match)
    try:
        change = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "invalid_json", "The body is not JSON", str(exc)) from None
    if not isinstance(change, dict):
        raise Problem(400, "invalid_config", "Invalid configuration", "the body must be a JSON object")
    if not change:
        raise Problem(400, "invalid_config", "Invalid configuration", "the update is empty")
    try:
        version = await runtime.admin_config.update(
            change, actor=principal.actor, request_id=request_id_of(request), if_match=expected
        )
    except ConfigUpdateError as exc:
        raise Problem(400, "invalid_config", "Invalid configuration", str(exc), errors=exc.errors) from None
    except VersionConflict as exc:
        raise Problem(
            412,
            "version_mismatch",
            "The configuration changed meanwhile",
            f"If-Match names another version; the current one is {exc.current}",
            current_version=exc.current,
        ) from None
    return _answer(version)


@router.post("/config/revert", response_model=ConfigVersionOut, responses=problem_responses(409))
async def revert_config(
    request: Request,
    principal: Admin,
    body: RevertRequest | None = None,
    runtime: Runtime = Depends(get_runtime),
) -> JSONResponse:
    """Return to the previous version, the safe default, or a given version (recorded as a new version)."""
    target = (body or RevertRequest()).to
    try:
        version = await runtime.admin_config.revert(
            target, actor=principal.actor, request_id=request_id_of(request)
        )
    except NothingToRevert as exc:
        raise Problem(409, "nothing_to_revert", "Nothing to revert to", str(exc)) from None
    return _answer(version)


@router.get("/config/versions", response_model=HistoryOut)
async def config_history(
    _: Operator,
    runtime: Runtime = Depends(get_runtime),
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> HistoryOut:
    """Stored versions, newest first: who changed what, when."""
    versions = await runtime.admin_config.history(limit=limit, before=before)
    entries = [
        HistoryEntry(
            version=v.version,
            reason=v.reason,
            actor=v.actor,
            change=v.change,
            created_at=iso_time(v.created_at),
        )
        for v in versions
    ]
    next_before = entries[-1].version if len(entries) == limit else None
    return HistoryOut(versions=entries, next_before=next_before)


@router.get("/audit", response_model=AuditOut)
async def audit(
    _: Admin,
    runtime: Runtime = Depends(get_runtime),
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> AuditOut:
    """The audit log of admin actions, newest first (admin only)."""
    rows = await audit_entries(runtime.db, limit=limit, before=before)
    entries = [AuditEntry(**row) for row in rows]
    return AuditOut(entries=entries, next_before=entries[-1].id if len(entries) == limit else None)
