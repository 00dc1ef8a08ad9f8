"""The Golem backend: the benchmark runs in a VM image per model on a provider of the region's allowlist.

A Golem *region* is an allowlist of provider node ids or names (``GOLEM_REGION_PROVIDERS``), enforced by
:class:`~beacon.executors.golem_strategy.RegionAllowlistStrategy` (offers from anyone else are refused)
and checked again on the provider that actually runs the task. Each model maps to a GVMI image hash
(``GOLEM_IMAGES``, ``HASH`` or ``HASH@URL``); the image's entrypoint (``GOLEM_VM_ENTRYPOINT``) is
:mod:`beacon.executors.golem_vm`, which prints one JSON line and exits.

``yapapi`` is imported lazily (extra ``golem``): without it this module still imports and every call
fails with the permanent code ``golem_not_installed``.

Before the engine starts, a preflight against yagna's REST API turns the usual set-up mistakes into
distinct codes instead of a stack trace deep inside yapapi:

=====================================  =========  ==================================================
code                                   kind       when
=====================================  =========  ==================================================
``golem_appkey_missing``               permanent  no ``YAGNA_APPKEY``
``golem_yagna_unreachable``            transient  nothing answers at ``YAGNA_API_URL``
``golem_appkey_invalid``               permanent  yagna answers 401 to the app key
``golem_payment_account_missing``      permanent  no requestor account for driver-network-token
``golem_payment_failed``               permanent  yagna refuses the budget allocation (4xx)
``golem_payment_unavailable``          transient  allocation fails inside yagna (5xx: chain RPC down…)
``golem_gftp_missing``                 permanent  yapapi cannot start ``gftp`` (not on PATH)
``golem_image_unavailable``            transient  the GVMI image URL / registry does not answer
``golem_no_provider``                  transient  no allowlisted provider took the task in time
``golem_task_failed``                  transient  the command failed on the provider
``golem_bad_output``                   transient  the VM printed no result line
``golem_region_violation``             permanent  the task landed on a provider outside the region
=====================================  =========  ==================================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

from beacon.executors.base import (
    ExecutionRequest,
    ExecutionResult,
    ExecutorError,
    PermanentExecutorError,
    TransientExecutorError,
)
from beacon.executors.golem_vm import encode_request

if TYPE_CHECKING:
    from beacon.config import Settings
    from beacon.executors.golem_strategy import RegionAllowlistStrategy

log = logging.getLogger("beacon.executors.golem")

MAINNETS = frozenset({"mainnet", "polygon"})
DEFAULT_TASK_TIMEOUT_S = 15 * 60.0


@dataclass(frozen=True)
class GolemImage:
    hash: str
    url: str | None = None

    @classmethod
    def parse(cls, value: str) -> GolemImage:
        image_hash, _, url = value.partition("@")
        return cls(image_hash.strip(), url.strip() or None)


def payment_platform(driver: str, network: str) -> str:
    """yagna's platform name, e.g. ``erc20-holesky-tglm`` (test GLM off the mainnets)."""
    token = "glm" if network in MAINNETS else "tglm"
    return f"{driver}-{network}-{token}"


