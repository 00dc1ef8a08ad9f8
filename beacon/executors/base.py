"""The executor protocol: one request in, one result (or one classified error) out.

Backends (``llamacpp``, ``ollama``, ``golem``) implement :class:`Executor`. The worker owns retries,
deadlines and receipts; an executor only runs one inference and says, when it fails, whether trying
again could help (:class:`TransientExecutorError`) or not (:class:`PermanentExecutorError`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable


@dataclass(frozen=True)
class DecodingOptions:
    temperature: float = 0.0
    seed: int = 42
    max_tokens: int = 256
    top_p: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
        }


@dataclass(frozen=True)
class ExecutionRequest:
    prompt: str
    system_prompt: str
    model: str
    region: str
    options: DecodingOptions = field(default_factory=DecodingOptions)
    deadline: float | None = None
    """UNIX time by which the call must have ended; the executor must not run past it."""
    execution_id: str | None = None
    command: tuple[str, ...] | None = None
    """A command-style JobSpec's command (argv), to run in the backend's isolated container instead of the
    benchmark; only a backend that isolates containers (Golem's VM) may accept it, never the runner's host."""


@dataclass(frozen=True)
class ExecutionResult:
    text: str
    tokens_in: int
    tokens_out: int
    timings: dict[str, float]
    """Seconds: at least ``total``; backends add what they measure (``load``, ``prompt_eval``, ``eval``)."""
    model_digest: str
    backend: str
    backend_version: str
    provider_id: str
    served_region: str
    provider_info: dict[str, Any] = field(default_factory=dict)
    """Backend-specific evidence for the receipt (Golem agreement id and provider name, Ollama host, …)."""


class ExecutorError(Exception):
    """An execution failed. ``code`` is a stable reason code recorded on the execution and receipt."""

    transient = False

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


class TransientExecutorError(ExecutorError):
    """Trying again later may succeed (timeouts, connection refused, 5xx, model still loading)."""

    transient = True


class PermanentExecutorError(ExecutorError):
    """Trying again will not help (unknown model, bad request, region not servable)."""


class ExecutorConfigError(PermanentExecutorError):
    """The backend cannot serve this region with the current settings (raised at worker start)."""


class ExecutorBase:
    """What an executor class declares about itself (class attributes, read before any instance exists).

    ``isolates_containers``: the backend runs a JobSpec's own container image and command inside an
    isolation boundary of its own (a provider's VM), so a command-style JobSpec may be planned for
    regions it serves. False by default: a backend that runs models in the runner's process or on an
    inference server would run a submitted command on a host Beacon controls, which it never does.
    """

    isolates_containers: ClassVar[bool] = False


def isolates_containers(executor: object) -> bool:
    """The ``isolates_containers`` capability of an executor class or instance (False if undeclared)."""
    return bool(getattr(executor, "isolates_containers", False))


Resolved = TypeVar("Resolved")


def admit_request(
    request: ExecutionRequest,
    region: str,
    resolve_model: Callable[[str], Resolved],
    *,
    serving: str = "",
    before: str = "call",
) -> tuple[Resolved, float | None]:
    """The checks every backend makes before it starts: (the resolved model, seconds left or None).

    In this order: the request is for the executor's ``region`` (``region_mismatch``, permanent: there
    is no fallback to another region); ``resolve_model`` maps its model id to what the backend runs
    (raising ``model_not_available``); its deadline has not passed (``deadline_exceeded``, transient).
    ``serving`` adds to the region in the refusal (an Ollama host); ``before`` names what did not start.
    """
    if request.region != region:
        raise PermanentExecutorError(
            "region_mismatch",
            f"this executor serves {region}{serving}; refusing a request for {request.region}",
        )
    model = resolve_model(request.model)
    remaining = None if request.deadline is None else request.deadline - time.time()
    if remaining is not None and remaining <= 0:
        raise TransientExecutorError("deadline_exceeded", f"the deadline passed before the {before} started")
    return model, remaining


@runtime_checkable
class Executor(Protocol):
    """A backend that runs one inference at a time per call; instances may be shared by a worker."""

    name: str

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        """Run one inference. Raise ExecutorError subclasses; honour ``request.deadline``; be cancellable."""
        ...

    async def status(self) -> dict[str, Any]:
        """Readiness and facts for health pages: reachable, models, versions, provider identity."""
        ...

    async def aclose(self) -> None:
        """Release models, sessions and connections."""
        ...
