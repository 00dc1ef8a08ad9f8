"""The devnet's provider agent and exe-unit: stand-ins for ``ya-provider``, ``exe-unit`` and the VM runtime.

No registry ships those (docs/decisions/1101-golem-devnet-standins.md). One process per provider node:

* **agent**, over the provider yagna's REST API: subscribes an offer (payment platform, linear ``payu``
  pricing, usage vector, ``golem.inf.*``, ``golem.runtime.name = vm``, the node name and the region's
  ``beacon.region``), answers each requestor proposal with a counter-proposal, approves agreements, follows
  activity events, and after an activity is destroyed issues and sends its one invoice;
* **exe-unit**, one per activity, over the provider yagna's GSB (:mod:`beacon.golem.sbproto`, payloads in
  flexbuffers as ya-service-bus encodes them): serves ``/public/exeunit/<activity id>`` (``Exec``,
  ``GetExecBatchResults``), reports state and usage to ``/local/activity``. ``deploy``/``start`` move the
  state on; ``run`` of the benchmark entry point (``/beacon/run-benchmark``) runs ``python -m
  beacon.executors.golem_vm`` here. It cannot isolate a container, so it refuses every other command
  (a JobSpec's own command among them) with an error result naming why; it never runs them.

Faults for tests: the file ``<dir>/fault`` holds one of ``refuse`` (reject agreements), ``fail`` (the run
command fails), ``bad-output`` (the run prints no JSON line) or ``vanish`` (the exe-unit drops off the bus
mid-activity and stops reporting, as a provider that disappears).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from flatbuffers import flexbuffers

from beacon.golem import sbproto
from beacon.golem.sbproto import Packet, packet

log = logging.getLogger("beacon.golem.provider")
BENCHMARK_ENTRYPOINT = "/beacon/run-benchmark"
REGION_PROPERTY = "beacon.region"
PLATFORM = "erc20-hoodi-tglm"
USAGE_VECTOR = ["golem.usage.duration_sec", "golem.usage.cpu_sec"]
FAULTS = ("refuse", "fail", "bad-output", "vanish")
RUN_TIMEOUT_S = 300.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


_BACKGROUND: set[asyncio.Task[Any]] = set()


def spawn(coro: Any) -> asyncio.Task[Any]:
    """A background task kept referenced until it ends."""
    task = asyncio.create_task(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task


def flex_dumps(value: Any) -> bytes:
    return bytes(flexbuffers.Dumps(value))


def flex_loads(data: bytes) -> Any:
    return flexbuffers.Loads(bytearray(data))


# --- GSB client ------------------------------------------------------------------------------------------
class BusClient:
    """One connection to a yagna's GSB: register addresses, answer calls, make calls."""

    def __init__(self, url: str, name: str, caller: str) -> None:
        self.url = url
        self.name = name
        self.caller = caller
        self.handlers: dict[str, Any] = {}
        self._replies: dict[str, asyncio.Future[Packet]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting: asyncio.Queue[Packet] = asyncio.Queue()

    async def connect(self) -> None:
        path = self.url.removeprefix("unix:")
        self._reader, self._writer = await asyncio.open_unix_connection(path)
        self._send(packet("hello", name=self.name, version="0.1", instance_id=uuid.uuid4().bytes))
        self._task = asyncio.create_task(self._read())

    def _send(self, message: Packet) -> None:
        assert self._writer is not None
        self._writer.write(sbproto.encode(message))

    async def bind(self, address: str, handler: Any) -> None:
        self.handlers[address] = handler
        self._send(packet("register_request", service_id=address))
        reply = await asyncio.wait_for(self._waiting.get(), 10)
        if reply.kind != "register_reply" or reply["code"] != 0:
            raise RuntimeError(f"cannot register {address}: {reply}")

    async def call(self, address: str, body: Any, wait_s: float = 10.0) -> Any:
        request_id = uuid.uuid4().hex
        future: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        self._send(
            packet(
                "call_request",
                caller=self.caller,
                address=address,
                request_id=request_id,
                data=flex_dumps(body),
            )
        )
        try:
            reply = await asyncio.wait_for(future, wait_s)
        finally:
            self._replies.pop(request_id, None)
        if reply["code"] != sbproto.CALL_OK:
            raise RuntimeError(f"{address}: GSB {reply['code']} {reply['data'][:200]!r}")
        result = flex_loads(reply["data"])
        if isinstance(result, dict) and "Err" in result:
            raise RuntimeError(f"{address}: {result['Err']}")
        return result.get("Ok") if isinstance(result, dict) else result

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                message = await sbproto.read_packet(self._reader)
                if message.kind == "call_request":
                    spawn(self._serve(message))
                elif message.kind == "call_reply":
                    future = self._replies.get(message["request_id"])
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.kind == "ping":
                    self._send(packet("pong"))
                elif message.kind in ("register_reply", "unregister_reply"):
                    self._waiting.put_nowait(message)
        except (asyncio.IncompleteReadError, ConnectionError, sbproto.ProtocolError):
            pass

    async def _serve(self, message: Packet) -> None:
        address = message["address"]
        base, _, method = address.rpartition("/")
        handler = self.handlers.get(base)
        try:
            if handler is None:
                raise LookupError(f"no handler for {address}")
            body = flex_loads(message["data"])
            outcome: Any = {"Ok": await handler(method, body)}
        except ExeUnitError as exc:
            outcome = {"Err": {exc.kind: exc.message}}
        except Exception as exc:
            log.exception("handling %s", address)
            outcome = {"Err": {"Service": f"{type(exc).__name__}: {exc}"}}
        if not message["no_reply"] and self._writer is not None and not self._writer.is_closing():
            self._send(
                packet(
                    "call_reply",
                    request_id=message["request_id"],
                    code=sbproto.CALL_OK,
                    reply_type=sbproto.REPLY_FULL,
                    data=flex_dumps(outcome),
                )
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()


class ExeUnitError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# --- exe-unit ----------------------------------------------------------------------------------------------
@dataclass
class Batch:
    commands: list[dict[str, Any]]
    results: list[dict[str, Any]] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class ExeUnit:
    """The exe-unit of one activity."""

    def __init__(self, agent: Agent, activity_id: str, agreement_id: str, fault: str | None) -> None:
        self.agent = agent
        self.activity_id = activity_id
        self.agreement_id = agreement_id
        self.fault = fault
        self.bus = BusClient(agent.gsb_url, f"beacon-exeunit/{activity_id[:8]}", agent.node_id)
        self.batches: dict[str, Batch] = {}
        self.started = time.monotonic()
        self.cpu_s = 0.0
        self.alive = True
        self.terminated = asyncio.Event()
        self._usage_task: asyncio.Task[None] | None = None

    @property
    def usage(self) -> list[float]:
        return [round(time.monotonic() - self.started, 3), round(self.cpu_s, 3)]

    async def start(self) -> None:
        await self.bus.connect()
        await self.bus.bind(f"/public/exeunit/{self.activity_id}", self.handle)
        await self.set_state("Initialized")
        self._usage_task = asyncio.create_task(self._report_usage())

    async def set_state(self, state: str, reason: str | None = None, error: str | None = None) -> None:
        body: dict[str, Any] = {
            "activityId": self.activity_id,
            "state": {"state": [state, None]},
            "timeout": None,
            "credentials": None,
        }
        if reason:
            body["state"]["reason"] = reason
        if error:
            body["state"]["errorMessage"] = error
        await self.bus.call("/local/activity/SetActivityState", body)
        self.agent.record("activity_state", activity_id=self.activity_id, state=state)

    async def _report_usage(self) -> None:
        while self.alive:
            with contextlib.suppress(Exception):
                await self.bus.call(
                    "/local/activity/SetActivityUsage",
                    {
                        "activityId": self.activity_id,
                        "usage": {"currentUsage": self.usage, "timestamp": int(time.time())},
                        "timeout": None,
                    },
                )
            await asyncio.sleep(1.0)

    async def handle(self, method: str, body: dict[str, Any]) -> Any:
        if method == "Exec":
            batch_id = str(body["batchId"])
            batch = Batch(list(body.get("exeScript") or []))
            self.batches[batch_id] = batch
            spawn(self._run_batch(batch))
            return batch_id
        if method == "GetExecBatchResults":
            found = self.batches.get(str(body["batchId"]))
            if found is None:
                raise ExeUnitError("NotFound", f"batch {body['batchId']} not found")
            batch = found
            wanted = body.get("commandIndex")
            timeout = float(body.get("timeout") or 0.0)

            def ready() -> bool:
                if batch.finished.is_set():
                    return True
                if wanted is not None:
                    return any(r["index"] >= int(wanted) for r in batch.results)
                return bool(batch.results)

            if timeout > 0 and not ready():
                async with batch.changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(batch.changed.wait_for(ready), timeout)
            return list(batch.results)
        if method == "GetRunningCommand":
            return []
        raise ExeUnitError("BadRequest", f"the devnet's exe-unit does not serve {method}")

    async def _run_batch(self, batch: Batch) -> None:
        for index, command in enumerate(batch.commands):
            name, args = next(iter(command.items())) if isinstance(command, dict) and command else ("?", {})
            ok, stdout, stderr, message = await self._command(
                str(name), args if isinstance(args, dict) else {}
            )
            if not self.alive:
                return
            last = index == len(batch.commands) - 1 or not ok
            async with batch.changed:
                batch.results.append(
                    {
                        "index": index,
                        "result": "Ok" if ok else "Error",
                        "stdout": stdout,
                        "stderr": stderr,
                        "message": message,
                        "isBatchFinished": last,
                        "eventDate": now_iso(),
                    }
                )
                if last:
                    batch.finished.set()
                batch.changed.notify_all()
            if not ok:
                return

    async def _command(
        self, name: str, args: dict[str, Any]
    ) -> tuple[bool, str | None, str | None, str | None]:
        self.agent.record("command", activity_id=self.activity_id, command=name)
        if name == "deploy":
            await self.set_state("Deployed")
            return True, None, None, None
        if name == "start":
            await self.set_state("Ready")
            return True, None, None, None
        if name == "terminate":
            await self.set_state("Terminated")
            return True, None, None, None
        if name != "run":
            return False, None, None, f"the devnet's exe-unit does not implement {name!r}"
        entry_point = str(args.get("entryPoint") or args.get("entry_point") or "")
        argv = [str(a) for a in args.get("args") or []]
        if entry_point != BENCHMARK_ENTRYPOINT:
            # A JobSpec's own command, or anything else: this stand-in runs on the provider's host and cannot
            # isolate a container, so it never runs it.
            message = (
                f"refused {entry_point!r}: the devnet's exe-unit stand-in runs no container isolation, so it "
                f"runs only the benchmark entry point {BENCHMARK_ENTRYPOINT}"
            )
            self.agent.record("refused_command", activity_id=self.activity_id, entry_point=entry_point)
            return False, None, message, message
        if self.fault == "vanish":
            log.warning("fault 'vanish': activity %s drops off the bus", self.activity_id)
            self.agent.record("fault", activity_id=self.activity_id, fault="vanish")
            await self.vanish()
            return False, None, None, None
        if self.fault == "fail":
            self.agent.record("fault", activity_id=self.activity_id, fault="fail")
            return False, None, "stand-in fault: the benchmark failed on the provider", "exit code 1"
        if self.fault == "bad-output":
            self.agent.record("fault", activity_id=self.activity_id, fault="bad-output")
            return True, "this is not a result line\n", None, None
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "beacon.executors.golem_vm",
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return False, None, None, f"the benchmark ran past {RUN_TIMEOUT_S:.0f} s"
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_s += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        ok = proc.returncode == 0
        return (
            ok,
            out.decode(errors="replace"),
            err.decode(errors="replace")[-4000:],
            None if ok else f"exit {proc.returncode}",
        )

    async def vanish(self) -> None:
        self.alive = False
        if self._usage_task is not None:
            self._usage_task.cancel()
        await self.bus.close()

    async def stop(self) -> None:
        if self.alive:
            with contextlib.suppress(Exception):
                await self.set_state("Terminated")
        self.alive = False
        if self._usage_task is not None:
            self._usage_task.cancel()
        await self.bus.close()
        self.terminated.set()


# --- agent -------------------------------------------------------------------------------------------------
class Agent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.api_url = args.api_url.rstrip("/")
        self.gsb_url = args.gsb_url
        self.node_id = args.node_id.lower()
        self.region = args.region
        self.name = args.name
        self.dir = Path(args.dir)
        self.prices = (
            Decimal(args.price_per_second),
            Decimal(args.price_per_cpu_second),
            Decimal(args.price_start),
        )
        self.http = httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {args.app_key}"},
            timeout=30.0,
            trust_env=False,
        )
        self.exeunits: dict[str, ExeUnit] = {}
        self.subscription: str | None = None
        self.countered: set[str] = set()
        self._events = open(self.dir / "agent-events.jsonl", "a")  # noqa: SIM115 - open for the agent's life

    def record(self, kind: str, **facts: Any) -> None:
        self._events.write(
            json.dumps({"t": time.time(), "kind": kind, "region": self.region, **facts}) + "\n"
        )
        self._events.flush()

    def fault(self) -> str | None:
        path = self.dir / "fault"
        with contextlib.suppress(OSError):
            value = path.read_text().strip()
            return value if value in FAULTS else None
        return None

    def offer(self) -> dict[str, Any]:
        per_second, per_cpu, start = self.prices
        properties = {
            f"golem.com.payment.platform.{PLATFORM}.address": self.node_id,
            "golem.com.payment.protocol.version": "3",
            "golem.com.pricing.model": "linear",
            "golem.com.pricing.model.linear.coeffs": [float(per_second), float(per_cpu), float(start)],
            "golem.com.scheme": "payu",
            "golem.com.usage.vector": USAGE_VECTOR,
            "golem.inf.cpu.architecture": "x86_64",
            "golem.inf.cpu.cores": 1,
            "golem.inf.cpu.threads": 1,
            "golem.inf.mem.gib": 4.0,
            "golem.inf.storage.gib": 10.0,
            "golem.node.debug.subnet": "public",
            "golem.node.id.name": self.name,
            "golem.runtime.name": "vm",
            "golem.runtime.version": "0.0.0-beacon-standin",
            "golem.runtime.capabilities": ["vpn"],
            REGION_PROPERTY: self.region,
            "beacon.standin": "beacon.golem.provider (no container isolation)",
        }
        return {"properties": properties, "constraints": "(golem.srv.comp.expiration>0)"}

    async def run(self) -> None:
        reply = await self.http.post("/market-api/v1/offers", json=self.offer())
        reply.raise_for_status()
        self.subscription = str(reply.json())
        self.record("offer_subscribed", subscription=self.subscription)
        (self.dir / "agent.ready").write_text(self.subscription)
        log.info("offer %s subscribed for %s (%s)", self.subscription, self.region, self.node_id)
        await asyncio.gather(self._market(), self._activities())

    async def _poll(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """One long poll of a yagna event endpoint; an error waits a second and returns nothing."""
        try:
            reply = await self.http.get(path, params={"timeout": 5, "maxEvents": 20, **params})
            reply.raise_for_status()
            return list(reply.json() or [])
        except httpx.HTTPError as exc:
            log.warning("%s: %s", path, exc)
            await asyncio.sleep(1.0)
            return []

    async def _market(self) -> None:
        while True:
            for event in await self._poll(f"/market-api/v1/offers/{self.subscription}/events", {}):
                spawn(self._market_event(event))

    async def _market_event(self, event: dict[str, Any]) -> None:
        kind = event.get("eventType")
        try:
            if kind == "ProposalEvent":
                proposal = event["proposal"]
                pid = proposal["proposalId"]
                self.record(
                    "proposal",
                    proposal_id=pid,
                    state=proposal.get("state"),
                    requestor=proposal.get("issuerId"),
                )
                if pid in self.countered:
                    return
                self.countered.add(pid)
                reply = await self.http.post(
                    f"/market-api/v1/offers/{self.subscription}/proposals/{pid}", json=self.offer()
                )
                reply.raise_for_status()
                self.record("counter_proposal", proposal_id=pid, counter=reply.json())
            elif kind == "AgreementEvent":
                agreement = event["agreement"]
                aid = agreement["agreementId"]
                if self.fault() == "refuse":
                    self.record("agreement_rejected", agreement_id=aid, reason="fault refuse")
                    await self.http.post(
                        f"/market-api/v1/agreements/{aid}/reject",
                        json={
                            "message": "stand-in fault: this provider refuses",
                            "golem.provider.code": "Refused",
                        },
                    )
                    return
                self.record("agreement_proposed", agreement_id=aid)
                reply = await self.http.post(
                    f"/market-api/v1/agreements/{aid}/approve", params={"timeout": 15}
                )
                self.record("agreement_approved", agreement_id=aid, status=reply.status_code)
            elif kind == "ProposalRejectedEvent":
                self.record(
                    "proposal_rejected", proposal_id=event.get("proposalId"), reason=event.get("reason")
                )
        except (httpx.HTTPError, KeyError) as exc:
            log.warning("market event %s: %s", kind, exc)
            self.record("error", event=kind, error=str(exc))

    async def _activities(self) -> None:
        after = now_iso()
        while True:
            for event in await self._poll("/activity-api/v1/events", {"afterTimestamp": after}):
                after = event.get("eventDate") or after
                event_type = event.get("eventType")
                kind = next(iter(event_type)) if isinstance(event_type, dict) else str(event_type)
                activity_id, agreement_id = event["activityId"], event["agreementId"]
                if kind == "CreateActivity":
                    spawn(self._create(activity_id, agreement_id))
                elif kind == "DestroyActivity":
                    spawn(self._destroy(activity_id, agreement_id))

    async def _create(self, activity_id: str, agreement_id: str) -> None:
        unit = ExeUnit(self, activity_id, agreement_id, self.fault())
        self.exeunits[activity_id] = unit
        self.record("activity_created", activity_id=activity_id, agreement_id=agreement_id, fault=unit.fault)
        try:
            await unit.start()
        except Exception as exc:
            log.exception("exe-unit for %s", activity_id)
            self.record("error", activity_id=activity_id, error=str(exc))

    async def _destroy(self, activity_id: str, agreement_id: str) -> None:
        unit = self.exeunits.pop(activity_id, None)
        vanished = unit is not None and not unit.alive
        if unit is not None:
            await unit.stop()
        self.record("activity_destroyed", activity_id=activity_id, agreement_id=agreement_id)
        if unit is None or vanished:
            return  # a provider that disappeared sends no invoice
        await self._invoice(unit)

    async def _invoice(self, unit: ExeUnit) -> None:
        per_second, per_cpu, start = self.prices
        duration, cpu = unit.usage
        amount = (start + per_second * Decimal(str(duration)) + per_cpu * Decimal(str(cpu))).quantize(
            Decimal("1e-9")
        )
        body = {
            "agreementId": unit.agreement_id,
            "activityIds": [unit.activity_id],
            "amount": str(amount),
            "paymentDueDate": (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        }
        try:
            reply = await self.http.post("/payment-api/v1/invoices", json=body)
            reply.raise_for_status()
            invoice_id = reply.json()["invoiceId"]
            sent = await self.http.post(f"/payment-api/v1/invoices/{invoice_id}/send")
            sent.raise_for_status()
        except (httpx.HTTPError, KeyError) as exc:
            log.warning("invoice for %s: %s", unit.agreement_id, exc)
            self.record("error", agreement_id=unit.agreement_id, error=f"invoice: {exc}")
            return
        self.record("invoice_sent", agreement_id=unit.agreement_id, invoice_id=invoice_id, amount=str(amount))

    async def close(self) -> None:
        for unit in list(self.exeunits.values()):
            await unit.stop()
        if self.subscription:
            with contextlib.suppress(Exception):
                await self.http.delete(f"/market-api/v1/offers/{self.subscription}")
        await self.http.aclose()


async def amain(args: argparse.Namespace) -> None:
    agent = Agent(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(agent.run())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await runner
    with contextlib.suppress(Exception):
        await asyncio.wait_for(agent.close(), 5)
    if runner in done and runner.exception() is not None:
        raise SystemExit(f"provider agent failed: {runner.exception()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The devnet's provider agent + exe-unit stand-in")
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--app-key", default=os.environ.get("YAGNA_APPKEY", ""))
    parser.add_argument("--gsb-url", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--price-start", default="0.01")
    parser.add_argument("--price-per-second", default="0.001")
    parser.add_argument("--price-per-cpu-second", default="0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
