"""``GET /auth/whoami``: the caller's role and token fingerprint (never the token)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from beacon.api.auth import Principal, principal_from_request
from beacon.api.openapi import problem_responses

router = APIRouter(tags=["auth"])


class WhoAmI(BaseModel):
    role: Literal["admin", "operator", "viewer", "anonymous"]
    authenticated: bool
    fingerprint: str | None
    """First 12 hex characters of SHA-256 of the token; null without a token."""


@router.get("/auth/whoami", response_model=WhoAmI, responses=problem_responses(401))
async def whoami(principal: Annotated[Principal, Depends(principal_from_request)]) -> WhoAmI:
    """Who the runner thinks you are. An unknown or malformed token is a 401, not anonymous."""
    return WhoAmI(
        role=principal.role.label,
        authenticated=principal.fingerprint is not None,
        fingerprint=principal.fingerprint,
    )
