"""The model process: one GGUF model loaded by llama-cpp-python, answering generation requests over a pipe.

The worker never loads llama.cpp itself (see ``llamacpp.py``): a native crash (SIGSEGV in a kernel,
SIGILL from an instruction this CPU lacks, the OOM killer) ends this process only. Started as
``python -c "from beacon.executors.llamacpp_child import main; main()" '<config json>'``.

Protocol, one JSON object per line. The parent writes requests to our stdin:

* ``{"op": "generate", "id": N, "messages": [...], "options": {...}, "deadline": T | null}``
* ``{"op": "cancel", "id": N}`` — stop request N after its current token

and we answer on the original stdout (file descriptor 1 is pointed at stderr, the log, so that whatever
native code prints cannot corrupt the channel):

* ``{"event": "loaded", "seconds": S, "version": V, "gpu_offload": B, "system_info": I}`` once, or an ``error`` and exit
* ``{"event": "token", "id": N, "n": K}`` after every generated token (the parent's liveness signal)
* ``{"event": "done", "id": N, "generation": {...}}`` or ``{"event": "error", "id": N, "code": C, ...}``

End of stdin (the parent closed it or died) ends this process at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import logging
import os
import queue
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from beacon.failpoints import failpoint_sync

log = logging.getLogger("beacon.executors.llamacpp.child")

SAMPLER_DEFAULTS: dict[str, float | int] = {
    "top_k": 40,
    "min_p": 0.05,
    "typical_p": 1.0,
    "repeat_penalty": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
}
"""Sampler parameters not in the request, passed explicitly so a library upgrade cannot change them silently."""

MID_GENERATION = "llamacpp.mid_generation"
"""Failpoint checked after every generated token (``segv`` here is a native crash at that point)."""

_native_log = logging.getLogger("beacon.executors.llamacpp.native")
# ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (llama-cpp-python's own table predates this
# order). llama.cpp's INFO is a load-time chronicle, so it goes to DEBUG here; warnings and errors keep theirs.
_NATIVE_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_native_callback: Any = None  # the ctypes callback must stay referenced for as long as llama.cpp may call it


class ModelError(Exception):
    """A request this model cannot serve; ``code`` is the executor's reason code."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient


class StopSignal:
    """A llama.cpp stopping criterion: stop at the deadline or when the caller cancels.

    Called by llama-cpp-python after every sampled token; ``cancel`` comes from another thread. ``reason``
    records why generation was stopped (None: it was not). ``on_token`` is told the running token count.
    """

    def __init__(self, deadline: float | None, on_token: Any = None) -> None:
        self.deadline = deadline
        self.reason: str | None = None
        self.tokens = 0
        self._on_token = on_token
        self._cancelled = threading.Event()
        self._on_cancel: Any = None

    def cancel(self) -> None:
        self._cancelled.set()
        hook = self._on_cancel
        if hook is not None:
            hook()

    def when_cancelled(self, hook: Any) -> None:
        """Call ``hook`` (from the cancelling thread) on cancel; at once if already cancelled. None: no hook."""
        self._on_cancel = hook
        if hook is not None and self._cancelled.is_set():
            hook()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> bool:
        if self.reason is None:
            if self._cancelled.is_set():
                self.reason = "cancelled"
            elif self.deadline is not None and time.time() >= self.deadline:
                self.reason = "deadline"
        return self.reason is not None

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        self.tokens += 1
        failpoint_sync(MID_GENERATION)
        if self._on_token is not None:
            self._on_token(self.tokens)
        return self.check()


@dataclass(frozen=True)
class Generation:
    """What one generation produced."""

    text: str
    finish_reason: str | None
    tokens_in: int
    tokens_out: int
    prompt_eval_s: float
    eval_s: float
    generate_s: float
    stopped: str | None


def route_native_log() -> None:
    """Send llama.cpp's own log (ggml/llama) to Python logging, once per process.

    With ``verbose=False`` llama-cpp-python silences model loading by pointing the process's file
    descriptors 1 and 2 at /dev/null (dup2) for the whole construction, which would also swallow this
    process's own log lines and (fd 1) could race with the protocol channel. Routing the native log through
    this callback and constructing with ``verbose=True`` leaves the descriptors alone.
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


def construct(**params: Any) -> Any:
    """A ``Llama``, built without touching the process's stdout/stderr descriptors (see route_native_log).

    The few lines llama-cpp-python ``print``s while constructing (model metadata, chat format) are caught
    here and logged at DEBUG; afterwards the model is made quiet again.
    """
    from llama_cpp import Llama

    route_native_log()
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed), contextlib.redirect_stdout(printed):
        llm = Llama(verbose=True, **params)
    llm.verbose = False  # no per-call prints from here on
    if printed.getvalue().strip():
        _native_log.debug("llama-cpp-python while loading: %s", printed.getvalue().strip()[:4000])
    return llm


def chat_formatter(llm: Any, path: Path) -> Any:
    """The model's own chat template (GGUF metadata), built the way llama-cpp-python builds it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise ModelError("model_has_no_chat_template", f"{path.name} carries no chat template")
    eos_id, bos_id = llm.token_eos(), llm.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llm._model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=llm._model.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id],
    )


