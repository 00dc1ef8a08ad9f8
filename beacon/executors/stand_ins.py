"""Embedded stand-ins: the original's model names served, openly, by the embedded models.

The original's JobSpecs name ``llama3.2:1b``, ``qwen2.5:1.5b`` and ``mistral:7b`` (the models their
images pulled). A GPU host runs them through Ollama (``OLLAMA_MODELS``). The embedded backend cannot
hold them, so ``BEACON_EMBEDDED_STAND_INS`` maps each to an embedded model id — never silently: the
execution keeps the requested id, and its receipt says which model answered (``provider.info.
model_stand_in``), as does the difference report. Decision 1201.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from beacon.executors.base import ExecutionRequest, ExecutionResult, Executor

STAND_IN_SETTING = "BEACON_EMBEDDED_STAND_INS"


class StandInExecutor:
    """Wraps an embedded executor: a requested model with a stand-in is run as that stand-in."""

    def __init__(self, inner: Executor, stand_ins: Mapping[str, str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.stand_ins = dict(stand_ins)

    def __getattr__(self, name: str) -> Any:
        """Everything else is the embedded executor's (``region``, ``provider_id`` …)."""
        if name == "inner":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def served_model(self, model: str) -> str:
        """The embedded model that answers for ``model`` (itself when it has no stand-in)."""
        return self.stand_ins.get(model, model)

    async def load(self, model_id: str) -> float:
        load = getattr(self.inner, "load", None)
        return float(await load(self.served_model(model_id))) if load is not None else 0.0

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        served = self.served_model(request.model)
        if served == request.model:
            return await self.inner.execute(request)
        result = await self.inner.execute(replace(request, model=served))
        note = {
            "requested": request.model,
            "served_by": served,
            "backend": result.backend,
            "setting": STAND_IN_SETTING,
            "why": f"the {result.backend} backend does not hold {request.model}; {served} answered in its place",
        }
        return replace(result, provider_info={**result.provider_info, "model_stand_in": note})

    async def status(self) -> dict[str, Any]:
        status = await self.inner.status()
        return {**status, "model_stand_ins": dict(self.stand_ins)}

    async def aclose(self) -> None:
        await self.inner.aclose()


def embedded_executor(executor: Any) -> Any:
    """The executor a stand-in wrapper holds (``executor`` itself when it is not wrapped)."""
    return executor.inner if isinstance(executor, StandInExecutor) else executor
