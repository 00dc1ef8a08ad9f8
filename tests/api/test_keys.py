"""GET /api/v1/keys/trust: whether JobSpecs signed by a key would pass the runner's trust step."""

from __future__ import annotations

import httpx

from beacon.keys import Ed25519Key, key_id

from .conftest import TOKENS, auth


async def test_a_trusted_key_is_reported_trusted_with_its_entry_kid(
    client: httpx.AsyncClient, signing_key: Ed25519Key
) -> None:
    answer = await client.get("/api/v1/keys/trust", params={"public_key": signing_key.public_key_b64})
    assert answer.status_code == 200
    assert answer.json() == {
        "public_key": signing_key.public_key_b64,
        "kid": "dev",
        "status": "trusted",
        "submit_allowed": True,
        "code": None,
        "reason": None,
    }


async def test_an_unlisted_key_is_unknown_with_intakes_refusal_code(client: httpx.AsyncClient) -> None:
    stranger = Ed25519Key.generate()
    body = (await client.get("/api/v1/keys/trust", params={"public_key": stranger.public_key_b64})).json()
    assert body["status"] == "unknown" and body["submit_allowed"] is False
    assert body["code"] == "key_unknown" and body["kid"] == key_id(stranger.public_key)
    assert "TRUSTED_KEYS" in body["reason"]


async def test_the_admin_allowlist_narrows_a_trusted_key(
    client: httpx.AsyncClient, signing_key: Ed25519Key
) -> None:
    other = Ed25519Key.generate().public_key_b64
    put = await client.put(
        "/admin/config", json={"security": {"allowed_submitter_keys": [other]}}, headers=auth("admin")
    )
    assert put.status_code == 200, put.text
    body = (await client.get("/api/v1/keys/trust", params={"public_key": signing_key.public_key_b64})).json()
    assert (
        body["status"] == "trusted" and body["submit_allowed"] is False and body["code"] == "key_not_allowed"
    )
    assert TOKENS["admin"] not in str(body)


async def test_a_malformed_key_is_a_problem_not_a_500(client: httpx.AsyncClient) -> None:
    for value in ("not base64!", "AAAA", ""):
        answer = await client.get("/api/v1/keys/trust", params={"public_key": value})
        assert answer.status_code == 400, value
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] in ("invalid_public_key", "invalid_request")
    missing = await client.get("/api/v1/keys/trust")
    assert missing.status_code == 400 and missing.json()["code"] == "invalid_request"