class LoadedModel:
    """One GGUF model in this process: load once, then generate one request at a time."""

    def __init__(self, path: Path, *, n_ctx: int, n_threads: int, n_gpu_layers: int, seed: int) -> None:
        self.path = path
        started = time.perf_counter()
        try:
            self.llm = construct(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                # llama-cpp-python defaults batch (prompt) threads to every core; on a shared machine its
                # spinning thread pool then stalls behind other processes (seconds per prompt).
                n_threads_batch=n_threads,
                # 0 keeps everything on the CPU; -1 offloads every layer when llama.cpp was built with a GPU
                # backend (CUDA, Metal, Vulkan) and is ignored by a CPU-only build.
                n_gpu_layers=n_gpu_layers,
                seed=seed,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError("model_load_failed", f"llama.cpp cannot load {path.name}: {exc}") from exc
        self.formatter = chat_formatter(self.llm, path)
        self.load_s = time.perf_counter() - started

    def generate(
        self, messages: list[dict[str, str]], options: dict[str, Any], stop: StopSignal
    ) -> Generation:
        import llama_cpp
        from llama_cpp import StoppingCriteriaList

        if stop.check():
            return Generation("", None, 0, 0, 0.0, 0.0, 0.0, stop.reason)
        llm = self.llm
        try:
            # What Llama.create_chat_completion does, plus our stopping criterion (it accepts none).
            rendered = self.formatter(messages=messages)
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
                temperature=options["temperature"],
                top_p=options["top_p"],
                seed=options["seed"],
                max_tokens=options["max_tokens"],
                stop=rendered.stop,
                stopping_criteria=criteria,
                **SAMPLER_DEFAULTS,
            )
            generate_s = time.perf_counter() - started
            perf = llama_cpp.llama_perf_context(llm.ctx)
        except ValueError as exc:
            # llama-cpp-python raises ValueError when the prompt does not fit the context window.
            raise ModelError("prompt_too_long", str(exc)) from exc
        choice = completion["choices"][0]
        usage = completion["usage"]
        return Generation(
            text=choice["text"] or "",
            finish_reason=choice.get("finish_reason"),
            tokens_in=int(usage["prompt_tokens"]),
            tokens_out=int(usage["completion_tokens"]),
            prompt_eval_s=perf.t_p_eval_ms / 1000.0,
            eval_s=perf.t_eval_ms / 1000.0,
            generate_s=generate_s,
            stopped=stop.reason,
        )


class Channel:
    """Our end of the protocol: requests from stdin (read on a thread of their own), answers to ``out``."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._write_lock = threading.Lock()
        self.requests: queue.Queue[dict[str, Any]] = queue.Queue()
        self.current: tuple[int, StopSignal] | None = None
        self._cancelled: set[int] = set()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._write_lock:
            self._out.write(data)
            self._out.flush()

    def read_forever(self) -> None:
        """The reader thread: queue generate requests, apply cancels now; end the process at end of input."""
        for line in sys.stdin.buffer:
            try:
                message = json.loads(line)
            except ValueError:
                log.error("unreadable request from the parent: %r", line[:200])
                continue
            if message.get("op") == "cancel":
                current = self.current
                if current is not None and current[0] == message.get("id"):
                    current[1].cancel()
                else:
                    self._cancelled.add(int(message.get("id", -1)))
            else:
                self.requests.put(message)
        os._exit(0)  # the parent is gone: nothing may outlive it

    def was_cancelled(self, request_id: int) -> bool:
        return request_id in self._cancelled


def serve(model: LoadedModel, channel: Channel) -> None:
    """Answer generate requests one at a time, for as long as the parent keeps stdin open."""
    while True:
        request = channel.requests.get()
        request_id = int(request["id"])

        def tick(count: int, request_id: int = request_id) -> None:
            channel.send({"event": "token", "id": request_id, "n": count})

        stop = StopSignal(request.get("deadline"), tick)
        channel.current = (request_id, stop)
        if channel.was_cancelled(request_id):
            stop.cancel()
        try:
            generation = model.generate(request["messages"], request["options"], stop)
        except ModelError as exc:
            channel.send(
                {
                    "event": "error",
                    "id": request_id,
                    "code": exc.code,
                    "message": exc.message,
                    "transient": False,
                }
            )
        else:
            channel.send({"event": "done", "id": request_id, "generation": asdict(generation)})
        finally:
            channel.current = None


def main() -> None:
    """Entry point of the model process (see the module docstring)."""
    # A crashing model must not leave a core file of its whole address space wherever it ran.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    protocol = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed, by Python or native code, goes to the log, not the channel
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s %(levelname)s llamacpp-child[{os.getpid()}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = json.loads(sys.argv[1])
    channel = Channel(protocol)
    threading.Thread(target=channel.read_forever, name="requests", daemon=True).start()
    try:
        model = LoadedModel(
            Path(config["path"]),
            n_ctx=int(config["n_ctx"]),
            n_threads=int(config["n_threads"]),
            n_gpu_layers=int(config["n_gpu_layers"]),
            seed=int(config["seed"]),
        )
    except ModelError as exc:
        channel.send(
            {"event": "error", "id": None, "code": exc.code, "message": exc.message, "transient": False}
        )
        sys.exit(3)
    import llama_cpp

    channel.send(
        {
            "event": "loaded",
            "seconds": model.load_s,
            "version": str(llama_cpp.__version__),
            "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
            "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace"),
        }
    )
    serve(model, channel)


if __name__ == "__main__":
    main()
