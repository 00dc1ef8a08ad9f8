"""GPU, Ollama and host metrics: the plan's ``ollama-metrics.py``, as a library.

* NVIDIA GPUs through NVML (``nvidia-ml-py``) when a driver is present; otherwise the report says
  plainly that there is no GPU and why (no driver, no device).
* Ollama through its HTTP API (``/api/version``,
  ``/api/tags`` (models pulled), ``/api/ps`` (models loaded, and how much of each sits in GPU
  memory — the only GPU evidence on hosts without NVML, such as Apple silicon), and a latency probe
  (one short, deterministic generation)) at the host :func:`ollama_target` names: the one given,
  else ``OLLAMA_HOST``, else Ollama's own default ``127.0.0.1:11434`` — where a host with no Ollama
  at all (nothing listens) is reported as such, not as a failure.
* CPU, memory and disk always (psutil).

One verdict and one exit-status convention for every health check command (``beacon gpu check``
and the plan's ``ollama-metrics --check`` are the same check): :class:`CheckExit`.

Only the standard library, psutil, httpx and (optionally) pynvml are imported, so this module runs on
a bare GPU host as well as inside the runner.
"""

from __future__ import annotations

import csv
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil

PROBE_PROMPT = "Reply with the single word: ready"
OLLAMA_DEFAULT_HOST = "127.0.0.1:11434"
"""Where Ollama listens, and its client looks, when ``OLLAMA_HOST`` is unset."""


class CheckExit(IntEnum):
    """Exit status of every health check command (``beacon gpu check``, ``ollama-metrics --check``)."""

    HEALTHY = 0
    """Nothing checked found a problem (what could not be checked is listed in the notes)."""
    UNHEALTHY = 1
    """At least one problem (listed)."""
    USAGE = 2
    """The command was called wrongly (bad option); nothing was checked."""


# --- GPU (NVML) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: str
    uuid: str
    utilization_pct: float | None
    memory_used_mib: float
    memory_total_mib: float
    temperature_c: float | None
    power_w: float | None


@dataclass(frozen=True)
class GpuStatus:
    available: bool
    reason: str | None
    """Why no GPU is reported (when ``available`` is False), in plain words."""
    driver_version: str | None = None
    devices: tuple[GpuDevice, ...] = ()


_nvml_lock = threading.Lock()
_nvml_state: dict[str, Any] = {"initialised": False, "error": None}


def _nvml() -> Any:
    """The initialised pynvml module, or raise RuntimeError saying plainly why there is none."""
    with _nvml_lock:
        if _nvml_state["initialised"]:
            import pynvml

            return pynvml
        if _nvml_state["error"]:
            raise RuntimeError(_nvml_state["error"])
        try:
            import pynvml
        except ImportError:
            _nvml_state["error"] = "nvidia-ml-py is not installed"
            raise RuntimeError(_nvml_state["error"]) from None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            reason = str(exc)
            if isinstance(exc, pynvml.NVMLError_LibraryNotFound) or "not found" in reason.lower():
                reason = "no NVIDIA driver on this host (NVML library not found)"
            elif isinstance(exc, pynvml.NVMLError_DriverNotLoaded):
                reason = "the NVIDIA driver is not loaded"
            _nvml_state["error"] = f"no NVIDIA GPU available: {reason}"
            raise RuntimeError(_nvml_state["error"]) from None
        _nvml_state["initialised"] = True
        return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_status() -> GpuStatus:
    """The NVIDIA GPUs of this host and their current load; ``available=False`` with a reason if none."""
    try:
        nvml = _nvml()
    except RuntimeError as exc:
        return GpuStatus(False, str(exc))
    try:
        count = nvml.nvmlDeviceGetCount()
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        devices = []
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            utilization = temperature = power = None
            with suppress(nvml.NVMLError):
                utilization = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            with suppress(nvml.NVMLError):
                temperature = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            with suppress(nvml.NVMLError):
                power = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            devices.append(
                GpuDevice(
                    index=index,
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    utilization_pct=utilization,
                    memory_used_mib=memory.used / 2**20,
                    memory_total_mib=memory.total / 2**20,
                    temperature_c=temperature,
                    power_w=power,
                )
            )
    except nvml.NVMLError as exc:
        return GpuStatus(False, f"NVML error while reading the GPUs: {exc}")
    if not devices:
        return GpuStatus(False, "the NVIDIA driver is present but reports no GPU", driver)
    return GpuStatus(True, None, driver, tuple(devices))


