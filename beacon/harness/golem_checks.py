"""The Day-1 plan's Golem items as checks against a real Golem network (the local devnet by default).

A notebook does::

    golem = GolemChecks.open(results, regions=regions)       # starts a devnet, or records "not exercised"
    golem.daemons_running()        # T-60 "Yagna daemon running on target regions"
    golem.offers_per_region()      # T-60 "Confirm provider node status": an offer from each region's provider
    golem.funds()                  # "1000 tGLM funded", the requestor's balance before
    golem.run_regions(models)      # one execution per region through the real Golem executor
    golem.settlement()             # T+60 invoices SETTLED, "Track GLM token balance" before/after
    golem.close()

Every check reads the real component: yagna's REST APIs (the requestor's market, payment and identity),
the chain's token balances, and the Golem executor's results with their negotiation timelines. When the
devnet cannot start here (no anvil, no yagna), every check is recorded as not exercised with the reason.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import tempfile
import time
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx

from beacon.executors.base import DecodingOptions, ExecutionRequest, ExecutionResult, ExecutorError
from beacon.harness.results import PhaseResults

T = TypeVar("T")

CHECKS = {
    "golem_daemons_running": "Yagna daemon running on target regions (requestor and each region's provider)",
    "golem_provider_offers": "Confirm provider node status: each region's provider offers on the market",
    "golem_funds": "1000 tGLM funded on the requestor's payment account",
    "golem_agreements": "Monitor provider agreements: each region's execution signed an agreement with its provider",
    "golem_job_reaches_provider": "Validate job reaches provider and execution starts, in every region",
    "golem_invoices_settled": "Every invoice of the run is SETTLED (T+60)",
    "golem_glm_balance": "Track GLM token balance: the requestor paid exactly what was settled",
}
OFFER_WAIT_S = 20.0
SETTLE_WAIT_S = 60.0
REGION_PROPERTY = "beacon.region"


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end from synchronous code, also inside a notebook's running event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class GolemChecks:
    results: PhaseResults
    regions: list[str]
    devnet: Any = None
    """A :class:`beacon.golem.devnet.Devnet`, or None when it could not start (every check not exercised)."""
    reason: str | None = None
    owned: bool = False
    balances_before: dict[str, Decimal] = field(default_factory=dict)
    agreements: dict[str, str] = field(default_factory=dict)
    """Agreement id → region, of every execution this run made."""

    # --- set-up ------------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, results: PhaseResults, *, regions: Sequence[str], directory: str | None = None
    ) -> GolemChecks:
        """Use the devnet recorded in ``directory`` (or ``$GOLEM_DEVNET_DIR``), else start a fresh one there."""
        from beacon.golem import devnet as dn

        checks = cls(results, [r.upper() for r in regions])
        where = directory or os.environ.get("GOLEM_DEVNET_DIR")
        started = time.monotonic()
        try:
            if where and (Path(where) / dn.STATE_FILE).exists() and dn.Devnet.load(where).pids:
                checks.devnet = dn.Devnet.load(where)  # running (or partly: daemons_running judges)
            else:
                target = where or tempfile.mkdtemp(prefix="beacon-golem-devnet-")
                checks.devnet = dn.up(target, regions=checks.regions)
                checks.owned = True
        except (dn.DevnetError, OSError) as exc:
            checks.reason = f"the Golem devnet could not start here: {exc}"
            for check_id, title in CHECKS.items():
                results.skip(check_id, checks.reason, title=title)
            return checks
        missing = [r for r in checks.regions if r not in checks.devnet.providers]
        if missing:
            checks.reason = f"the devnet has no provider for {missing}"
        results.measure("golem_devnet_start_s", time.monotonic() - started, unit="s", owned=checks.owned)
        results.table(
            "golem_devnet",
            [
                {"node": n.name, "role": n.role, "region": n.region, "node_id": n.node_id, "api": n.api_url}
                for n in checks.devnet.nodes
            ],
        )
        return checks

    @property
    def ready(self) -> bool:
        return self.devnet is not None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.devnet.requestor.app_key}"}

    def _requestor(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.devnet.requestor.api_url, headers=self._headers(), timeout=10.0, trust_env=False
        )

    # --- T-60 --------------------------------------------------------------------------------------------
    def daemons_running(self) -> bool:
        check_id = "golem_daemons_running"
        if not self.ready:
            return False
        rows = []
        for node in self.devnet.nodes:
            identity, error = None, None
            try:
                # a provider's API lives inside the devnet's namespace: its process and its node id answer
                if node.role == "requestor":
                    with self._requestor() as http:
                        identity = str(http.get("/me").json().get("identity", "")).lower()
                else:
                    identity = node.node_id if self.devnet.alive().get(node.name) else None
            except (httpx.HTTPError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            rows.append(
                {
                    "node": node.name,
                    "region": node.region,
                    "pid_alive": bool(self.devnet.alive().get(node.name)),
                    "identity": identity,
                    "error": error,
                }
            )
        self.results.table("golem_daemons", rows)
        wanted = {"requestor", *(f"provider-{r.lower()}" for r in self.regions)}
        good = {row["node"] for row in rows if row["pid_alive"] and row["identity"]}
        return self.results.check(
            check_id,
            title=CHECKS[check_id],
            expected=sorted(wanted),
            actual=sorted(good & wanted),
            evidence=rows,
        )

    def offers_per_region(self, wait_s: float = OFFER_WAIT_S) -> bool:
        """Subscribe a demand on the requestor's market and collect offers until every region has one."""
        check_id = "golem_provider_offers"
        if not self.ready:
            return False
        expected = {r: self.devnet.providers[r].node_id for r in self.regions if r in self.devnet.providers}
        seen: dict[str, dict[str, Any]] = {}
        started = time.monotonic()
        demand = {
            "properties": {
                "golem.srv.comp.expiration": int((time.time() + 300) * 1000),
                "golem.node.debug.subnet": "public",
            },
            "constraints": "(&(golem.runtime.name=vm)(golem.com.payment.platform.erc20-hoodi-tglm.address=*))",
        }
        with self._requestor() as http:
            subscription = str(http.post("/market-api/v1/demands", json=demand).json())
            try:
                while time.monotonic() - started < wait_s and set(seen) < set(self.regions):
                    reply = http.get(
                        f"/market-api/v1/demands/{subscription}/events",
                        params={"timeout": 2, "maxEvents": 50},
                        timeout=5.0,
                    )
                    for event in reply.json() or []:
                        proposal = event.get("proposal") or {}
                        props = proposal.get("properties") or {}
                        region = str(props.get(REGION_PROPERTY, "")).upper()
                        if region and region not in seen:
                            seen[region] = {
                                "region": region,
                                "provider_id": str(proposal.get("issuerId", "")).lower(),
                                "provider_name": props.get("golem.node.id.name"),
                                "price_coeffs": props.get("golem.com.pricing.model.linear.coeffs"),
                                "usage_vector": props.get("golem.com.usage.vector"),
                                "first_seen_s": round(time.monotonic() - started, 2),
                            }
            finally:
                http.delete(f"/market-api/v1/demands/{subscription}")
        self.results.table("golem_offers", list(seen.values()))
        actual = {r: seen[r]["provider_id"] for r in self.regions if r in seen}
        return self.results.check(
            check_id,
            title=CHECKS[check_id],
            expected={r: expected.get(r, "a provider of this region") for r in self.regions},
            actual=actual,
            passed=bool(self.regions)
            and all(r in expected and actual.get(r) == expected[r] for r in self.regions),
            detail=None
            if len(seen) >= len(self.regions)
            else f"no offer within {wait_s:.0f} s for {sorted(set(self.regions) - set(seen))}",
        )

    def funds(self, expected_glm: Decimal = Decimal(1000)) -> bool:
        check_id = "golem_funds"
        if not self.ready:
            return False
        from beacon.golem.devnet import glm_balance

        with self._requestor() as http:
            accounts = http.get("/payment-api/v1/requestorAccounts").json()
        platforms = sorted(str(a.get("platform")) for a in accounts if isinstance(a, dict))
        addresses = {self.devnet.requestor.node_id, *(n.node_id for n in self.devnet.providers.values())}
        self.balances_before = {address: glm_balance(self.devnet, address) for address in addresses}
        requestor = self.balances_before[self.devnet.requestor.node_id]
        self.results.measure("golem_requestor_glm_before", float(requestor), unit="tGLM")
        return self.results.check(
            check_id,
            title=CHECKS[check_id],
            expected={"balance_tglm": str(expected_glm), "account": "erc20-hoodi-tglm"},
            actual={"balance_tglm": str(requestor.normalize()), "accounts": platforms},
            passed=requestor == expected_glm and "erc20-hoodi-tglm" in platforms,
        )

    # --- the multi-region run ------------------------------------------------------------------------------
    def executor(self, region: str, *, timeout_budget_glm: float = 1.0, models: Iterable[str] = ()) -> Any:
        from beacon.executors.golem import GolemExecutor

        return GolemExecutor(
            region=region,
            allowed_providers=self.devnet.region_providers().get(region, []) or ["0x" + "0" * 40],
            images=self.devnet.images(models),
            yagna_url=self.devnet.requestor.api_url,
            app_key=self.devnet.requestor.app_key,
            payment_network="hoodi",
            budget_glm=timeout_budget_glm,
        )

    def run_regions(
        self,
        models: Sequence[str],
        *,
        prompt: str = "What is the capital of France? Answer in one word.",
        max_tokens: int = 16,
        deadline_s: float = 90.0,
    ) -> dict[str, ExecutionResult | ExecutorError]:
        """One execution per region and model through the Golem executor, all regions at once."""
        if not self.ready:
            return {}
        os.environ["PATH"] = f"{self.devnet.gftp_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        outcomes = run_sync(self._run_all(list(models), prompt, max_tokens, deadline_s))
        rows, timeline = [], []
        for key, outcome in outcomes.items():
            region, model = key.split("/", 1)
            info = (
                outcome.provider_info
                if isinstance(outcome, ExecutionResult)
                else dict(outcome.details.get("provider_info") or {})
            )
            if info.get("agreement_id"):
                self.agreements[str(info["agreement_id"])] = region
            rows.append(
                {
                    "region": region,
                    "model": model,
                    "status": "completed" if isinstance(outcome, ExecutionResult) else "failed",
                    "error": None
                    if isinstance(outcome, ExecutionResult)
                    else f"{outcome.code}: {outcome.message}",
                    "provider_id": info.get("provider_id"),
                    "provider_name": info.get("provider_name"),
                    "agreement_id": info.get("agreement_id"),
                    "activity_id": info.get("activity_id"),
                    "offer_region": info.get("offer_region"),
                    "price_coeffs": (info.get("price") or {}).get("coeffs"),
                    "invoice_id": (info.get("invoice") or {}).get("invoice_id"),
                    "invoice_amount": (info.get("invoice") or {}).get("amount"),
                    "invoice_status": (info.get("invoice") or {}).get("status"),
                    "latency_s": outcome.timings.get("total")
                    if isinstance(outcome, ExecutionResult)
                    else None,
                }
            )
            for event in info.get("negotiation") or []:
                timeline.append({"region": region, "model": model, **event})
        self.results.table("golem_executions", rows)
        self.results.table("golem_negotiation", timeline)
        self._check_agreements(rows, timeline)
        self._check_reached(rows, timeline)
        return outcomes

    async def _run_all(
        self, models: list[str], prompt: str, max_tokens: int, deadline_s: float
    ) -> dict[str, ExecutionResult | ExecutorError]:
        executors = {region: self.executor(region, models=models) for region in self.regions}

        async def one(region: str, model: str) -> ExecutionResult | ExecutorError:
            request = ExecutionRequest(
                prompt=prompt,
                system_prompt="You are a helpful assistant.",
                model=model,
                region=region,
                options=DecodingOptions(temperature=0.0, seed=42, max_tokens=max_tokens),
                deadline=time.time() + deadline_s,
            )
            try:
                result: ExecutionResult = await executors[region].execute(request)
            except ExecutorError as exc:
                return exc
            return result

        keys = [(region, model) for region in self.regions for model in models]
        try:
            outcomes = await asyncio.gather(*(one(r, m) for r, m in keys))
        finally:
            await asyncio.gather(*(e.aclose() for e in executors.values()), return_exceptions=True)
        return {f"{r}/{m}": outcome for (r, m), outcome in zip(keys, outcomes, strict=True)}

    def _check_agreements(self, rows: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> bool:
        check_id = "golem_agreements"
        expected = {r: self.devnet.providers[r].node_id for r in self.regions if r in self.devnet.providers}
        confirmed = {
            (e["region"], e.get("agreement_id")) for e in timeline if e.get("event") == "AgreementConfirmed"
        }
        actual = {
            row["region"]: row["provider_id"]
            for row in rows
            if row["agreement_id"] and (row["region"], row["agreement_id"]) in confirmed
        }
        return self.results.check(
            check_id,
            title=CHECKS[check_id],
            expected=expected,
            actual=actual,
            passed=bool(rows) and all(r in expected and actual.get(r) == expected[r] for r in self.regions),
            evidence=[{k: row[k] for k in ("region", "agreement_id", "provider_id")} for row in rows],
        )

    def _check_reached(self, rows: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> bool:
        check_id = "golem_job_reaches_provider"
        started = {e["region"] for e in timeline if e.get("event") == "ActivityCreated"}
        executed = {e["region"] for e in timeline if e.get("event") == "CommandExecuted" and e.get("success")}
        completed = {row["region"] for row in rows if row["status"] == "completed"}
        actual = {
            r: {"activity": r in started, "command_ran": r in executed, "completed": r in completed}
            for r in self.regions
        }
        return self.results.check(
            check_id,
            title=CHECKS[check_id],
            expected={r: {"activity": True, "command_ran": True, "completed": True} for r in self.regions},
            actual=actual,
        )

    # --- T+60 --------------------------------------------------------------------------------------------
    def settlement(self, wait_s: float = SETTLE_WAIT_S) -> bool:
        """Wait for every invoice of the run's agreements to be SETTLED, then compare token balances."""
        if not self.ready:
            return False
        from beacon.golem.devnet import glm_balance

        started = time.monotonic()
        invoices: dict[str, dict[str, Any]] = {}
        with self._requestor() as http:
            while True:
                listing = http.get("/payment-api/v1/invoices").json()
                invoices = {
                    str(i["agreementId"]): i for i in listing if str(i.get("agreementId")) in self.agreements
                }
                done = len(invoices) == len(self.agreements) and all(
                    i.get("status") == "SETTLED" for i in invoices.values()
                )
                if done or time.monotonic() - started > wait_s:
                    break
                time.sleep(1.0)
        elapsed = time.monotonic() - started
        self.results.measure("golem_settlement_wait_s", elapsed, unit="s")
        rows = [
            {
                "agreement_id": agreement,
                "region": region,
                "invoice_id": (invoices.get(agreement) or {}).get("invoiceId"),
                "amount": (invoices.get(agreement) or {}).get("amount"),
                "status": (invoices.get(agreement) or {}).get("status", "NO INVOICE"),
            }
            for agreement, region in self.agreements.items()
        ]
        self.results.table("golem_invoices", rows)
        settled_ok = self.results.check(
            "golem_invoices_settled",
            title=CHECKS["golem_invoices_settled"],
            expected={row["agreement_id"]: "SETTLED" for row in rows},
            actual={row["agreement_id"]: row["status"] for row in rows},
            passed=bool(rows) and all(row["status"] == "SETTLED" for row in rows),
            detail=None if rows else "the run made no agreement, so no invoice could be settled",
        )
        paid = sum((Decimal(str(row["amount"])) for row in rows if row["status"] == "SETTLED"), Decimal(0))
        after = {address: glm_balance(self.devnet, address) for address in self.balances_before}
        requestor = self.devnet.requestor.node_id
        spent = self.balances_before.get(requestor, Decimal(0)) - after.get(requestor, Decimal(0))
        received = sum((after[a] - self.balances_before[a] for a in after if a != requestor), Decimal(0))
        self.results.table(
            "golem_glm_balance",
            [
                {
                    "address": a,
                    "before": str(self.balances_before[a]),
                    "after": str(after[a]),
                    "role": "requestor" if a == requestor else "provider",
                }
                for a in after
            ],
        )
        self.results.measure("golem_requestor_glm_after", float(after.get(requestor, 0)), unit="tGLM")
        balance_ok = self.results.check(
            "golem_glm_balance",
            title=CHECKS["golem_glm_balance"],
            expected={"spent": str(paid), "received_by_providers": str(paid)},
            actual={"spent": str(spent), "received_by_providers": str(received)},
            passed=paid > 0 and spent == paid and received == paid,
        )
        return settled_ok and balance_ok

    def close(self) -> None:
        if self.owned and self.devnet is not None:
            from beacon.golem.devnet import down

            down(self.devnet.dir)
