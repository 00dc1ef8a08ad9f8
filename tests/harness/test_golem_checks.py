"""The plan's Golem checks on a devnet of their own: each passes on evidence, and each can fail."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from beacon.executors.llamacpp import SMOLLM2_MODEL_ID
from beacon.golem import devnet as dn
from beacon.harness.golem_checks import CHECKS, GolemChecks
from beacon.harness.results import PhaseResults


def statuses(results: PhaseResults) -> dict[str, str]:
    return {c["id"]: c["status"] for c in results.checks}


@pytest.fixture(scope="module")
def eu_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A one-region devnet (requestor + EU provider) whose balances only these tests move."""
    root = tmp_path_factory.mktemp("golem-checks")
    try:
        net = dn.up(root, regions=["EU"])
    except dn.DevnetError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"the Golem devnet did not start: {exc}")
        pytest.skip(f"SKIPPED LOUDLY: the Golem devnet did not start here: {exc}")
    try:
        yield net
    finally:
        dn.down(root)
        assert dn.processes_under(root) == []


def test_the_golem_items_pass_on_a_working_network(eu_devnet: Any, tmp_path: Path) -> None:
    results = PhaseResults(tmp_path / "t15.json", phase="t+15")
    golem = GolemChecks.open(results, regions=["EU"], directory=eu_devnet.dir)
    assert golem.ready and not golem.owned
    assert golem.daemons_running()
    assert golem.offers_per_region()
    assert golem.funds()
    outcomes = golem.run_regions([SMOLLM2_MODEL_ID])
    assert all(not isinstance(o, Exception) for o in outcomes.values()), outcomes
    assert golem.settlement()
    assert statuses(results) == {check: "pass" for check in CHECKS}
    tables = results.doc["tables"]
    events = {row["event"] for row in tables["golem_negotiation"] if row["region"] == "EU"}
    assert {"ProposalReceived", "AgreementConfirmed", "ActivityCreated", "InvoiceAccepted"} <= events
    [invoice] = tables["golem_invoices"]
    assert invoice["status"] == "SETTLED" and invoice["agreement_id"] in golem.agreements
    balances = {row["role"]: row for row in tables["golem_glm_balance"]}
    spent = Decimal(balances["requestor"]["before"]) - Decimal(balances["requestor"]["after"])
    assert spent == Decimal(invoice["amount"]) > 0


def test_a_region_without_a_provider_fails_the_offer_check(eu_devnet: Any, tmp_path: Path) -> None:
    results = PhaseResults(None, phase="t-60")
    golem = GolemChecks.open(results, regions=["EU", "MARS"], directory=eu_devnet.dir)
    assert not golem.offers_per_region(wait_s=4)
    check = results.get_check("golem_provider_offers")
    assert check is not None and check["status"] == "fail" and "MARS" in check["detail"]


def test_wrong_funds_fail_the_funds_check(eu_devnet: Any) -> None:
    funded = golem_balance(eu_devnet)
    chain = eu_devnet.chain()
    try:
        chain.fund(eu_devnet.requestor.node_id, Decimal("0.5"))  # the wallet no longer holds what was funded
    finally:
        chain.close()
    results = PhaseResults(None, phase="t-60")
    golem = GolemChecks.open(results, regions=["EU"], directory=eu_devnet.dir)
    assert not golem.funds(expected_glm=funded)
    assert statuses(results)["golem_funds"] == "fail"


def golem_balance(net: Any) -> Decimal:
    return dn.glm_balance(net, net.requestor.node_id)


def run_with_fault(net: Any, fault: str, deadline_s: float) -> tuple[PhaseResults, GolemChecks]:
    """The EU execution through the checks while its provider misbehaves as ``fault`` says."""
    results = PhaseResults(None, phase="t+15")
    golem = GolemChecks.open(results, regions=["EU"], directory=net.dir)
    golem.funds(expected_glm=golem_balance(net))
    net.set_fault("EU", fault)
    try:
        golem.run_regions([SMOLLM2_MODEL_ID], deadline_s=deadline_s)
    finally:
        net.set_fault("EU", None)
    return results, golem


def test_a_refusing_provider_fails_agreements_reach_and_settlement(eu_devnet: Any) -> None:
    results, golem = run_with_fault(eu_devnet, "refuse", deadline_s=10)
    assert not golem.settlement(wait_s=2)
    got = statuses(results)
    for check in (
        "golem_agreements",
        "golem_job_reaches_provider",
        "golem_invoices_settled",
        "golem_glm_balance",
    ):
        assert got[check] == "fail", (check, got)


def test_a_provider_that_vanishes_leaves_an_unsettled_agreement(eu_devnet: Any) -> None:
    results, golem = run_with_fault(eu_devnet, "vanish", deadline_s=40)
    assert golem.agreements, "the agreement was made before the provider vanished"
    assert not golem.settlement(wait_s=5)
    assert statuses(results)["golem_invoices_settled"] == "fail"


def test_without_a_devnet_every_item_is_not_exercised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(dn, "find_anvil", lambda: None)
    results = PhaseResults(None, phase="t+15")
    golem = GolemChecks.open(results, regions=["EU"], directory=str(tmp_path / "none"))
    assert not golem.ready
    assert not golem.offers_per_region() and not golem.settlement()
    for check in results.checks:
        assert check["status"] == "not_exercised" and "no anvil" in check["detail"]
    assert {c["id"] for c in results.checks} == set(CHECKS)


def test_a_stopped_provider_daemon_fails_the_daemon_check(tmp_path: Path) -> None:
    """Last: it stops a yagna of a devnet of its own."""
    try:
        net = dn.up(tmp_path / "net", regions=["EU"])
    except dn.DevnetError as exc:
        pytest.skip(f"SKIPPED LOUDLY: the Golem devnet did not start here: {exc}")
    try:
        os.kill(net.providers["EU"].pid, signal.SIGINT)
        deadline = time.monotonic() + 15
        while net.alive()["provider-eu"] and time.monotonic() < deadline:
            time.sleep(0.2)
        results = PhaseResults(None, phase="t-60")
        golem = GolemChecks.open(results, regions=["EU"], directory=net.dir)
        assert not golem.daemons_running()
    finally:
        dn.down(net.dir)
    assert dn.processes_under(net.dir) == []