# --- host -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemStatus:
    cpu_count: int
    cpu_percent: float
    load_average: tuple[float, float, float]
    memory_total_mib: float
    memory_available_mib: float
    memory_percent: float
    disk_path: str
    disk_total_gib: float
    disk_free_gib: float
    disk_percent: float


def system_status(disk_path: str | os.PathLike[str] = ".", cpu_interval_s: float = 0.2) -> SystemStatus:
    """CPU, memory and disk of this host (CPU load measured over ``cpu_interval_s``)."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(disk_path))
    return SystemStatus(
        cpu_count=psutil.cpu_count() or 1,
        cpu_percent=psutil.cpu_percent(interval=cpu_interval_s),
        load_average=tuple(round(x, 2) for x in psutil.getloadavg()),  # type: ignore[arg-type]
        memory_total_mib=memory.total / 2**20,
        memory_available_mib=memory.available / 2**20,
        memory_percent=memory.percent,
        disk_path=str(Path(disk_path).resolve()),
        disk_total_gib=disk.total / 2**30,
        disk_free_gib=disk.free / 2**30,
        disk_percent=disk.percent,
    )


# --- Ollama -----------------------------------------------------------------------------------------


OllamaSource = Literal["given", "OLLAMA_HOST", "default"]


def ollama_target(
    host: str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[str, OllamaSource]:
    """The Ollama a health check looks at, and why: ``host`` if given, else ``OLLAMA_HOST``, else
    :data:`OLLAMA_DEFAULT_HOST` (the one rule for every command and the T-60 phase)."""
    if host and host.strip():
        return host.strip(), "given"
    env = os.environ if environ is None else environ
    configured = env.get("OLLAMA_HOST", "").strip()
    if configured:
        return configured, "OLLAMA_HOST"
    return OLLAMA_DEFAULT_HOST, "default"


def _nothing_listens(base_url: str, timeout_s: float = 1.0) -> bool:
    """True when the connection is refused: no Ollama on this host at all (not a broken one)."""
    parts = httpx.URL(base_url)
    try:
        with socket.create_connection((parts.host, parts.port or 80), timeout=timeout_s):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def ollama_base_url(host: str) -> str:
    """``OLLAMA_HOST`` in any of Ollama's own spellings as a URL: the executor's one rule, so the health
    check probes exactly the host the executions go to."""
    from beacon.executors.ollama import ollama_url

    return ollama_url(host)


@dataclass(frozen=True)
class OllamaModel:
    name: str
    size_bytes: int
    digest: str | None
    size_vram_bytes: int | None = None
    """Only for loaded models (``/api/ps``): bytes of the model in GPU memory."""

    @property
    def gpu_fraction(self) -> float | None:
        if self.size_vram_bytes is None or not self.size_bytes:
            return None
        return self.size_vram_bytes / self.size_bytes


@dataclass(frozen=True)
class LatencyProbe:
    model: str
    ok: bool
    wall_s: float | None = None
    total_s: float | None = None
    """Ollama's own ``total_duration`` (seconds)."""
    load_s: float | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class OllamaStatus:
    host: str
    reachable: bool
    version: str | None = None
    models: tuple[OllamaModel, ...] = ()
    loaded: tuple[OllamaModel, ...] = ()
    probe: LatencyProbe | None = None
    error: str | None = None

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]


def _model(entry: dict[str, Any], loaded: bool) -> OllamaModel:
    return OllamaModel(
        name=str(entry.get("name") or entry.get("model") or "?"),
        size_bytes=int(entry.get("size") or 0),
        digest=entry.get("digest"),
        size_vram_bytes=int(entry.get("size_vram") or 0) if loaded else None,
    )


