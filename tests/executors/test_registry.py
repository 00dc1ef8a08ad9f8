"""create_executor: backend choice per region, explicit model mappings, configuration errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beacon.executors.base import ExecutorConfigError
from beacon.executors.golem import GolemExecutor
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, LlamaCppExecutor, smollm2_gguf_path
from beacon.executors.ollama import OllamaExecutor
from beacon.executors.registry import create_executor, llamacpp_model_paths
from beacon.executors.stand_ins import StandInExecutor, embedded_executor


async def test_llamacpp_is_the_default_with_the_bundled_model(make_settings: Callable[..., Any]) -> None:
    executor = create_executor(make_settings(), "EU")
    assert isinstance(executor, StandInExecutor) and isinstance(embedded_executor(executor), LlamaCppExecutor)
    assert executor.region == "EU" and executor.provider_id.startswith("local:")
    status = await executor.status()
    assert status["models"][SMOLLM2_MODEL_ID]["path"] == str(smollm2_gguf_path())
    assert status["models"][SMOLLM2_MODEL_ID]["present"] is True
    assert status["ready"] is True
    await executor.aclose()


def test_llamacpp_models_overlay_the_bundled_one(make_settings: Callable[..., Any], tmp_path: Path) -> None:
    settings = make_settings(llamacpp_models={"tiny": str(tmp_path / "tiny.gguf")}, provider_id="lab-eu-1")
    paths = llamacpp_model_paths(settings)
    assert paths["tiny"] == tmp_path / "tiny.gguf"
    assert SMOLLM2_MODEL_ID in paths
    executor = create_executor(settings, "EU")
    assert isinstance(embedded_executor(executor), LlamaCppExecutor) and executor.provider_id == "lab-eu-1"


def test_backends_per_region_from_the_environment(
    make_settings: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEACON_REGION_BACKENDS", '{"eu": "ollama", "apac": "golem"}')
    monkeypatch.setenv("OLLAMA_HOSTS", '{"europe": "http://gpu-eu:11434"}')
    monkeypatch.setenv("GOLEM_REGION_PROVIDERS", '{"ASIA": ["0xabc"]}')
    monkeypatch.setenv("GOLEM_IMAGES", '{"smollm2-135m": "abc123@http://images.example/x.gvmi"}')
    settings = make_settings()
    assert isinstance(embedded_executor(create_executor(settings, "US")), LlamaCppExecutor)
    eu = create_executor(settings, "EU")
    assert isinstance(eu, OllamaExecutor) and eu.host == "http://gpu-eu:11434"
    asia = create_executor(settings, "ASIA")
    assert isinstance(asia, GolemExecutor)
    assert asia.allowed_providers == ("0xabc",)
    assert asia.images[SMOLLM2_MODEL_ID].hash == "abc123"
    assert asia.images[SMOLLM2_MODEL_ID].url == "http://images.example/x.gvmi"
    # An explicit backend overrides the settings (beacon worker --backend …).
    assert isinstance(embedded_executor(create_executor(settings, "EU", "llamacpp")), LlamaCppExecutor)


def test_unknown_backend_and_unconfigured_regions(make_settings: Callable[..., Any]) -> None:
    settings = make_settings()
    with pytest.raises(ExecutorConfigError) as info:
        create_executor(settings, "EU", "modal")
    assert info.value.code == "unknown_backend"
    with pytest.raises(ExecutorConfigError) as info:
        create_executor(settings, "EU", "ollama")
    assert info.value.code == "backend_not_configured" and "OLLAMA_HOSTS" in info.value.message
    with pytest.raises(ExecutorConfigError) as info:
        create_executor(settings, "EU", "golem")
    assert info.value.code == "backend_not_configured" and "GOLEM_REGION_PROVIDERS" in info.value.message
    assert info.value.transient is False
