"""Embedded stand-ins are explicit: the requested model is kept, the answering one is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beacon import __version__
from beacon.config import Settings
from beacon.executors.base import ExecutionRequest, ExecutionResult, isolates_containers
from beacon.executors.golem import GolemExecutor
from beacon.executors.llamacpp import LlamaCppExecutor
from beacon.executors.ollama import OllamaExecutor
from beacon.executors.registry import create_executor, region_isolates_containers
from beacon.executors.stand_ins import StandInExecutor


class Recorder:
    name = "llamacpp"

    def __init__(self) -> None:
        self.models: list[str] = []

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        self.models.append(request.model)
        return ExecutionResult(
            text="4",
            tokens_in=1,
            tokens_out=1,
            timings={"total": 0.0},
            model_digest="sha256:" + "0" * 64,
            backend="llamacpp",
            backend_version=__version__,
            provider_id="p",
            served_region=request.region,
            provider_info={"host": "local"},
        )

    async def status(self) -> dict[str, Any]:
        return {"ready": True}

    async def aclose(self) -> None:
        return None


async def test_a_stand_in_answers_for_the_requested_model_and_says_so() -> None:
    inner = Recorder()
    executor = StandInExecutor(inner, {"llama3.2:1b": "smollm2-135m"})
    result = await executor.execute(ExecutionRequest("What is 2+2?", "sys", "llama3.2:1b", "US"))
    assert inner.models == ["smollm2-135m"]
    assert result.provider_info["model_stand_in"]["requested"] == "llama3.2:1b"
    assert result.provider_info["model_stand_in"]["served_by"] == "smollm2-135m"
    assert result.provider_info["host"] == "local"
    plain = await executor.execute(ExecutionRequest("What is 2+2?", "sys", "smollm2-135m", "US"))
    assert "model_stand_in" not in plain.provider_info and inner.models[-1] == "smollm2-135m"


def test_the_embedded_backend_gets_the_stand_ins_and_they_can_be_turned_off(tmp_path: Path) -> None:
    with_stand_ins = create_executor(Settings(data_dir=tmp_path), "US", "llamacpp")
    assert (
        isinstance(with_stand_ins, StandInExecutor)
        and with_stand_ins.served_model("qwen2.5:1.5b") == "smollm2-135m"
    )
    without = create_executor(Settings(data_dir=tmp_path, embedded_stand_ins={}), "US", "llamacpp")
    assert isinstance(without, LlamaCppExecutor)


def test_only_the_golem_vm_executor_isolates_containers(tmp_path: Path) -> None:
    assert isolates_containers(GolemExecutor) and not isolates_containers(LlamaCppExecutor)
    assert not isolates_containers(OllamaExecutor) and not isolates_containers(object())
    settings = Settings(data_dir=tmp_path, region_backends={"EU": "golem"})
    assert region_isolates_containers(settings, "EU") == (True, "golem")
    assert region_isolates_containers(settings, "US") == (False, "llamacpp")
