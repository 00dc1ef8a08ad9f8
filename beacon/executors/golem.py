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
``golem_command_refused``              permanent  the provider refused to run a JobSpec's command
=====================================  =========  ==================================================

Every result and every error after dispatch carries the evidence of what happened on the market, for the
receipt (``provider_info``, or ``details["provider_info"]`` of the error): the provider id and name, the
agreement and activity ids, the offer's region and price, the negotiation timeline of the yapapi job
(proposals, agreements, activity, commands, invoice, each with seconds since the job started) and, for a
result, the provider's invoice once yapapi accepted it (waited for up to ``INVOICE_WAIT_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

from beacon.executors.base import (
    ExecutionRequest,
    ExecutionResult,
    ExecutorConfigError,
    ExecutorError,
    PermanentExecutorError,
    TransientExecutorError,
    admit_request,
)
from beacon.executors.golem_vm import encode_request

if TYPE_CHECKING:
    from beacon.config import Settings
    from beacon.executors.golem_strategy import RegionAllowlistStrategy

log = logging.getLogger("beacon.executors.golem")

MAINNETS = frozenset({"mainnet", "polygon"})
DEFAULT_TASK_TIMEOUT_S = 15 * 60.0
INVOICE_WAIT_S = 20.0
"""How long a finished execution waits for its provider's invoice to be accepted (bounded by the deadline)."""
REGION_PROPERTY = "beacon.region"
MAX_TIMELINES = 64
TIMELINE_EVENTS = frozenset(
    {
        "JobStarted",
        "SubscriptionCreated",
        "ProposalReceived",
        "ProposalRejected",
        "ProposalResponded",
        "ProposalConfirmed",
        "ProposalFailed",
        "NoProposalsConfirmed",
        "AgreementCreated",
        "AgreementConfirmed",
        "AgreementRejected",
        "AgreementTerminated",
        "ActivityCreated",
        "ActivityCreateFailed",
        "TaskStarted",
        "ScriptSent",
        "CommandExecuted",
        "TaskAccepted",
        "TaskRejected",
        "WorkerFinished",
        "InvoiceReceived",
        "InvoiceAccepted",
        "PaymentFailed",
        "JobFinished",
    }
)


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
        self._timelines: dict[str, list[dict[str, Any]]] = {}
        """yapapi job id → its market/activity/payment events (the last MAX_TIMELINES jobs)."""
        self._invoices: dict[str, dict[str, Any]] = {}
        self._invoice_events: dict[str, asyncio.Event] = {}

    @classmethod
    def from_settings(cls, settings: Settings, region: str) -> GolemExecutor:
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

        golem = factory(
            budget=self.budget_glm,
            strategy=self.strategy,
            subnet_tag=self.subnet,
            payment_driver=self.payment_driver,
            payment_network=self.payment_network,
            api_config=ApiConfig(app_key=self.app_key or "", api_url=self.yagna_url),
        )
        golem.add_event_consumer(self._on_event)
        return golem

    # --- evidence from yapapi's events ---------------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        """Keep each job's timeline and every invoice (yapapi's own event timestamps are not per event)."""
        kind = type(event).__name__
        at = time.time()
        job = getattr(event, "job", None)
        job_id = getattr(job, "id", None)
        agreement = getattr(event, "agreement", None)
        agreement_id = getattr(agreement, "id", None)
        if kind in ("InvoiceReceived", "InvoiceAccepted", "PaymentFailed") and agreement_id:
            invoice = getattr(event, "invoice", None)
            record = self._invoices.setdefault(agreement_id, {})
            if invoice is not None:
                record.update(
                    invoice_id=getattr(invoice, "invoice_id", None) or getattr(invoice, "id", None),
                    amount=str(getattr(invoice, "amount", "")),
                    platform=getattr(invoice, "payment_platform", None),
                )
            status = {"InvoiceReceived": "RECEIVED", "InvoiceAccepted": "ACCEPTED"}.get(
                kind, "PAYMENT_FAILED"
            )
            record["status"] = status
            record[f"{status.lower()}_at"] = at
            if kind != "InvoiceReceived":
                self._invoice_events.setdefault(agreement_id, asyncio.Event()).set()
        if job_id is None or kind not in TIMELINE_EVENTS:
            return
        timeline = self._timelines.setdefault(job_id, [])
        if len(self._timelines) > MAX_TIMELINES:
            self._timelines.pop(next(iter(self._timelines)))
        entry: dict[str, Any] = {"t": at, "event": kind}
        proposal = getattr(event, "proposal", None)
        if proposal is not None:
            entry["provider_id"] = getattr(proposal, "issuer", None)
            entry["provider_name"] = (getattr(proposal, "props", None) or {}).get("golem.node.id.name")
        if agreement_id:
            entry["agreement_id"] = agreement_id
        for name in ("reason", "message"):
            value = getattr(event, name, None)
            if value:
                entry[name] = str(value)[:300]
        if kind == "CommandExecuted":
            entry["success"] = bool(getattr(event, "success", False))
        timeline.append(entry)

    def timeline(self, job_id: str) -> list[dict[str, Any]]:
        """The events of yapapi job ``job_id``, with ``t`` in seconds since the job started."""
        events = self._timelines.pop(job_id, [])
        start = events[0]["t"] if events else 0.0
        return [{**e, "t": round(e["t"] - start, 3)} for e in events]

    async def _invoice(self, agreement: str | None, remaining: float | None) -> dict[str, Any] | None:
        if not agreement:
            return None
        waiter = self._invoice_events.setdefault(agreement, asyncio.Event())
        wait = INVOICE_WAIT_S if remaining is None else max(0.0, min(INVOICE_WAIT_S, remaining))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), wait)
        self._invoice_events.pop(agreement, None)
        return self._invoices.pop(agreement, None) or {"status": "NOT_RECEIVED", "waited_s": round(wait, 1)}

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
    def _image(self, model: str) -> GolemImage:
        image = self.images.get(model)
        if image is None:
            known = ", ".join(sorted(self.images)) or "none"
            raise PermanentExecutorError(
                "model_not_available",
                f"model {model!r} has no Golem VM image (GOLEM_IMAGES); known: {known}",
            )
        return image

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        started = time.perf_counter()
        image, remaining = admit_request(request, self.region, self._image, before="task")
        Task = _yapapi().Task
        dispatched = False
        outcome: dict[str, Any] | None = None
        job_id = f"{request.execution_id or 'execution'}-{uuid.uuid4().hex[:8]}"
        try:
            async with asyncio.timeout(remaining):
                golem = await self._engine()
                payload = await self._payload(image)
                argv = request.command or (self.entrypoint, encode_request(request))
                task = Task(data=tuple(argv))
                dispatched = True
                async for done in golem.execute_tasks(
                    self._worker,
                    [task],
                    payload=payload,
                    max_workers=1,
                    timeout=timedelta(seconds=remaining or DEFAULT_TASK_TIMEOUT_S),
                    job_id=job_id,
                ):
                    outcome = done.result
        except TimeoutError as exc:
            if not dispatched:
                raise TransientExecutorError(
                    "deadline_exceeded", "the deadline passed while the Golem engine was starting"
                ) from exc
            evidence = self._evidence(job_id, outcome)
            agreed = [e for e in evidence["negotiation"] if e["event"] == "AgreementConfirmed"]
            reason = (
                f"the allowlisted provider of {self.region} did not finish the task before the deadline"
                if agreed
                else f"no allowlisted provider of {self.region} made an agreement before the deadline "
                f"({len(self.strategy.refused)} other provider(s) refused by the region's allowlist)"
            )
            raise TransientExecutorError(
                "golem_no_provider",
                reason,
                details={"refused_providers": sorted(self.strategy.refused), "provider_info": evidence},
            ) from exc
        except ExecutorError:
            raise
        except Exception as exc:
            raise classify_start_error(exc, self.yagna_url, self.platform) from exc
        if outcome is None:
            raise TransientExecutorError(
                "golem_no_provider",
                f"the task ended without a result from an allowlisted provider of {self.region}",
                details={
                    "refused_providers": sorted(self.strategy.refused),
                    "provider_info": self._evidence(job_id, None),
                },
            )
        left = None if request.deadline is None else request.deadline - time.time()
        invoice = None
        if not (outcome.get("error") or (outcome.get("line") or {}).get("error")):
            invoice = await self._invoice(outcome["provider"].get("agreement_id"), left)
        evidence = self._evidence(job_id, outcome)  # after the invoice: its events end the timeline
        if invoice is not None:
            evidence["invoice"] = invoice
        return self._result(outcome, image, started, evidence)

    def _evidence(self, job_id: str, outcome: dict[str, Any] | None) -> dict[str, Any]:
        """What the receipt records of the market: provider, agreement, activity, offer, negotiation."""
        facts: dict[str, Any] = dict((outcome or {}).get("provider") or {})
        facts["job_id"] = job_id
        facts["negotiation"] = self.timeline(job_id)
        return facts

    async def _worker(self, ctx: Any, tasks: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """yapapi worker: run the entrypoint once per task and hand the parsed line (or the error) back."""
        async for task in tasks:
            provider = {
                "provider_id": ctx.provider_id,
                "provider_name": ctx.provider_name,
                "agreement_id": agreement_id(ctx),
                "activity_id": ctx.id,
                **offer_facts(ctx),
            }
            if not self.strategy.allows(ctx.provider_id, ctx.provider_name):
                # The strategy refuses such offers; this guards against any path around it.
                task.accept_result({"provider": provider, "error": _error_dict(region_violation(provider))})
                continue
            script = ctx.new_script(timeout=timedelta(seconds=DEFAULT_TASK_TIMEOUT_S))
            argv = tuple(task.data)
            executed = script.run(*argv)
            try:
                yield script
                stdout = (await executed).stdout
                line = parse_vm_output(stdout) if argv[0] == self.entrypoint else command_line(stdout)
            except ExecutorError as exc:
                task.accept_result({"provider": provider, "error": _error_dict(exc)})
                continue
            except Exception as exc:  # a failed command on the provider (yapapi's CommandExecutionError)
                task.accept_result({"provider": provider, "error": _error_dict(task_failure(exc, argv[0]))})
                continue
            task.accept_result({"provider": provider, "line": line})

    def _result(
        self, outcome: dict[str, Any], image: GolemImage, started: float, evidence: dict[str, Any]
    ) -> ExecutionResult:
        provider = outcome["provider"]
        error = outcome.get("error") or (outcome.get("line") or {}).get("error")
        if error:
            kind = TransientExecutorError if error.get("transient") else PermanentExecutorError
            raise kind(
                str(error["code"]),
                str(error["message"]),
                details={"provider": provider, "provider_info": {**evidence, "image_hash": image.hash}},
            )
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
            model_digest=str(line["model_digest"]) or image.hash,
            backend=self.name,
            backend_version=f"{line.get('backend', '?')} {line.get('backend_version', '?')}",
            provider_id=f"golem:{provider['provider_id']}",
            served_region=self.region,
            provider_info={
                **evidence,
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


def command_line(stdout: str | None) -> dict[str, Any]:
    """The result of a JobSpec's own command: its stdout, no tokens (it made no model call of ours)."""
    return {"text": stdout or "", "tokens_in": 0, "tokens_out": 0, "model_digest": "", "backend": "command"}


def task_failure(exc: BaseException, entry_point: str) -> ExecutorError:
    """A failed command on the provider; a provider that will not run a JobSpec's command is permanent."""
    text = f"{type(exc).__name__}: {exc}"
    if "refused" in text and "isolation" in text:
        return PermanentExecutorError(
            "golem_command_refused",
            f"the provider refused to run {entry_point!r} (it cannot isolate a container): {text[:400]}",
        )
    return TransientExecutorError("golem_task_failed", text[:2000])


def offer_facts(ctx: Any) -> dict[str, Any]:
    """The agreed offer's region and price (linear pricing coefficients over the usage vector)."""
    try:
        props = dict(ctx._agreement_details.provider_view.properties)
    except Exception:  # a context without agreement details (never on yagna) records none
        return {}
    return {
        "offer_region": props.get(REGION_PROPERTY),
        "price": {
            "model": props.get("golem.com.pricing.model"),
            "coeffs": props.get("golem.com.pricing.model.linear.coeffs"),
            "usage_vector": props.get("golem.com.usage.vector"),
        },
    }


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
