"""Admin configuration over HTTP: the plan's body, validation with paths, versions, revert, audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from beacon.admin_config import safe_default
from beacon.api import create_app
from beacon.boot import open_runtime
from beacon.runtime import Runtime
from tests.api.conftest import TOKENS, auth

PLAN_BODY = {
    "ipfs_gateway": "https://w3s.link",
    "features": {"ws_live_updates": False},
    "constraints": {"default_region": "EU", "max_cost": 2.5},
}


@pytest.fixture
def store_url(database_url: str) -> str:
    return database_url


async def put(client: httpx.AsyncClient, body: Any, role: str = "admin", **headers: str) -> httpx.Response:
    return await client.put("/admin/config", json=body, headers={**auth(role), **headers})


async def test_the_safe_default_is_version_zero(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/config", headers=auth("operator"))
    assert response.status_code == 200
    body = response.json()
    assert (body["version"], body["reason"], response.headers["etag"]) == (0, "safe-default", '"0"')
    config = body["config"]
    assert config["constraints"] == {"default_region": "US", "max_cost": 5.0, "max_duration": 900}
    assert config["features"] == {"bias_dashboard": True, "provider_map": True, "ws_live_updates": True}
    assert config["rate_limits"] == {"default_per_minute": 600, "submit_per_minute": 600}
    assert config["submissions_paused"] is False
    assert response.headers["cache-control"] == "no-store"


async def test_the_plans_exact_update_works_and_merges(client: httpx.AsyncClient) -> None:
    response = await put(client, PLAN_BODY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1
    assert body["updated_by"].startswith("admin:")
    assert TOKENS["admin"] not in response.text
    config = body["config"]
    assert config["ipfs_gateway"] == "https://w3s.link"
    assert config["features"] == {"bias_dashboard": True, "provider_map": True, "ws_live_updates": False}
    assert config["constraints"] == {"default_region": "EU", "max_cost": 2.5, "max_duration": 900}
    assert (await client.get("/admin/config", headers=auth("operator"))).json() == body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"features": {"ws_live_update": False}}, ["features.ws_live_update"]),
        ({"colour": "blue"}, ["colour"]),
        ({"constraints": {"default_region": "MARS"}}, ["constraints.default_region"]),
        (
            {"constraints": {"max_cost": -1, "max_duration": 0}},
            ["constraints.max_cost", "constraints.max_duration"],
        ),
        ({"ipfs_gateway": "ftp://gateway"}, ["ipfs_gateway"]),
        ({"ipfs_gateway": "https://user:hunter2@gateway.example"}, ["ipfs_gateway"]),
        ({"rate_limits": {"submit_per_minute": -1}}, ["rate_limits.submit_per_minute"]),
        ({"security": {"require_signature": False}}, ["security.require_signature"]),
        ({"security": {"allowed_submitter_keys": ["AAAA="]}}, ["security.allowed_submitter_keys"]),
        ({"display": {"banner": "x" * 501}}, ["display.banner"]),
        ({"features": None}, ["features"]),
        ({"submissions_paused": "maybe"}, ["submissions_paused"]),
        # issue 16, item 8: a query secret is a credential like userinfo
        ({"ipfs_gateway": "https://gateway.example/?token=hunter2"}, ["ipfs_gateway"]),
        (
            {"transparency_log": {"endpoint": "https://t.example/log?api_key=hunter2"}},
            ["transparency_log.endpoint"],
        ),
        # issue 16, item 6: no coercion — a boolean is not a number, nor a string a boolean
        ({"rate_limits": {"submit_per_minute": True}}, ["rate_limits.submit_per_minute"]),
        ({"submissions_paused": 1}, ["submissions_paused"]),
        ({"constraints": {"max_duration": "900"}}, ["constraints.max_duration"]),
    ],
)
async def test_invalid_updates_are_400_with_field_paths_and_change_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], paths: list[str]
) -> None:
    response = await put(client, body)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "invalid_config"
    assert sorted(e["path"] for e in problem["errors"]) == sorted(paths)
    assert "hunter2" not in response.text
    assert (await client.get("/admin/config", headers=auth("admin"))).json()["version"] == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("content", [b"[]", b"{}", b"not json", b'"x"'])
async def test_bodies_that_are_not_an_update_are_400(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.put(
        "/admin/config", content=content, headers={**auth("admin"), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid_config", "invalid_json")


async def test_operators_read_but_do_not_write(client: httpx.AsyncClient) -> None:
    assert (await put(client, PLAN_BODY, role="operator")).status_code == 403
    assert (await client.put("/admin/config", json=PLAN_BODY)).status_code == 401
    assert (await client.get("/admin/config", headers=auth("viewer"))).status_code == 403


async def test_if_match_refuses_a_stale_edit(client: httpx.AsyncClient) -> None:
    assert (await put(client, {"display": {"banner": "one"}}, **{"If-Match": '"0"'})).status_code == 200
    stale = await put(client, {"display": {"banner": "two"}}, **{"If-Match": '"0"'})
    assert (stale.status_code, stale.json()["code"], stale.json()["current_version"]) == (
        412,
        "version_mismatch",
        1,
    )
    assert (await put(client, {"display": {"banner": "x"}}, **{"If-Match": "soon"})).status_code == 400


async def test_versions_revert_and_audit(client: httpx.AsyncClient) -> None:
    await put(client, PLAN_BODY)
    await put(client, {"submissions_paused": True})
    previous = await client.post("/admin/config/revert", headers=auth("admin"))
    assert previous.status_code == 200
    assert (previous.json()["version"], previous.json()["reason"]) == (3, "revert")
    assert previous.json()["config"]["submissions_paused"] is False
    assert previous.json()["config"]["ipfs_gateway"] == "https://w3s.link"

    safe = await client.post("/admin/config/revert", json={"to": "safe_default"}, headers=auth("admin"))
    assert safe.json()["config"]["ipfs_gateway"] == "https://ipfs.io"
    assert safe.json()["reason"] == "revert-safe"

    to_one = await client.post("/admin/config/revert", json={"to": 1}, headers=auth("admin"))
    assert to_one.json()["config"]["constraints"]["default_region"] == "EU"
    future = await client.post("/admin/config/revert", json={"to": 99}, headers=auth("admin"))
    assert (future.status_code, future.json()["code"]) == (409, "nothing_to_revert")
    bad = await client.post("/admin/config/revert", json={"to": "yesterday"}, headers=auth("admin"))
    assert bad.status_code == 400

    history = (await client.get("/admin/config/versions?limit=2", headers=auth("operator"))).json()
    assert [v["version"] for v in history["versions"]] == [5, 4]
    older = (
        await client.get(f"/admin/config/versions?before={history['next_before']}", headers=auth("operator"))
    ).json()
    assert [v["version"] for v in older["versions"]] == [3, 2, 1]
    assert older["versions"][-1]["change"] == PLAN_BODY

    audit = await client.get("/admin/audit", headers=auth("admin"))
    entries = audit.json()["entries"]
    assert [e["action"] for e in entries] == [
        "admin_config.revert",
        "admin_config.revert-safe",
        "admin_config.revert",
        "admin_config.update",
        "admin_config.update",
    ]
    assert all(e["actor"].startswith("admin:") and e["request_id"] for e in entries)
    assert not any(token in audit.text for token in TOKENS.values())
    assert (await client.get("/admin/audit", headers=auth("operator"))).status_code == 403


@pytest.mark.parametrize("to", [False, True, "1", 1.5])
async def test_revert_takes_no_boolean_or_string_for_a_version(client: httpx.AsyncClient, to: Any) -> None:
    # Issue 16, item 6: {"to": false} reverted to version 0 (the safe default).
    assert (await put(client, {"display": {"banner": "v1"}})).status_code == 200
    response = await client.post("/admin/config/revert", json={"to": to}, headers=auth("admin"))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    assert (await client.get("/admin/config", headers=auth("admin"))).json()["version"] == 1


def test_a_query_secret_in_ipfs_gateway_is_dropped_from_the_shown_default(make_settings: Any) -> None:
    config = safe_default(make_settings(ipfs_gateway="https://gw.example/ipfs?token=hunter2&x=1"))
    assert config.ipfs_gateway == "https://gw.example/ipfs?x=1"


async def test_nothing_to_revert_on_a_fresh_runner(client: httpx.AsyncClient) -> None:
    response = await client.post("/admin/config/revert", headers=auth("admin"))
    assert (response.status_code, response.json()["code"]) == (409, "nothing_to_revert")


async def test_the_config_survives_a_restart(
    client: httpx.AsyncClient, runtime: Runtime, make_settings: Callable[..., Any]
) -> None:
    await put(client, PLAN_BODY)
    async with open_runtime(runtime.settings) as again:
        transport = httpx.ASGITransport(app=create_app(again.settings, again))
        async with httpx.AsyncClient(transport=transport, base_url="http://restarted") as fresh:
            body = (await fresh.get("/admin/config", headers=auth("admin"))).json()
    assert body["version"] == 1
    assert body["config"]["constraints"]["default_region"] == "EU"


async def test_another_process_sees_a_change_within_a_second(runtime: Runtime) -> None:
    from beacon.admin_config import AdminConfigStore

    here = AdminConfigStore(runtime.db, runtime.settings, refresh_s=0.2)
    there = AdminConfigStore(runtime.db, runtime.settings, refresh_s=0.2)
    assert (await there.current()).version == 0
    await here.update({"submissions_paused": True}, actor="admin:x")
    import asyncio

    await asyncio.sleep(0.25)
    assert (await there.current()).config.submissions_paused is True
