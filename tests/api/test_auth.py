"""GET /auth/whoami: the role and a token fingerprint, never the token."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.api.conftest import TOKENS, auth


@pytest.mark.parametrize("role", ["admin", "operator", "viewer"])
async def test_whoami_names_the_role_and_fingerprints_the_token(client: httpx.AsyncClient, role: str) -> None:
    response = await client.get("/auth/whoami", headers=auth(role))
    assert response.status_code == 200
    assert response.json() == {
        "role": role,
        "authenticated": True,
        "fingerprint": hashlib.sha256(TOKENS[role].encode()).hexdigest()[:12],
    }
    assert TOKENS[role] not in response.text


async def test_whoami_without_a_token_is_anonymous(client: httpx.AsyncClient) -> None:
    assert (await client.get("/auth/whoami")).json() == {
        "role": "anonymous",
        "authenticated": False,
        "fingerprint": None,
    }


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer wrong", "invalid_token"),
        ("Bearer ", "invalid_authorization"),
        ("Token abc", "invalid_authorization"),
        (f"Bearer {TOKENS['admin']}x", "invalid_token"),
    ],
)
async def test_bad_tokens_are_401_not_anonymous(client: httpx.AsyncClient, header: str, code: str) -> None:
    response = await client.get("/auth/whoami", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")
