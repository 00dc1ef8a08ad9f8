"""The Golem executor.

Two halves:

* Connection, app-key and payment paths run against the REAL ``yagna`` daemon of the ``golem-node``
  package, started here in a temporary data dir on free loopback ports (it cannot reach the Golem network,
  so its relay is pointed at a dead loopback port and its payment driver cannot reach a chain). These
  tests skip loudly, with the reason, when yagna cannot start on this machine.
* Dispatch runs with yapapi's network layer stood in by :class:`StandinGolem`, which replaces exactly
  ``yapapi.Golem``'s market, agreement and activity traffic with yagna: it offers a fixed list of
  provider offers (real ``yapapi.rest.market.OfferProposal`` objects over ``ya_market`` models) to the
  executor's real market strategy, "signs" an agreement with the best one that is not refused, and
  "executes" the yielded script by running the same entrypoint the VM image runs
  (``python -m beacon.executors.golem_vm``) in a local subprocess. Everything else is real: the
  ``RegionAllowlistStrategy`` subclass of yapapi's strategy, ``yapapi.Task``, ``yapapi.payload.vm.repo``
  (pointed at a loopback URL serving a placeholder image), the executor's worker function, result
  parsing, error classification and the receipt facts. Why: a real dispatch needs provider nodes with a
  KVM VM runtime and a reachable Golem network, which no test machine here has.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from beacon.executors.base import (
    DecodingOptions,
    ExecutionRequest,
    Executor,
    PermanentExecutorError,
    TransientExecutorError,
)
from beacon.executors.golem import GolemExecutor, parse_vm_output, payment_platform
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, file_sha256, smollm2_gguf_path
from beacon.executors.registry import ExecutorConfigError, create_executor

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


# --- dispatch with yapapi's network layer stood in -----------------------------------------------------


@dataclass
class Executed:
    """What yapapi's ``CommandExecuted`` event carries that the worker reads."""

    success: bool
    stdout: str
    stderr: str
    message: str = ""


@dataclass
class StandinScript:
    commands: list[tuple[str, tuple[str, ...], asyncio.Future[Executed]]] = field(default_factory=list)

    def run(self, cmd: str, *args: str) -> asyncio.Future[Executed]:
        future: asyncio.Future[Executed] = asyncio.get_running_loop().create_future()
        self.commands.append((cmd, args, future))
        return future


@dataclass
class StandinAgreement:
    id: str


@dataclass
class StandinWorkContext:
    provider_id: str
    provider_name: str
    _agreement: StandinAgreement
    id: str = field(default_factory=lambda: f"activity-{uuid.uuid4().hex[:8]}")

    def new_script(self, timeout: Any = None, wait_for_results: bool = True) -> StandinScript:
        return StandinScript()


class StandinGolem:
    """Stands in for ``yapapi.Golem``'s network traffic: offers, agreement, activity (see the module doc)."""

    VM_COMMANDS: ClassVar[dict[str, list[str]]] = {
        "/beacon/run-benchmark": [sys.executable, "-m", "beacon.executors.golem_vm"]
    }

    def __init__(self, offers: list[tuple[str, str]], **kwargs: Any) -> None:
        self.offers = offers
        self.kwargs = kwargs
        self.started = self.stopped = False
        self.payloads: list[Any] = []
        self.agreements: list[str] = []
        self.vm_env: dict[str, str] = {}
        self.ignore_strategy = False
        self.ran: list[list[str]] = []

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def _negotiate(self) -> StandinWorkContext:
        strategy = self.kwargs["strategy"]
        scored = [(await strategy.score_offer(make_offer(pid, name)), pid, name) for pid, name in self.offers]
        accepted = [item for item in scored if item[0] >= 0 or self.ignore_strategy]
        if not accepted:  # like the market: wait for offers that never come
            await asyncio.Event().wait()
        _, provider_id, name = max(accepted)
        agreement = StandinAgreement(f"agreement-{uuid.uuid4().hex[:12]}")
        self.agreements.append(agreement.id)
        return StandinWorkContext(provider_id, name, agreement)

    async def _run_locally(self, script: StandinScript) -> Exception | None:
        from yapapi.rest.activity import CommandExecutionError

        for cmd, args, future in script.commands:
            argv = [*self.VM_COMMANDS.get(cmd, [cmd]), *args]
            self.ran.append(argv)
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **self.vm_env},
            )
            out, err = await process.communicate()
            if process.returncode != 0:
                return CommandExecutionError(cmd, f"exit code {process.returncode}", err.decode())
            future.set_result(Executed(True, out.decode(), err.decode()))
        return None

    async def execute_tasks(
        self, worker: Any, data: Any, payload: Any, max_workers: int | None = None, timeout: Any = None
    ) -> AsyncIterator[Any]:
        self.payloads.append(payload)
        tasks = list(data)
        ctx = await self._negotiate()

        async def feed() -> AsyncIterator[Any]:
            for task in tasks:
                task._start(
                    lambda *args, **kwargs: None
                )  # what yapapi's executor does to a task it hands out
                yield task

        generator = worker(ctx, feed())
        try:
            script = await generator.__anext__()
            while True:
                failure = await self._run_locally(script)
                script = await (generator.athrow(failure) if failure else generator.asend(None))
        except StopAsyncIteration:
            pass
        for task in tasks:
            yield task


