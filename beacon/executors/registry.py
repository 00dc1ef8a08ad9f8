"""``create_executor``: Settings + region (+ backend) → the Executor a region worker runs its executions on.

Model ids (``smollm2-135m``) map to each backend's own names only through settings — ``LLAMACPP_MODELS``
(GGUF paths), ``OLLAMA_MODELS`` (tags), ``GOLEM_IMAGES`` (GVMI hashes) — never by guessing; a model a
backend has no mapping for fails with the permanent code ``model_not_available``.
"""

from __future__ import annotations

from pathlib import Path

from beacon.config import Settings
from beacon.executors.base import Executor, ExecutorConfigError, isolates_containers
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, smollm2_gguf_path
from beacon.executors.stand_ins import StandInExecutor

BACKENDS: tuple[str, ...] = ("llamacpp", "ollama", "golem")


def llamacpp_model_paths(settings: Settings) -> dict[str, Path]:
    """Model id → GGUF path: the bundled SmolLM2 (when installed) overlaid by ``LLAMACPP_MODELS``."""
    paths: dict[str, Path] = {}
    bundled = smollm2_gguf_path()
    if bundled is not None:
        paths[SMOLLM2_MODEL_ID] = bundled
    paths.update(settings.llamacpp_models)
    return paths


def backend_class(name: str) -> type:
    """The executor class of a backend name (imported on demand); ExecutorConfigError if unknown."""
    if name == "llamacpp":
        from beacon.executors.llamacpp import LlamaCppExecutor

        return LlamaCppExecutor
    if name == "ollama":
        from beacon.executors.ollama import OllamaExecutor

        return OllamaExecutor
    if name == "golem":
        from beacon.executors.golem import GolemExecutor

        return GolemExecutor
    raise ExecutorConfigError("unknown_backend", f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


def region_isolates_containers(settings: Settings, region: str) -> tuple[bool, str]:
    """(whether ``region``'s backend can isolate a JobSpec's container, that backend's name)."""
    name = settings.backend_for(region)
    try:
        return isolates_containers(backend_class(name)), name
    except ExecutorConfigError:
        return False, name


def create_executor(settings: Settings, region: str, backend: str | None = None) -> Executor:
    """Build the executor for ``region``; ``backend`` defaults to ``settings.backend_for(region)``.

    Raises :class:`ExecutorConfigError` (code ``backend_not_configured`` or ``unknown_backend``) when the
    region cannot be served: an Ollama region without a host, a Golem region without a provider allowlist.
    Nothing is contacted here; connections are made on first use and reported by ``status()``.
    """
    name = backend or settings.backend_for(region)
    if name == "llamacpp":
        from beacon.executors.llamacpp import LlamaCppExecutor

        embedded = LlamaCppExecutor(
            region=region,
            models=llamacpp_model_paths(settings),
            n_ctx=settings.llamacpp_n_ctx,
            n_threads=settings.llamacpp_threads,
            n_gpu_layers=settings.llamacpp_gpu_layers,
            provider_id=settings.provider_id,
        )
        if not settings.embedded_stand_ins:
            return embedded
        return StandInExecutor(embedded, settings.embedded_stand_ins)
    if name == "ollama":
        from beacon.executors.ollama import OllamaExecutor

        host = settings.ollama_hosts.get(region)
        source = "OLLAMA_HOSTS"
        if host is None and settings.ollama_host:
            host, source = settings.ollama_host, "OLLAMA_HOST"
        if not host:
            raise ExecutorConfigError(
                "backend_not_configured",
                f"no Ollama host for region {region}: set OLLAMA_HOSTS (a JSON map region → URL) or OLLAMA_HOST",
            )
        return OllamaExecutor(
            region=region,
            host=host,
            host_source=source,
            models=settings.ollama_models,
            keep_alive=settings.ollama_keep_alive,
        )
    if name == "golem":
        from beacon.executors.golem import GolemExecutor

        return GolemExecutor.from_settings(settings, region)
    raise ExecutorConfigError("unknown_backend", f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
