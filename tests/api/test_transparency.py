"""The transparency endpoints over HTTP (in-process ASGI), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from multiformats import CID

from beacon.api.app import create_app
from beacon.boot import open_runtime
from beacon.canonical import jcs
from beacon.runtime import Runtime
from beacon.signing import verify_document
from beacon.transparency.checkpoint import open_checkpoint
from beacon.transparency.cid import compute_cid
from beacon.transparency.log import LeafInput
from beacon.transparency.merkle import verify_consistency, verify_inclusion
from beacon.transparency.note import Verifier
from beacon.transparency.proof import TlogProof

OPERATOR = "operator-token-for-tests"
VIEWER = "viewer-token-for-tests"


@pytest.fixture
async def runtime(database_url: str, make_settings: Callable[..., Any]) -> AsyncIterator[Runtime]:
    settings = make_settings(
        database_url=database_url,
        operator_tokens=[OPERATOR],
        viewer_tokens=[VIEWER],
        checkpoint_interval_s=3600,
        checkpoint_max_leaves=10**6,
    )
    async with open_runtime(settings) as rt:
        yield rt


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://beacon.test"
    ) as http:
        yield http


async def append(runtime: Runtime, n: int, start: int = 0) -> list[bytes]:
    entries = [jcs({"receipt_id": f"r{i}", "n": i}) for i in range(start, start + n)]
    async with runtime.db.begin() as conn:
        await runtime.tlog.append_many(
            conn, [LeafInput("receipt", f"r{i + start}", e) for i, e in enumerate(entries)]
        )
    return entries


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    return body


async def verifier(client: httpx.AsyncClient) -> Verifier:
    keys = (await client.get("/api/v1/transparency/keys")).json()
    return Verifier.parse(keys["keys"][0]["vkey"])


async def test_root_proof_and_checkpoint_agree(client: httpx.AsyncClient, runtime: Runtime) -> None:
    entries = await append(runtime, 11)
    vkey = await verifier(client)
    proof = (await client.get("/api/v1/transparency/proof", params={"index": 6})).json()
    assert proof["size"] == 11 and proof["index"] == 6
    root = (await client.get("/api/v1/transparency/root")).json()
    assert root["size"] == 11 and root["root"] == proof["root"] and root["checkpoint"] == proof["checkpoint"]
    assert root["timestamp"].endswith("Z") or "+" in root["timestamp"]
    note = await client.get("/api/v1/transparency/checkpoint")
    assert note.headers["content-type"].startswith("text/plain") and note.text == root["checkpoint"]
    signed = open_checkpoint(note.text, [vkey], runtime.settings.log_origin)
    assert signed.root.hex() == root["root"]
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]), 6, 11, [bytes.fromhex(h) for h in proof["proof"]], signed.root
    )
    TlogProof.parse(proof["tlog_proof"]).verify([vkey], entry=entries[6])
    entry = await client.get("/api/v1/transparency/entries/6")
    assert entry.content == entries[6] and entry.headers["beacon-leaf-hash"] == proof["leaf_hash"]


async def test_proof_parameter_errors(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await append(runtime, 3)
    # The bounds are declared in the OpenAPI document, so FastAPI enforces them (issue 16, item 7).
    problem(await client.get("/api/v1/transparency/proof"), 400, "invalid_request")
    problem(await client.get("/api/v1/transparency/proof", params={"index": -1}), 400, "invalid_request")
    problem(await client.get("/api/v1/transparency/proof", params={"index": "one"}), 400, "invalid_request")
    problem(await client.get("/api/v1/transparency/proof", params={"index": "1.5"}), 400, "invalid_request")
    problem(await client.get("/api/v1/transparency/proof", params={"index": 3}), 404, "not_in_log")
    problem(await client.get("/api/v1/transparency/proof", params={"index": 10**30}), 404, "not_in_log")
    problem(await client.get("/api/v1/transparency/proof", params={"index": 0, "size": 2}), 404, "not_in_log")
    problem(
        await client.get("/api/v1/transparency/proof", params={"index": 0, "size": 0}),
        400,
        "invalid_request",
    )
    problem(await client.get("/api/v1/transparency/entries/3"), 404, "not_in_log")
    problem(await client.get("/api/v1/transparency/entries/-1"), 400, "invalid_request")
    problem(await client.get("/api/v1/transparency/entries/x"), 400, "invalid_request")
    problem(await client.get("/api/v1/transparency/checkpoint", params={"size": 99}), 404, "not_in_log")
    # Beyond a 64-bit integer: still "not in the log", never a database overflow.
    problem(await client.get(f"/api/v1/transparency/entries/{10**30}"), 404, "not_in_log")
    problem(
        await client.get("/api/v1/transparency/proof", params={"index": 0, "size": 10**30}), 404, "not_in_log"
    )
    problem(await client.get("/api/v1/transparency/checkpoint", params={"size": 10**30}), 404, "not_in_log")
    problem(
        await client.get("/api/v1/transparency/consistency", params={"first": 1, "second": 10**30}),
        404,
        "not_in_log",
    )


async def test_consistency_between_checkpoints(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await append(runtime, 5)
    first = (await client.get("/api/v1/transparency/root")).json()
    await append(runtime, 9, start=5)
    second = (await client.get("/api/v1/transparency/proof", params={"index": 13})).json()
    body = (await client.get("/api/v1/transparency/consistency", params={"first": 5, "second": 14})).json()
    assert (
        body["first_checkpoint"] == first["checkpoint"] and body["second_checkpoint"] == second["checkpoint"]
    )
    verify_consistency(
        5,
        14,
        bytes.fromhex(first["root"]),
        bytes.fromhex(second["root"]),
        [bytes.fromhex(h) for h in body["proof"]],
    )
    default = (await client.get("/api/v1/transparency/consistency", params={"first": 5})).json()
    assert default["second"] == 14
    problem(await client.get("/api/v1/transparency/consistency"), 400, "invalid_request")
    problem(
        await client.get("/api/v1/transparency/consistency", params={"first": 0, "second": 3}),
        400,
        "invalid_request",
    )
    problem(
        await client.get("/api/v1/transparency/consistency", params={"first": 6, "second": 3}),
        400,
        "invalid_parameter",
    )
    problem(
        await client.get("/api/v1/transparency/consistency", params={"first": 1, "second": 15}),
        404,
        "not_in_log",
    )


async def test_empty_log_has_a_signed_empty_checkpoint(client: httpx.AsyncClient) -> None:
    root = (await client.get("/api/v1/transparency/root")).json()
    assert (
        root["size"] == 0
        and root["root"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    problem(await client.get("/api/v1/transparency/proof", params={"index": 0}), 404, "not_in_log")


async def test_keys_are_c2sp_vkeys_of_the_runner_key(client: httpx.AsyncClient, runtime: Runtime) -> None:
    body = (await client.get("/api/v1/transparency/keys")).json()
    key = body["keys"][0]
    parsed = Verifier.parse(key["vkey"])
    assert parsed.name == runtime.settings.log_origin == body["origin"]
    assert parsed.public_key == runtime.runner_key.public_key
    assert base64.b64decode(key["public_key"]) == runtime.runner_key.public_key


async def test_a_bundle_is_found_by_its_cid_in_any_multibase_or_case(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # Issue 16, item 8: the stored (base32) CID asked for as base58btc or upper case was a 404.
    data = b'{"bundle":"forms"}'
    cid = await runtime.content.put(data, "application/json")
    parsed = CID.decode(cid)
    for form in (cid, cid.upper(), str(parsed.set(base="base58btc")), str(parsed.set(base="base36"))):
        response = await client.get(f"/api/v1/transparency/bundles/{form}")
        assert response.status_code == 200, (form, response.text)
        assert response.content == data and response.headers["beacon-cid"] == cid


async def test_bundles_by_cid_are_rechecked(client: httpx.AsyncClient, runtime: Runtime) -> None:
    data = b'{"bundle":true}'
    cid = await runtime.content.put(data, "application/json")
    response = await client.get(f"/api/v1/transparency/bundles/{cid}")
    assert response.status_code == 200 and response.content == data
    assert compute_cid(response.content) == cid
    problem(await client.get("/api/v1/transparency/bundles/notacid"), 400, "invalid_cid")
    problem(
        await client.get("/api/v1/transparency/bundles/not-a-cid"), 400, "invalid_request"
    )  # the edge's rule
    problem(await client.get(f"/api/v1/transparency/bundles/{compute_cid(b'absent')}"), 404, "not_found")
    # Corrupt the stored bytes: the endpoint refuses to serve them under that CID.
    import sqlalchemy as sa

    from beacon.store.tables import content

    async with runtime.db.begin() as conn:
        await conn.execute(sa.update(content).where(content.c.cid == cid).values(data=b'{"bundle":false}'))
    problem(await client.get(f"/api/v1/transparency/bundles/{cid}"), 500, "content_integrity")


async def test_attestations_are_signed_logged_and_proven(client: httpx.AsyncClient, runtime: Runtime) -> None:
    document = {"notebooks": {"t-60.ipynb": "ab" * 32}, "summary": "cd" * 32}
    path = "/api/v1/transparency/attestations"
    problem(await client.post(path, json=document), 401, "authentication_required")
    problem(
        await client.post(path, json=document, headers={"Authorization": f"Bearer {VIEWER}"}),
        403,
        "forbidden",
    )
    auth = {"Authorization": f"Bearer {OPERATOR}"}
    problem(await client.post(path, content=b"{}", headers=auth), 415, "unsupported_media_type")
    as_json = {**auth, "Content-Type": "application/json"}
    problem(await client.post(path, content=b"{not json", headers=as_json), 400, "invalid_json")
    problem(await client.post(path, json=[1, 2], headers=auth), 400, "invalid_attestation")
    problem(await client.post(path, json={}, headers=auth), 400, "invalid_attestation")
    created = await client.post(path, json=document, headers=auth)
    assert created.status_code == 201, created.text
    body = created.json()
    receipt = body["receipt"]
    assert receipt["kind"] == "harness-receipt" and receipt["attestation"] == document
    verify_document(receipt, runtime.runner_key.public_key)
    vkey = Verifier.parse(body["vkey"])
    TlogProof.parse(body["proof"]).verify([vkey], entry=jcs(receipt), origin=runtime.settings.log_origin)
    assert TlogProof.parse(body["proof"]).index == body["leaf_index"]
    again = await client.post(path, json=document, headers=auth)
    assert again.status_code == 200 and again.json()["leaf_index"] == body["leaf_index"]
    assert again.json()["receipt"] == receipt