@pytest.fixture(scope="module")
def image_url() -> Iterator[str]:
    """A loopback URL serving a placeholder GVMI file, so the real ``vm.repo`` can check it."""
    root = Path(tempfile.mkdtemp(prefix="beacon-gvmi-"))
    (root / "beacon-smollm2.gvmi").write_bytes(b"placeholder image: the VM itself is stood in")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/beacon-smollm2.gvmi"
    server.shutdown()
    thread.join(timeout=5)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def preflight_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatch tests stand in the yagna REST preflight as well (its real paths are tested above)."""

    async def ok(self: GolemExecutor) -> dict[str, Any]:
        self._identity = "0xrequestor"
        return {"identity": self._identity, "platforms": [self.platform]}

    monkeypatch.setattr(GolemExecutor, "preflight", ok)


def dispatching(
    offers: list[tuple[str, str]], image_url: str, **overrides: Any
) -> tuple[GolemExecutor, list[StandinGolem]]:
    engines: list[StandinGolem] = []

    def factory(**kwargs: Any) -> StandinGolem:
        engines.append(StandinGolem(offers, **kwargs))
        return engines[-1]

    ex = executor(images={SMOLLM2_MODEL_ID: f"{IMAGE_HASH}@{image_url}"}, golem_factory=factory, **overrides)
    return ex, engines


@pytest.mark.llm
@pytest.mark.usefixtures("preflight_ok")
async def test_dispatch_runs_on_the_allowlisted_provider_and_records_it(image_url: str) -> None:
    gguf = smollm2_gguf_path()
    assert gguf is not None
    ex, engines = dispatching([(US_PROVIDER, "us-provider"), (EU_PROVIDER, "eu-provider")], image_url)
    assert isinstance(ex, Executor)
    result = await ex.execute(request(deadline=time.time() + 120))
    engine = engines[0]
    assert engine.started
    assert engine.kwargs["budget"] == 1.0 and engine.kwargs["payment_network"] == "holesky"
    assert engine.kwargs["strategy"] is ex.strategy
    assert ex.strategy.refused == {US_PROVIDER: "us-provider"}
    assert "Paris" in result.text
    assert result.backend == "golem"
    assert result.served_region == "EU"
    assert result.provider_id == f"golem:{EU_PROVIDER}"
    assert result.model_digest == file_sha256(gguf)
    assert result.provider_info["provider_name"] == "eu-provider"
    assert result.provider_info["agreement_id"] == engine.agreements[0]
    assert result.provider_info["image_hash"] == IMAGE_HASH
    assert result.provider_info["requestor"] == "0xrequestor"
    assert result.backend_version.startswith("llamacpp ")
    assert result.timings["total"] >= result.timings["vm_total"] > 0
    # The payload is yapapi's own VM package for the image.
    payload = engine.payloads[0]
    assert type(payload).__module__.startswith("yapapi.payload")
    assert IMAGE_HASH in payload.image_url and "beacon-smollm2.gvmi" in payload.image_url
    assert "golem.inf.mem.gib>=1.0" in str(payload.constraints)
    await ex.aclose()
    assert engine.stopped


@pytest.mark.usefixtures("preflight_ok")
async def test_no_allowlisted_offer_means_no_provider(image_url: str) -> None:
    ex, _ = dispatching([(US_PROVIDER, "us-provider")], image_url)
    started = time.time()
    with pytest.raises(TransientExecutorError) as info:
        await ex.execute(request(deadline=started + 1.0))
    assert info.value.code == "golem_no_provider"
    assert info.value.details["refused_providers"] == 1
    assert time.time() - started < 3


@pytest.mark.usefixtures("preflight_ok")
async def test_a_provider_outside_the_region_never_runs_the_benchmark(image_url: str) -> None:
    ex, engines = dispatching([(US_PROVIDER, "us-provider")], image_url)
    await ex._engine()
    engines[0].ignore_strategy = True  # a market path around the strategy: the worker must still refuse
    with pytest.raises(PermanentExecutorError) as info:
        await ex.execute(request(deadline=time.time() + 30))
    assert info.value.code == "golem_region_violation"
    assert info.value.details["provider"]["provider_id"] == US_PROVIDER
    assert engines[0].ran == []


@pytest.mark.usefixtures("preflight_ok")
async def test_errors_inside_the_vm_keep_their_code(image_url: str, tmp_path: Path) -> None:
    ex, engines = dispatching([(EU_PROVIDER, "eu-provider")], image_url)
    await ex._engine()
    engines[0].vm_env["BEACON_VM_MODELS"] = f'{{"{SMOLLM2_MODEL_ID}": "{tmp_path / "absent.gguf"}"}}'
    with pytest.raises(PermanentExecutorError) as info:
        await ex.execute(request(deadline=time.time() + 60))
    assert info.value.code == "model_file_missing"
    assert info.value.details["provider"]["provider_id"] == EU_PROVIDER


@pytest.mark.usefixtures("preflight_ok")
async def test_a_failing_command_is_transient(image_url: str) -> None:
    ex, engines = dispatching([(EU_PROVIDER, "eu-provider")], image_url)
    await ex._engine()
    engines[0].VM_COMMANDS = {"/beacon/run-benchmark": [sys.executable, "-c", "import sys; sys.exit(3)"]}
    with pytest.raises(TransientExecutorError) as info:
        await ex.execute(request(deadline=time.time() + 60))
    assert info.value.code == "golem_task_failed"


@pytest.mark.usefixtures("preflight_ok")
async def test_an_unreachable_image_url_is_transient() -> None:
    ex, _ = dispatching([(EU_PROVIDER, "eu-provider")], f"http://127.0.0.1:{_free_port()}/x.gvmi")
    with pytest.raises(TransientExecutorError) as info:
        await ex.execute(request(deadline=time.time() + 30))
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
