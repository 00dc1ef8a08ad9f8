"""Bearer-token RBAC: ``admin`` ⊃ ``operator`` ⊃ ``viewer`` ⊃ ``anonymous``.

Tokens come from ``ADMIN_TOKENS``/``OPERATOR_TOKENS``/``VIEWER_TOKENS``; each presented token is
compared with every configured one in constant time. Only a fingerprint of a token ever leaves this
module (responses, logs, audit rows).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any

from fastapi import Depends, Request

from beacon.api.problems import Problem
from beacon.canonical import sha256_hex
from beacon.config import Settings


class Role(IntEnum):
    ANONYMOUS = 0
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    role: Role
    fingerprint: str | None
    """First 12 hex characters of SHA-256 of the token; None when no token was presented."""

    @property
    def actor(self) -> str:
        return f"{self.role.label}:{self.fingerprint or '-'}"


def token_fingerprint(token: str) -> str:
    return sha256_hex(token.encode("utf-8"))[:12]


def resolve_role(settings: Settings, token: str) -> Role | None:
    """The highest role whose list holds ``token`` (constant-time per comparison), else None."""
    presented = token.encode("utf-8")
    found: Role | None = None
    for role, tokens in (
        (Role.ADMIN, settings.admin_tokens),
        (Role.OPERATOR, settings.operator_tokens),
        (Role.VIEWER, settings.viewer_tokens),
    ):
        for candidate in tokens:
            if hmac.compare_digest(presented, candidate.encode("utf-8")) and (found is None or role > found):
                found = role
    return found


async def principal_from_request(request: Request) -> Principal:
    """Who is calling. A malformed or unknown token is a 401, never silently anonymous.

    ``async`` (like every dependency here) because FastAPI runs plain ``def`` dependencies in a thread pool.
    """
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization")
    if not header:
        principal = Principal(Role.ANONYMOUS, None)
    else:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Problem(
                401,
                "invalid_authorization",
                "Malformed Authorization header",
                "use 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="beacon"'},
            )
        settings: Settings = request.app.state.settings
        role = resolve_role(settings, token)
        if role is None:
            raise Problem(
                401,
                "invalid_token",
                "Unknown token",
                "the bearer token is not configured on this runner",
                headers={"WWW-Authenticate": 'Bearer realm="beacon", error="invalid_token"'},
            )
        principal = Principal(role, token_fingerprint(token))
    request.state.principal = principal
    return principal


class RoleRequirement:
    """The dependency ``require`` returns; ``minimum`` is introspected by the OpenAPI and RBAC tests."""

    def __init__(self, minimum: Role) -> None:
        self.minimum = minimum

    async def __call__(self, principal: Annotated[Principal, Depends(principal_from_request)]) -> Principal:
        minimum = self.minimum
        if principal.role >= minimum:
            return principal
        if principal.role is Role.ANONYMOUS:
            raise Problem(
                401,
                "authentication_required",
                "Authentication required",
                f"this endpoint needs the {minimum.label} role; send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="beacon"'},
            )
        raise Problem(
            403,
            "forbidden",
            "Forbidden",
            f"this endpoint needs the {minimum.label} role; the token has {principal.role.label}",
            role=principal.role.label,
        )

    def __repr__(self) -> str:
        return f"require(Role.{self.minimum.name})"


_REQUIREMENTS = {role: RoleRequirement(role) for role in Role}


def require(minimum: Role) -> RoleRequirement:
    """A dependency that admits callers with at least ``minimum``: 401 without a token, 403 below it.

    Use as ``principal: Annotated[Principal, Depends(require(Role.OPERATOR))]`` or in a route's
    ``dependencies=[Depends(require(Role.ADMIN))]``.
    """
    return _REQUIREMENTS[minimum]


def minimum_role(dependant: Any) -> Role | None:
    """The highest role a route's dependency tree requires (None when it requires none)."""
    found: Role | None = None
    stack = [dependant]
    while stack:
        current = stack.pop()
        call = getattr(current, "call", None)
        if isinstance(call, RoleRequirement) and (found is None or call.minimum > found):
            found = call.minimum
        stack.extend(getattr(current, "dependencies", ()))
    return found
