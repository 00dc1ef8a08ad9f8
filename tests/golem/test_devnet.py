"""``beacon golem devnet``: the whole network on this machine, its CLI, and nothing left behind."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from beacon.cli import app
from beacon.golem import devnet as dn
from beacon.golem.chain import TGLM_ADDRESS, runtime_bytecode


def test_the_session_devnet_has_every_part_running(golem_devnet: Any) -> None:
    facts = dn.status(golem_devnet.dir)
    assert all(facts["processes"].values()), facts["processes"]
    assert set(facts["providers"]) == {"US", "EU", "ASIA"}
    chain = golem_devnet.chain()
    try:
        assert chain.chain_id() == 560048
        assert chain.rpc("eth_getCode", TGLM_ADDRESS, "latest") == runtime_bytecode()
        assert chain.glm_balance(golem_devnet.requestor.node_id) <= dn.FUNDS_GLM
        assert chain.glm_balance("0x" + "1" * 40) == Decimal(0)
    finally:
        chain.close()
    headers = {"Authorization": f"Bearer {golem_devnet.requestor.app_key}"}
    with httpx.Client(base_url=golem_devnet.requestor.api_url, headers=headers, trust_env=False) as http:
        assert http.get("/me").json()["identity"].lower() == golem_devnet.requestor.node_id
        platforms = [a["platform"] for a in http.get("/payment-api/v1/requestorAccounts").json()]
        assert "erc20-hoodi-tglm" in platforms
    env = golem_devnet.env()
    assert env["YAGNA_URL"] == golem_devnet.requestor.api_url and env["YAGNA_APPKEY"]
    assert json.loads(env["GOLEM_REGION_PROVIDERS"]) == golem_devnet.region_providers()


def test_cli_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    runner = CliRunner()
    where = tmp_path / "net"
    up = runner.invoke(app, ["golem", "devnet", "up", "--dir", str(where), "--regions", "EU", "--json"])
    try:
        assert up.exit_code == 0, up.output
        facts = json.loads(up.stdout.strip().splitlines()[-1])
        assert facts["env"]["YAGNA_URL"].startswith("http://127.0.0.1:") and facts["env"]["YAGNA_APPKEY"]
        assert set(json.loads(facts["env"]["GOLEM_REGION_PROVIDERS"])) == {"EU"}
        again = runner.invoke(app, ["golem", "devnet", "up", "--dir", str(where), "--regions", "EU"])
        assert again.exit_code == 1 and "already running" in again.output
        status = runner.invoke(app, ["golem", "devnet", "status", "--dir", str(where), "--json"])
        assert status.exit_code == 0 and all(json.loads(status.stdout)["processes"].values())
    finally:
        down = runner.invoke(app, ["golem", "devnet", "down", "--dir", str(where)])
    assert down.exit_code == 0, down.output
    assert dn.processes_under(where) == []
    stopped = runner.invoke(app, ["golem", "devnet", "status", "--dir", str(where)])
    assert stopped.exit_code == 1


def test_without_anvil_the_devnet_says_why(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(dn, "find_anvil", lambda: None)
    result = CliRunner().invoke(app, ["golem", "devnet", "up", "--dir", str(tmp_path / "x")])
    assert result.exit_code == 1 and "no anvil" in result.output
    assert dn.processes_under(tmp_path) == []


def test_every_command_has_help() -> None:
    for argv in (["golem"], ["golem", "devnet"], ["golem", "devnet", "up"], ["golem", "devnet", "down"]):
        result = CliRunner().invoke(app, [*argv, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
