"""The Golem executor.

Two halves:

* Connection, app-key and payment paths run against the REAL ``yagna`` daemon of the ``golem-node``
  package, started here in a temporary data dir on free loopback ports (it cannot reach the Golem network,
  so its relay is pointed at a dead loopback port and its payment driver cannot reach a chain). These
  tests skip loudly, with the reason, when yagna cannot start on this machine.
* Dispatch runs on the Golem devnet (the session fixture ``golem_devnet``, ``beacon golem devnet``):
  real yagna daemons for the requestor and one provider per region, the real market, agreements,
  activities and erc20 payments on a local chain. Nothing on the requestor side is stood in: yapapi,
  the ``RegionAllowlistStrategy``, ``yapapi.payload.vm.repo``, the executor's worker, result parsing,
  error classification and the receipt facts are all real. The provider side is the project's agent +
  exe-unit stand-in (docs/decisions/1101-golem-devnet-standins.md), whose faults (refuse, fail, bad output,
  vanish) drive the failure cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from beacon.executors.base import (
    DecodingOptions,
    ExecutionRequest,
    ExecutorConfigError,
    PermanentExecutorError,
    TransientExecutorError,
)
from beacon.executors.golem import GolemExecutor, parse_vm_output, payment_platform
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID
from beacon.executors.registry import create_executor

YAGNA = Path(sys.executable).with_name("yagna")
IMAGE_HASH = "d646d7b93083d817846c2ae5c62c72ca0507782385a2e29291a3d376"
EU_PROVIDER = "0xabcdef1111111111111111111111111111111111"
US_PROVIDER = "0x2222222222222222222222222222222222222222"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(**overrides: Any) -> ExecutionRequest:
    fields: dict[str, Any] = {
        "prompt": "What is the capital city of France?",
        "system_prompt": "You are a helpful assistant.",
        "model": SMOLLM2_MODEL_ID,
        "region": "EU",
        "options": DecodingOptions(temperature=0.0, seed=42, max_tokens=32),
    }
    fields.update(overrides)
    return ExecutionRequest(**fields)


def executor(**overrides: Any) -> GolemExecutor:
    fields: dict[str, Any] = {
        "region": "EU",
        "allowed_providers": [EU_PROVIDER, "eu-provider-name"],
        "images": {SMOLLM2_MODEL_ID: IMAGE_HASH},
        "yagna_url": f"http://127.0.0.1:{_free_port()}",
        "app_key": "unused",
    }
    fields.update(overrides)
    return GolemExecutor(**fields)


# --- the real yagna ------------------------------------------------------------------------------------


@dataclass
class Yagna:
    """A real yagna daemon in a temporary data dir, on free loopback ports; stopped by PID."""

    root: Path
    api_url: str
    gsb_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(YAGNA), *args], env=self.env, capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout.strip()

    def app_key(self) -> str:
        return self.cli("app-key", "create", f"beacon-{uuid.uuid4().hex[:8]}", "--json").strip('"')


def _start_yagna(root: Path) -> Yagna:
    api_port, gsb_port, relay_port = _free_port(), _free_port(), _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("YAGNA_", "GSB_", "YA_"))},
        "YAGNA_DATADIR": str(root / "data"),
        "YAGNA_API_URL": f"http://127.0.0.1:{api_port}",
        "GSB_URL": f"tcp://127.0.0.1:{gsb_port}",
        # No network here: point the relay at a dead loopback port so start-up does not wait on DNS.
        "YA_NET_RELAY_HOST": f"127.0.0.1:{relay_port}",
        "YAGNA_LOG_DIR": str(root / "logs"),
    }
    (root / "data").mkdir(parents=True)
    log = (root / "yagna.log").open("wb")
    process = subprocess.Popen(
        [str(YAGNA), "service", "run", "--disable-metrics-push"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yagna = Yagna(root, env["YAGNA_API_URL"], env["GSB_URL"], env, process)
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"yagna exited with {process.returncode}: {(root / 'yagna.log').read_text()[-2000:]}"
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{yagna.api_url}/version/get", timeout=1).status_code == 200:
                return yagna
        time.sleep(0.3)
    _stop(process)
    raise RuntimeError(f"yagna did not open its REST API in 60 s: {(root / 'yagna.log').read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def yagna() -> Iterator[Yagna]:
    if not YAGNA.is_file():
        pytest.skip(f"SKIPPED LOUDLY: no yagna binary at {YAGNA} (install golem-node)")
    root = Path(tempfile.mkdtemp(prefix="beacon-yagna-"))
    try:
        daemon = _start_yagna(root)
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"SKIPPED LOUDLY: the real yagna could not start here: {exc}")
    try:
        yield daemon
    finally:
        _stop(daemon.process)
        shutil.rmtree(root, ignore_errors=True)


async def test_a_missing_app_key_is_permanent() -> None:
    ex = executor(app_key=None)
    with pytest.raises(PermanentExecutorError) as info:
        await ex.execute(request())
    assert info.value.code == "golem_appkey_missing"
    assert "YAGNA_APPKEY" in info.value.message


async def test_an_unreachable_yagna_is_transient() -> None:
    ex = executor()
    with pytest.raises(TransientExecutorError) as info:
        await ex.execute(request())
    assert info.value.code == "golem_yagna_unreachable"
    status = await ex.status()
    assert status["reachable"] is False and status["error"] == "golem_yagna_unreachable"


async def test_an_invalid_app_key_is_permanent(yagna: Yagna) -> None:
    ex = executor(yagna_url=yagna.api_url, app_key="not-a-key")
    with pytest.raises(PermanentExecutorError) as info:
        await ex.execute(request())
    assert info.value.code == "golem_appkey_invalid"


async def test_status_reports_the_requestor_identity(yagna: Yagna) -> None:
    ex = executor(yagna_url=yagna.api_url, app_key=yagna.app_key())
    status = await ex.status()
    assert status["reachable"] is True, status
    assert status["identity"].startswith("0x") and len(status["identity"]) == 42
    assert status["yapapi_version"] == "0.13.1"
    assert status["payment_account"] is False  # until `yagna payment init --sender` (next test)
    assert status["ready"] is False


async def test_payment_account_missing_then_allocation_failing(yagna: Yagna) -> None:
    ex = executor(yagna_url=yagna.api_url, app_key=yagna.app_key())
    # A fresh node has no sender account for the payment platform.
    with pytest.raises(PermanentExecutorError) as info:
        await ex.execute(request(deadline=time.time() + 60))
    assert info.value.code == "golem_payment_account_missing"
    assert "yagna payment init --sender" in info.value.message
    # With one, yapapi starts the engine and asks yagna for the budget allocation, which yagna cannot
    # validate without reaching the chain: a transient payment failure, and no half-started engine is kept.
    yagna.cli("payment", "init", "--sender", "--network", "holesky")
    with pytest.raises(TransientExecutorError) as info:
        await ex.execute(request(deadline=time.time() + 60))
    assert info.value.code == "golem_payment_unavailable"
    assert "allocat" in info.value.message
    status = await ex.status()
    assert status["engine_started"] is False and status["payment_account"] is True and status["ready"]
    await ex.aclose()


async def test_yapapi_without_gftp_is_a_clear_permanent_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from yapapi.storage import gftp

    from beacon.executors.golem import classify_start_error

    monkeypatch.setenv("PATH", "/nonexistent")  # the real failure of yapapi's storage start, without gftp
    with pytest.raises(Exception) as info:
        async with asyncio.timeout(20), gftp.provider():
            pass
    # Which of its two failures yapapi shows depends on a race with the exiting shell: both are mapped.
    import json

    for raised in (info.value, json.JSONDecodeError("Expecting value", "", 0), ConnectionResetError("lost")):
        error = classify_start_error(raised, "http://127.0.0.1:7465", "erc20-holesky-tglm")
        assert isinstance(error, PermanentExecutorError), raised
        assert error.code == "golem_gftp_missing"


def test_payment_platform_names() -> None:
    assert payment_platform("erc20", "holesky") == "erc20-holesky-tglm"
    assert payment_platform("erc20", "polygon") == "erc20-polygon-glm"


# --- the market strategy -------------------------------------------------------------------------------


def make_offer(provider_id: str, name: str, price: float = 0.0001) -> Any:
    from ya_market import models
    from yapapi.rest.market import OfferProposal

    proposal = models.Proposal(
        properties={
            "golem.node.id.name": name,
            "golem.com.scheme": "payu",
            "golem.com.pricing.model": "linear",
            "golem.com.pricing.model.linear.coeffs": [price, price, 0.0],
            "golem.com.usage.vector": ["golem.usage.duration_sec", "golem.usage.cpu_sec"],
        },
        constraints="()",
        proposal_id=f"offer-{uuid.uuid4().hex[:8]}",
        issuer_id=provider_id,
        state="Initial",
        timestamp="2026-01-01T00:00:00Z",
    )
    return OfferProposal(None, models.ProposalEvent(proposal=proposal))


async def test_strategy_refuses_providers_outside_the_allowlist() -> None:
    from yapapi.strategy import SCORE_REJECTED, BaseMarketStrategy

    strategy = executor().strategy
    assert isinstance(strategy, BaseMarketStrategy)
    assert await strategy.score_offer(make_offer(EU_PROVIDER, "anything")) > SCORE_REJECTED
    assert (
        await strategy.score_offer(make_offer(EU_PROVIDER.upper().replace("0X", "0x"), "x")) > SCORE_REJECTED
    )
    assert await strategy.score_offer(make_offer("0x3333", "eu-provider-name")) > SCORE_REJECTED
    assert await strategy.score_offer(make_offer(US_PROVIDER, "us-provider")) == SCORE_REJECTED
    assert strategy.refused == {US_PROVIDER: "us-provider"}
    # The wrapped base strategy still applies: an allowlisted offer with a nonsense price is refused too.
    assert await strategy.score_offer(make_offer(EU_PROVIDER, "eu", price=-1.0)) == SCORE_REJECTED


def test_an_empty_allowlist_is_a_configuration_error(make_settings: Callable[..., Any]) -> None:
    settings = make_settings(backend="golem", golem_region_providers={"EU": [EU_PROVIDER]})
    assert isinstance(create_executor(settings, "EU"), GolemExecutor)
    with pytest.raises(ExecutorConfigError) as info:
        create_executor(settings, "US")
    assert info.value.code == "backend_not_configured"
    assert "GOLEM_REGION_PROVIDERS" in info.value.message


# --- dispatch on the Golem devnet: the real yagna market, agreement, activity and payment ----------------


def on_devnet(net: Any, region: str = "EU", **overrides: Any) -> GolemExecutor:
    allowed = net.region_providers().get(region) or ["0x" + "9" * 40]
    fields: dict[str, Any] = {
        "region": region,
        "allowed_providers": allowed,
        "images": net.images([SMOLLM2_MODEL_ID, "mistral-7b"]),
        "yagna_url": net.requestor.api_url,
        "app_key": net.requestor.app_key,
        "payment_network": "hoodi",
    }
    fields.update(overrides)
    return GolemExecutor(**fields)


@pytest.fixture
def devnet(golem_devnet: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("PATH", f"{golem_devnet.gftp_dir}{os.pathsep}{os.environ['PATH']}")
    for region in golem_devnet.providers:
        golem_devnet.set_fault(region, None)
    yield golem_devnet
    for region in golem_devnet.providers:
        golem_devnet.set_fault(region, None)


async def run_once(ex: GolemExecutor, req: ExecutionRequest) -> Any:
    try:
        return await ex.execute(req)
    finally:
        await ex.aclose()


def events(info: dict[str, Any]) -> list[str]:
    return [e["event"] for e in info.get("negotiation") or []]


async def test_each_region_runs_on_its_own_provider_with_the_market_evidence(devnet: Any) -> None:
    from beacon.golem.devnet import PRICES

    regions = sorted(devnet.providers)
    executors = {r: on_devnet(devnet, r) for r in regions}
    results = await asyncio.gather(
        *(run_once(executors[r], request(region=r, deadline=time.time() + 90)) for r in regions)
    )
    for region, result in zip(regions, results, strict=True):
        provider = devnet.providers[region]
        info = result.provider_info
        assert result.served_region == region and result.provider_id == f"golem:{provider.node_id}"
        assert result.text.strip() and result.tokens_out > 0
        assert (
            info["provider_id"] == provider.node_id
            and info["provider_name"] == f"beacon-devnet-{region.lower()}"
        )
        assert info["offer_region"] == region
        assert len(info["agreement_id"]) == 64 and len(info["activity_id"]) == 32
        start, per_second, per_cpu = PRICES[region]
        assert info["price"]["coeffs"] == [per_second, per_cpu, start]
        assert info["invoice"]["status"] == "ACCEPTED" and float(info["invoice"]["amount"]) >= start
        timeline = events(info)
        for step in (
            "ProposalReceived",
            "AgreementConfirmed",
            "ActivityCreated",
            "ScriptSent",
            "InvoiceAccepted",
        ):
            assert step in timeline, (step, timeline)
        assert timeline.index("AgreementConfirmed") < timeline.index("ActivityCreated")
        # The offers of the other regions reached this executor too, and its allowlist refused them.
        others = {devnet.providers[r].node_id for r in regions if r != region}
        assert others <= set(executors[region].strategy.refused)


async def test_a_region_without_an_offer_fails_within_its_deadline(devnet: Any) -> None:
    ex = on_devnet(devnet, "MARS")
    started = time.monotonic()
    with pytest.raises(TransientExecutorError) as info:
        await run_once(ex, request(region="MARS", deadline=time.time() + 12))
    assert time.monotonic() - started < 16
    assert info.value.code == "golem_no_provider"
    assert "no allowlisted provider of MARS made an agreement" in info.value.message
    # No fallback: every provider of the devnet offered, and each was refused.
    refused = set(info.value.details["refused_providers"])
    assert {n.node_id for n in devnet.providers.values()} <= refused
    assert "AgreementConfirmed" not in events(info.value.details["provider_info"])


async def test_a_provider_that_refuses_leaves_its_rejection_in_the_evidence(devnet: Any) -> None:
    devnet.set_fault("EU", "refuse")
    with pytest.raises(TransientExecutorError) as info:
        await run_once(on_devnet(devnet), request(deadline=time.time() + 12))
    assert info.value.code == "golem_no_provider"
    timeline = info.value.details["provider_info"]["negotiation"]
    rejected = [e for e in timeline if e["event"] == "AgreementRejected"]
    assert rejected and "AgreementConfirmed" not in events(info.value.details["provider_info"])


@pytest.mark.parametrize(
    ("fault", "code"), [("fail", "golem_task_failed"), ("bad-output", "golem_bad_output")]
)
async def test_a_failing_or_garbled_task_fails_with_the_agreement_in_the_evidence(
    devnet: Any, fault: str, code: str
) -> None:
    devnet.set_fault("EU", fault)
    with pytest.raises(TransientExecutorError) as info:
        await run_once(on_devnet(devnet), request(deadline=time.time() + 60))
    assert info.value.code == code
    evidence = info.value.details["provider_info"]
    assert evidence["provider_id"] == devnet.providers["EU"].node_id
    assert evidence["agreement_id"] and evidence["activity_id"]
    assert "AgreementConfirmed" in events(evidence)


async def test_a_provider_that_disappears_mid_activity_fails_within_the_deadline(devnet: Any) -> None:
    devnet.set_fault("EU", "vanish")
    ex = on_devnet(devnet)
    started = time.monotonic()
    try:
        with pytest.raises(TransientExecutorError) as info:
            await ex.execute(request(deadline=time.time() + 40))
        assert time.monotonic() - started < 42
    finally:
        await ex.aclose()  # yapapi waits (30 s at most) for the invoice a vanished provider never sends
    assert info.value.code in ("golem_task_failed", "golem_no_provider"), info.value
    evidence = info.value.details["provider_info"]
    assert evidence.get("agreement_id") or "AgreementConfirmed" in events(evidence)


async def test_a_jobspec_command_is_refused_by_a_provider_that_cannot_isolate_it(
    devnet: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "ran-on-the-host"
    command = ("/bin/sh", "-c", f"touch {marker}")
    with pytest.raises(PermanentExecutorError) as info:
        await run_once(on_devnet(devnet), request(command=command, deadline=time.time() + 60))
    assert info.value.code == "golem_command_refused"
    assert "cannot isolate a container" in info.value.message
    assert not marker.exists()


async def test_errors_inside_the_vm_keep_their_code(devnet: Any) -> None:
    with pytest.raises(PermanentExecutorError) as info:
        await run_once(on_devnet(devnet), request(model="mistral-7b", deadline=time.time() + 60))
    assert info.value.code == "model_not_available"
    assert info.value.details["provider_info"]["agreement_id"]


async def test_an_unreachable_image_url_is_transient(devnet: Any) -> None:
    dead = f"{devnet.image_hash}@http://127.0.0.1:{_free_port()}/x.gvmi"
    ex = on_devnet(devnet, images={SMOLLM2_MODEL_ID: dead})
    with pytest.raises(TransientExecutorError) as info:
        await run_once(ex, request(deadline=time.time() + 30))
    assert info.value.code == "golem_image_unavailable"


async def test_unknown_model_and_foreign_region_are_permanent() -> None:
    ex = executor()
    with pytest.raises(PermanentExecutorError) as info:
        await ex.execute(request(model="mistral-7b"))
    assert info.value.code == "model_not_available" and "GOLEM_IMAGES" in info.value.message
    with pytest.raises(PermanentExecutorError) as info:
        await ex.execute(request(region="ASIA"))
    assert info.value.code == "region_mismatch"


def test_vm_output_parsing() -> None:
    assert parse_vm_output('log line\n{"text": "x"}\n') == {"text": "x"}
    with pytest.raises(TransientExecutorError) as info:
        parse_vm_output("Traceback ...")
    assert info.value.code == "golem_bad_output"