def parse_vm_output(stdout: str | None) -> dict[str, Any]:
    """The last JSON line the VM entrypoint printed."""
    for line in reversed((stdout or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(value, dict):
                return value
    raise TransientExecutorError("golem_bad_output", "the VM printed no JSON result line")


GolemFactory = Callable[..., Any]
"""Builds the engine: ``yapapi.Golem`` in production (keyword arguments as ``yapapi.Golem``)."""

PayloadFactory = Callable[..., Awaitable[Any]]
"""Builds the VM payload: ``yapapi.payload.vm.repo`` in production."""


class GolemExecutor:
    """Runs each execution as one yapapi task on an allowlisted provider of its region."""

    name = "golem"
    isolates_containers = True  # each task runs in the provider's VM (ExecutorBase.isolates_containers)

    def __init__(
        self,
        *,
        region: str,
        allowed_providers: Iterable[str],
        images: Mapping[str, str],
        yagna_url: str,
        app_key: str | None,
        subnet: str = "public",
        payment_driver: str = "erc20",
        payment_network: str = "holesky",
        budget_glm: float = 1.0,
        entrypoint: str = "/beacon/run-benchmark",
        min_mem_gib: float = 1.0,
        min_storage_gib: float = 2.0,
        golem_factory: GolemFactory | None = None,
        payload_factory: PayloadFactory | None = None,
    ) -> None:
        self.region = region
        self.allowed_providers = tuple(allowed_providers)
        self.images = {model: GolemImage.parse(value) for model, value in images.items()}
        self.yagna_url = yagna_url.rstrip("/")
        self.app_key = app_key
        self.subnet = subnet
        self.payment_driver = payment_driver
        self.payment_network = payment_network
        self.budget_glm = budget_glm
        self.entrypoint = entrypoint
        self.min_mem_gib = min_mem_gib
        self.min_storage_gib = min_storage_gib
        self._golem_factory = golem_factory
        self._payload_factory = payload_factory
        self._golem: Any = None
        self._strategy: RegionAllowlistStrategy | None = None
        self._identity: str | None = None
        self._start_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, region: str) -> GolemExecutor:
        from beacon.executors.registry import ExecutorConfigError

        allowed = settings.golem_region_providers.get(region) or []
        if not allowed:
            raise ExecutorConfigError(
                "backend_not_configured",
                f"no Golem providers allowlisted for region {region}: set GOLEM_REGION_PROVIDERS "
                '(a JSON map region → [node id or name, …]), e.g. {"EU": ["0xabc…"]}',
            )
        return cls(
            region=region,
            allowed_providers=allowed,
            images=settings.golem_images,
            yagna_url=settings.yagna_url or "http://127.0.0.1:7465",
            app_key=settings.yagna_appkey,
            subnet=settings.golem_subnet,
            payment_driver=settings.golem_payment_driver,
            payment_network=settings.golem_network,
            budget_glm=settings.golem_budget_glm,
            entrypoint=settings.golem_vm_entrypoint,
            min_mem_gib=settings.golem_min_mem_gib,
            min_storage_gib=settings.golem_min_storage_gib,
        )

    @property
    def platform(self) -> str:
        return payment_platform(self.payment_driver, self.payment_network)

    @property
    def strategy(self) -> RegionAllowlistStrategy:
        if self._strategy is None:
            from beacon.executors.golem_strategy import RegionAllowlistStrategy

            self._strategy = RegionAllowlistStrategy(self.region, self.allowed_providers)
        return self._strategy

    # --- preflight and engine ----------------------------------------------------------------------
    async def connect(self) -> dict[str, Any]:
        """Ask yagna who we are and which payment accounts it has (checks reachability and the app key)."""
        if not self.app_key:
            raise PermanentExecutorError(
                "golem_appkey_missing",
                "no yagna app key: set YAGNA_APPKEY (create one with `yagna app-key create beacon`)",
            )
        headers = {"Authorization": f"Bearer {self.app_key}"}
        try:
            async with httpx.AsyncClient(base_url=self.yagna_url, headers=headers, timeout=10.0) as http:
                me = await http.get("/me")
                if me.status_code == 401:
                    raise PermanentExecutorError(
                        "golem_appkey_invalid",
                        f"yagna at {self.yagna_url} rejects the app key (401): check YAGNA_APPKEY",
                    )
                me.raise_for_status()
                accounts = await http.get("/payment-api/v1/requestorAccounts")
                accounts.raise_for_status()
        except httpx.TransportError as exc:
            raise TransientExecutorError(
                "golem_yagna_unreachable", f"yagna is not reachable at {self.yagna_url}: {type(exc).__name__}"
            ) from exc
        except httpx.HTTPStatusError as exc:
            raise TransientExecutorError(
                "golem_yagna_error", f"yagna answered {exc.response.status_code}: {exc.response.text[:200]}"
            ) from exc
        platforms = [a.get("platform") for a in accounts.json() if isinstance(a, dict)]
        return {"identity": str(me.json().get("identity")), "platforms": platforms}

    async def preflight(self) -> dict[str, Any]:
        """:meth:`connect`, then require a requestor account for this executor's payment platform."""
        facts = await self.connect()
        if self.platform not in facts["platforms"]:
            raise PermanentExecutorError(
                "golem_payment_account_missing",
                f"yagna has no requestor account for {self.platform}: run `yagna payment init --sender "
                f"--driver {self.payment_driver} --network {self.payment_network}` (and fund it)",
                details={"platforms": facts["platforms"]},
            )
        self._identity = facts["identity"]
        return facts

    async def _engine(self) -> Any:
        async with self._start_lock:
            if self._golem is not None:
                return self._golem
            await self.preflight()
            golem = self._new_golem()
            try:
                await golem.start()
            except ExecutorError:
                raise
            except Exception as exc:
                raise classify_start_error(exc, self.yagna_url, self.platform) from exc
            self._golem = golem
            log.info(
                "golem engine started",
                extra={"region": self.region, "identity": self._identity, "platform": self.platform},
            )
            return golem

    def _new_golem(self) -> Any:
        factory = self._golem_factory or _yapapi().Golem
        from yapapi.config import ApiConfig

        return factory(
            budget=self.budget_glm,
            strategy=self.strategy,
            subnet_tag=self.subnet,
            payment_driver=self.payment_driver,
            payment_network=self.payment_network,
            api_config=ApiConfig(app_key=self.app_key or "", api_url=self.yagna_url),
        )

    async def _payload(self, image: GolemImage) -> Any:
        factory = self._payload_factory
        if factory is None:
            from yapapi.payload import vm

            factory = vm.repo
        try:
            return await factory(
                image_hash=image.hash,
                image_url=image.url,
                min_mem_gib=self.min_mem_gib,
                min_storage_gib=self.min_storage_gib,
            )
        except Exception as exc:  # yapapi checks the image URL (or asks the image registry) over HTTP
            raise TransientExecutorError(
                "golem_image_unavailable",
                f"the VM image {image.hash[:16]}… cannot be resolved"
                f"{f' at {image.url}' if image.url else ' in the Golem image registry'}: {type(exc).__name__}",
            ) from exc

    # --- execution -----------------------------------------------------------------------------------
    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        started = time.perf_counter()
        if request.region != self.region:
            raise PermanentExecutorError(
                "region_mismatch",
                f"this executor serves {self.region}; refusing a request for {request.region}",
            )
        image = self.images.get(request.model)
        if image is None:
            known = ", ".join(sorted(self.images)) or "none"
            raise PermanentExecutorError(
                "model_not_available",
                f"model {request.model!r} has no Golem VM image (GOLEM_IMAGES); known: {known}",
            )
        remaining = None if request.deadline is None else request.deadline - time.time()
        if remaining is not None and remaining <= 0:
            raise TransientExecutorError("deadline_exceeded", "the deadline passed before the task started")
        Task = _yapapi().Task
        dispatched = False
        outcome: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(remaining):
                golem = await self._engine()
                payload = await self._payload(image)
                task = Task(data=encode_request(request))
                dispatched = True
                async for done in golem.execute_tasks(
                    self._worker,
                    [task],
                    payload=payload,
                    max_workers=1,
                    timeout=timedelta(seconds=remaining or DEFAULT_TASK_TIMEOUT_S),
                ):
                    outcome = done.result
        except TimeoutError as exc:
            if not dispatched:
                raise TransientExecutorError(
                    "deadline_exceeded", "the deadline passed while the Golem engine was starting"
                ) from exc
            raise TransientExecutorError(
                "golem_no_provider",
                f"no allowlisted provider of {self.region} finished the task before the deadline",
                details={"refused_providers": len(self.strategy.refused)},
            ) from exc
        except ExecutorError:
            raise
        except Exception as exc:
            raise classify_start_error(exc, self.yagna_url, self.platform) from exc
        if outcome is None:
            raise TransientExecutorError(
                "golem_no_provider",
                f"the task ended without a result from an allowlisted provider of {self.region}",
                details={"refused_providers": len(self.strategy.refused)},
            )
        return self._result(outcome, image, started)

    async def _worker(self, ctx: Any, tasks: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """yapapi worker: run the entrypoint once per task and hand the parsed line (or the error) back."""
        async for task in tasks:
            provider = {
                "provider_id": ctx.provider_id,
                "provider_name": ctx.provider_name,
                "agreement_id": agreement_id(ctx),
                "activity_id": ctx.id,
            }
            if not self.strategy.allows(ctx.provider_id, ctx.provider_name):
                # The strategy refuses such offers; this guards against any path around it.
                task.accept_result({"provider": provider, "error": _error_dict(region_violation(provider))})
                continue
            script = ctx.new_script(timeout=timedelta(seconds=DEFAULT_TASK_TIMEOUT_S))
            executed = script.run(self.entrypoint, task.data)
            try:
                yield script
                line = parse_vm_output((await executed).stdout)
            except ExecutorError as exc:
                task.accept_result({"provider": provider, "error": _error_dict(exc)})
                continue
            except Exception as exc:  # a failed command on the provider (yapapi's CommandExecutionError)
                error = TransientExecutorError("golem_task_failed", f"{type(exc).__name__}: {exc}")
                task.accept_result({"provider": provider, "error": _error_dict(error)})
                continue
            task.accept_result({"provider": provider, "line": line})

    def _result(self, outcome: dict[str, Any], image: GolemImage, started: float) -> ExecutionResult:
        provider = outcome["provider"]
        error = outcome.get("error") or (outcome.get("line") or {}).get("error")
        if error:
            kind = TransientExecutorError if error.get("transient") else PermanentExecutorError
            raise kind(str(error["code"]), str(error["message"]), details={"provider": provider})
        line = outcome["line"]
        timings = {
            f"vm_{k}" if k == "total" else k: float(v) for k, v in dict(line.get("timings", {})).items()
        }
        timings["total"] = time.perf_counter() - started
        return ExecutionResult(
            text=str(line["text"]),
            tokens_in=int(line["tokens_in"]),
            tokens_out=int(line["tokens_out"]),
            timings=timings,
            model_digest=str(line["model_digest"]),
            backend=self.name,
            backend_version=f"{line.get('backend', '?')} {line.get('backend_version', '?')}",
            provider_id=f"golem:{provider['provider_id']}",
            served_region=self.region,
            provider_info={
                **provider,
                "image_hash": image.hash,
                "image_url": image.url,
                "subnet": self.subnet,
                "payment_platform": self.platform,
                "requestor": self._identity,
                "yapapi_version": _yapapi_version(),
                "vm": line.get("vm", {}),
            },
        )

    async def status(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "backend": self.name,
            "region": self.region,
            "yagna_url": self.yagna_url,
            "allowed_providers": list(self.allowed_providers),
            "images": {model: image.hash for model, image in self.images.items()},
            "payment_platform": self.platform,
            "engine_started": self._golem is not None,
        }
        try:
            checked = await self.connect()
        except ExecutorError as exc:
            return {**facts, "ready": False, "reachable": False, "error": exc.code, "detail": exc.message}
        return {
            **facts,
            "ready": self.platform in checked["platforms"],
            "reachable": True,
            **checked,
            "payment_account": self.platform in checked["platforms"],
            "yapapi_version": _yapapi_version(),
        }

    async def aclose(self) -> None:
        golem, self._golem = self._golem, None
        if golem is not None:
            await golem.stop()


def _yapapi() -> Any:
    try:
        import yapapi
    except ImportError as exc:
        raise PermanentExecutorError(
            "golem_not_installed", "yapapi is not installed: pip install 'beacon[golem]'"
        ) from exc
    return yapapi


def agreement_id(ctx: Any) -> str | None:
    """The agreement behind a yapapi WorkContext (yapapi exposes it on events, and on the context privately)."""
    agreement = getattr(ctx, "_agreement", None)
    return getattr(agreement, "id", None)


def region_violation(provider: dict[str, Any]) -> PermanentExecutorError:
    return PermanentExecutorError(
        "golem_region_violation",
        f"the task reached provider {provider['provider_id']} ({provider['provider_name']}), "
        "which is not allowlisted for this region; its output was discarded",
    )


def _error_dict(exc: ExecutorError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "transient": exc.transient}


def _yapapi_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("yapapi")
    except Exception:
        return None


def classify_start_error(exc: BaseException, yagna_url: str, platform: str) -> ExecutorError:
    """Map what yapapi raises while starting or running to a classified executor error."""
    status = getattr(exc, "status", None)
    text = f"{type(exc).__name__}: {exc}"
    module = type(exc).__module__
    if isinstance(status, int) and (module.startswith("ya_payment") or "allocation" in text.lower()):
        if status == 401:
            return PermanentExecutorError("golem_appkey_invalid", f"yagna rejects the app key: {text}")
        if status >= 500:
            return TransientExecutorError(
                "golem_payment_unavailable", f"yagna could not allocate the {platform} budget: {_body(exc)}"
            )
        return PermanentExecutorError("golem_payment_failed", f"yagna refused the allocation: {_body(exc)}")
    if isinstance(status, int) and status == 401:
        return PermanentExecutorError("golem_appkey_invalid", f"yagna rejects the app key: {text}")
    if type(exc).__name__ == "NoPaymentAccountError":
        return PermanentExecutorError("golem_payment_account_missing", text)
    # Without gftp on PATH, yapapi's storage provider talks to a shell that already exited: it fails with a
    # JSONDecodeError (empty reply) or a reset/broken pipe, depending on who is faster.
    pipe_failure = json.JSONDecodeError | ConnectionResetError | BrokenPipeError | FileNotFoundError
    gftp_missing = shutil.which("gftp") is None and isinstance(exc, pipe_failure)
    if gftp_missing or "gftp" in text.lower():
        return PermanentExecutorError(
            "golem_gftp_missing", f"yapapi needs the `gftp` binary from the yagna release on PATH: {text}"
        )
    if isinstance(exc, OSError) or type(exc).__name__.startswith("ClientConnector"):
        return TransientExecutorError(
            "golem_yagna_unreachable", f"yagna is not reachable at {yagna_url}: {text}"
        )
    return TransientExecutorError("golem_error", text)


def _body(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            return body[:300]
        if isinstance(parsed, dict):
            return str(
                parsed.get("internalError") or parsed.get("detail") or parsed.get("message") or parsed
            )[:300]
    return str(exc)[:300]
