"""The run monitor: while the phases run, sample the runner's health and queues and this host.

One JSON object per line in ``monitor.jsonl`` of the run folder: ``{"time", "health": {status,
http_status, duration_s}, "queues": {region: depth, …} | null, "host": {cpu_percent, …}}``. The
wrap-up phase judges "health endpoints maintain 200" and "no 5xx" from it; the report draws queue
depth and host load over the whole run from it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from beacon.client import BeaconAPIError, BeaconClient, BeaconError
from beacon.gpu import sample
from beacon.harness.results import to_jsonable


def queue_depths(stats: dict[str, Any]) -> dict[str, int]:
    """Messages per region not yet finished — waiting (``depth``), delayed for a retry, or delivered
    and not yet acknowledged (``pending``) — from ``GET /admin/ops/queues``.

    Zero everywhere means the queue is drained, not merely that nothing waits.
    """
    out: dict[str, int] = {}
    for entry in stats.get("regions", []):
        out[str(entry["region"])] = sum(int(entry.get(key) or 0) for key in ("depth", "delayed", "pending"))
    return out


class RunMonitor:
    """A background thread sampling the runner every ``interval_s`` seconds into a JSONL file."""

    def __init__(
        self,
        url: str,
        path: Path,
        *,
        interval_s: float = 1.0,
        operator_token: str | None = None,
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self._anonymous = BeaconClient(url, label="monitor", timeout=5.0)
        self._operator = (
            BeaconClient(url, token=operator_token, label="monitor", timeout=5.0) if operator_token else None
        )
        self._queues_available = self._operator is not None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0

    def __enter__(self) -> RunMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="beacon-run-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._anonymous.close()
        if self._operator is not None:
            self._operator.close()

    def _run(self) -> None:
        sample()  # prime the CPU counter
        with self.path.open("a", encoding="utf-8") as handle:
            while True:
                handle.write(json.dumps(to_jsonable(self.take())) + "\n")
                handle.flush()
                self.samples += 1
                if self._stop.wait(self.interval_s):
                    return

    def take(self) -> dict[str, Any]:
        """One sample (also usable on its own)."""
        record: dict[str, Any] = {"time": time.time()}
        started = time.perf_counter()
        try:
            response = self._anonymous.request("GET", "/health")
            body = response.json() if "json" in response.headers.get("content-type", "") else {}
            record["health"] = {
                "http_status": response.status_code,
                "status": body.get("status") if isinstance(body, dict) else None,
                "duration_s": time.perf_counter() - started,
            }
        except (BeaconError, ValueError) as exc:
            record["health"] = {
                "http_status": None,
                "error": str(exc),
                "duration_s": time.perf_counter() - started,
            }
        record["queues"] = None
        if self._operator is not None and self._queues_available:
            try:
                record["queues"] = queue_depths(self._operator.queue_stats())
            except BeaconAPIError as exc:
                if exc.status in (404, 405):
                    self._queues_available = False  # this runner has no queue-stats endpoint
            except BeaconError:
                pass
        record["host"] = sample()
        return record


def read_monitor(path: Path) -> list[dict[str, Any]]:
    """The samples of a ``monitor.jsonl`` file (a torn last line is ignored)."""
    samples: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return samples
    for line in lines:
        try:
            samples.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return samples