def ollama_status(
    host: str,
    *,
    probe: bool = True,
    probe_model: str | None = None,
    timeout_s: float = 10.0,
    probe_timeout_s: float = 120.0,
) -> OllamaStatus:
    """Ask the Ollama at ``host`` for its version, models and loaded models; optionally time one generation."""
    base = ollama_base_url(host)
    try:
        with httpx.Client(base_url=base, timeout=timeout_s) as http:
            version = http.get("/api/version").raise_for_status().json().get("version")
            models = tuple(
                _model(m, False) for m in http.get("/api/tags").raise_for_status().json().get("models", [])
            )
            loaded = tuple(
                _model(m, True) for m in http.get("/api/ps").raise_for_status().json().get("models", [])
            )
            result = OllamaStatus(base, True, version, models, loaded)
            if probe:
                chosen = probe_model or (min(models, key=lambda m: m.size_bytes).name if models else None)
                if chosen is None:
                    return OllamaStatus(
                        base, True, version, models, loaded, LatencyProbe("", False, error="no models")
                    )
                result = OllamaStatus(
                    base, True, version, models, loaded, _probe(http, chosen, probe_timeout_s)
                )
                # the probe loads the model: read /api/ps again to see where it went (GPU or CPU)
                with suppress(httpx.HTTPError, ValueError):
                    loaded = tuple(
                        _model(m, True)
                        for m in http.get("/api/ps").raise_for_status().json().get("models", [])
                    )
                    result = OllamaStatus(base, True, version, models, loaded, result.probe)
            return result
    except (httpx.HTTPError, ValueError) as exc:
        return OllamaStatus(base, False, error=f"{type(exc).__name__}: {exc}")


def _probe(http: httpx.Client, model: str, timeout_s: float) -> LatencyProbe:
    body = {
        "model": model,
        "prompt": PROBE_PROMPT,
        "stream": False,
        "options": {"temperature": 0, "seed": 42, "num_predict": 8},
    }
    started = time.perf_counter()
    try:
        response = http.post("/api/generate", json=body, timeout=timeout_s)
        wall = time.perf_counter() - started
        response.raise_for_status()
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return LatencyProbe(
            model, False, wall_s=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"
        )
    tokens = data.get("eval_count")
    eval_s = (data.get("eval_duration") or 0) / 1e9
    return LatencyProbe(
        model=model,
        ok=True,
        wall_s=wall,
        total_s=(data["total_duration"] / 1e9) if data.get("total_duration") else None,
        load_s=(data["load_duration"] / 1e9) if data.get("load_duration") else None,
        tokens=tokens,
        tokens_per_s=(tokens / eval_s) if tokens and eval_s > 0 else None,
    )


# --- the health verdict -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthReport:
    system: SystemStatus
    gpu: GpuStatus
    ollama: OllamaStatus | None
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def exit_status(self) -> CheckExit:
        return CheckExit.HEALTHY if self.healthy else CheckExit.UNHEALTHY

    @property
    def gpu_acceleration(self) -> bool | None:
        """True if a GPU is doing the work (NVML device, or Ollama models in GPU memory); None if unknown."""
        if self.ollama and self.ollama.loaded:
            return any((m.gpu_fraction or 0) > 0 for m in self.ollama.loaded)
        return True if self.gpu.available else None

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "exit_status": int(self.exit_status),
            "gpu_acceleration": self.gpu_acceleration,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "system": asdict(self.system),
            "gpu": asdict(self.gpu),
            "ollama": asdict(self.ollama) if self.ollama else None,
        }


def health_check(
    *,
    ollama_host: str | None = None,
    require_gpu: bool = False,
    models: Sequence[str] = (),
    probe: bool = True,
    probe_model: str | None = None,
    max_latency_s: float | None = None,
    min_available_memory_pct: float = 5.0,
    min_free_disk_pct: float = 5.0,
    disk_path: str | os.PathLike[str] = ".",
) -> HealthReport:
    """Check the host for inference: problems make it unhealthy; notes say what is absent but optional.

    ``ollama_host`` None: the Ollama of :func:`ollama_target` (``OLLAMA_HOST``, else the default
    address, where an absent Ollama is a note). Required ``models`` with no Ollama is a problem.
    """
    problems: list[str] = []
    notes: list[str] = []
    system = system_status(disk_path)
    available_pct = 100.0 * system.memory_available_mib / max(system.memory_total_mib, 1.0)
    if available_pct < min_available_memory_pct:
        problems.append(f"only {available_pct:.1f}% of memory available (< {min_available_memory_pct}%)")
    if 100.0 - system.disk_percent < min_free_disk_pct:
        problems.append(f"disk {system.disk_path} is {system.disk_percent:.0f}% full")
    gpu = gpu_status()
    if not gpu.available:
        (problems if require_gpu else notes).append(gpu.reason or "no GPU")
    ollama: OllamaStatus | None = None
    host, source = ollama_target(ollama_host)
    if source == "default" and _nothing_listens(ollama_base_url(host)):
        notes.append(
            f"no Ollama on this host (nothing listens at {host}, OLLAMA_HOST unset): Ollama not checked"
        )
    else:
        ollama = ollama_status(host, probe=probe, probe_model=probe_model or (models[0] if models else None))
        if not ollama.reachable:
            problems.append(f"Ollama at {ollama.host} is unreachable: {ollama.error}")
        else:
            if not ollama.models:
                problems.append(f"Ollama at {ollama.host} has no models pulled")
            missing = [m for m in models if not _has_model(ollama.model_names, m)]
            if missing:
                problems.append(f"models not pulled on {ollama.host}: {', '.join(missing)}")
            if ollama.probe is not None:
                if not ollama.probe.ok:
                    problems.append(
                        f"latency probe on {ollama.probe.model or '?'} failed: {ollama.probe.error}"
                    )
                elif max_latency_s is not None and (ollama.probe.wall_s or 0) > max_latency_s:
                    problems.append(
                        f"latency probe took {ollama.probe.wall_s:.2f}s on {ollama.probe.model} (> {max_latency_s}s)"
                    )
            if ollama.loaded and not any((m.gpu_fraction or 0) > 0 for m in ollama.loaded):
                (problems if require_gpu else notes).append(
                    "Ollama runs its loaded models on the CPU (size_vram = 0)"
                )
    if models and ollama is None:
        problems.append(f"models required ({', '.join(models)}) but no Ollama was found to hold them")
    return HealthReport(system, gpu, ollama, tuple(problems), tuple(notes))


def _has_model(available: Sequence[str], wanted: str) -> bool:
    """Ollama names carry an implicit ``:latest`` tag."""
    candidates = {wanted, wanted if ":" in wanted else f"{wanted}:latest"}
    return any(name in candidates for name in available)


# --- sampling ---------------------------------------------------------------------------------------


def sample() -> dict[str, float | None]:
    """One flat row of metrics (for CSV files and time-series plots): host, then each GPU."""
    memory = psutil.virtual_memory()
    row: dict[str, float | None] = {
        "time": time.time(),
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_used_mib": (memory.total - memory.available) / 2**20,
        "memory_percent": memory.percent,
    }
    status = gpu_status()
    for device in status.devices:
        prefix = f"gpu{device.index}_"
        row[prefix + "util_percent"] = device.utilization_pct
        row[prefix + "memory_used_mib"] = device.memory_used_mib
        row[prefix + "temperature_c"] = device.temperature_c
        row[prefix + "power_w"] = device.power_w
    return row


@dataclass
class Sampler:
    """Samples :func:`sample` every ``interval_s`` in a background thread (a context manager)."""

    interval_s: float = 0.5
    rows: list[dict[str, float | None]] = field(default_factory=list)
    on_sample: Callable[[dict[str, float | None]], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        psutil.cpu_percent(interval=None)  # prime: the first reading covers "since the last call"
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="beacon-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._take()

    def _take(self) -> None:
        row = sample()
        self.rows.append(row)
        if self.on_sample is not None:
            self.on_sample(row)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._take()


def watch(
    interval_s: float, *, duration_s: float | None = None, stop: threading.Event | None = None
) -> Iterator[dict[str, float | None]]:
    """Yield a sample every ``interval_s`` seconds, for ``duration_s`` (or until ``stop`` is set)."""
    psutil.cpu_percent(interval=None)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    stop = stop or threading.Event()
    while not stop.is_set():
        started = time.monotonic()
        yield sample()
        if deadline is not None and time.monotonic() >= deadline:
            return
        stop.wait(max(0.0, interval_s - (time.monotonic() - started)))


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write sample rows as CSV (columns: the union of the rows' keys, in first-seen order)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
