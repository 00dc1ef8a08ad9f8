"""What actually served each part of the plan: the real component, or a substitute.

The written plan names real components — PostgreSQL, Redis, IPFS, a GPU, Ollama and Golem. The
embedded runner answers the same API with substitutes (SQLite, the in-process queue, the local
content store, llama.cpp on the CPU). A check or criterion that passes on a substitute has not
exercised the thing it names: the harness records it as *not exercised* and says what served.

The facts come from the runner under test: ``GET /health`` (database dialect, queue kind, content
store) and ``GET /admin/ops/workers`` (each live worker's ``backend_status``: its executor's own
status — Ollama version and models, yagna identity and payment account, llama.cpp model digests —
and its host's GPUs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

REAL_BACKENDS = frozenset({"ollama", "golem"})
LIVE_MODELS = ("llama3.2:1b", "qwen2.5:1.5b", "mistral:7b")
"""The models the written plan requires on the live run's Ollama hosts."""


@dataclass(frozen=True)
class ComponentSpec:
    """A component the plan names: its label and what counts as the real thing."""

    name: str
    label: str
    real: frozenset[str]


COMPONENTS: dict[str, ComponentSpec] = {
    spec.name: spec
    for spec in (
        ComponentSpec("database", "PostgreSQL", frozenset({"postgresql"})),
        ComponentSpec("queue", "Redis", frozenset({"redis"})),
        ComponentSpec("content_store", "IPFS", frozenset({"ipfs"})),
        ComponentSpec("backend", "Ollama/Golem", REAL_BACKENDS),
        ComponentSpec("gpu", "GPU", frozenset({"gpu"})),
        ComponentSpec("golem", "Golem", frozenset({"golem"})),
    )
}


@dataclass(frozen=True)
class Served:
    """What served one component in this run (``served_by`` None: it could not be told)."""

    component: str
    label: str
    served_by: str | None
    detail: str

    @property
    def exercised(self) -> bool:
        """The real component served (every region of it, for per-region components)."""
        if self.served_by is None:
            return False
        return all(part in COMPONENTS[self.component].real for part in self.served_by.split(","))

    @property
    def reason(self) -> str:
        """Why a check on this component was not exercised (empty when it was)."""
        if self.exercised:
            return ""
        if self.served_by is None:
            return f"what served {self.label} could not be told ({self.detail})"
        return f"{self.label} not exercised: served by {self.served_by} ({self.detail})"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "exercised": self.exercised, "real": sorted(COMPONENTS[self.component].real)}


def live_workers(workers: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [w for w in workers if w.get("live") and w.get("state") in ("running", "draining")]


def region_backends(workers: Iterable[Mapping[str, Any]], regions: Sequence[str]) -> dict[str, list[str]]:
    """Region → the backends its live workers run (empty list: no live worker)."""
    out: dict[str, set[str]] = {region: set() for region in regions}
    for worker in live_workers(workers):
        if worker.get("region") in out:
            out[str(worker["region"])].add(str(worker.get("backend")))
    return {region: sorted(names) for region, names in out.items()}


def worker_uses_gpu(worker: Mapping[str, Any]) -> bool | None:
    """Whether this worker's inference runs on a GPU (None: its status does not say)."""
    status = worker.get("backend_status") or {}
    backend = status.get("backend") or worker.get("backend")
    if backend == "llamacpp":
        host_gpus = (status.get("host_facts") or {}).get("gpu") or []
        return bool(status.get("gpu_offload")) and status.get("n_gpu_layers") != 0 and bool(host_gpus)
    if backend == "ollama":
        vram = status.get("loaded_vram") or {}
        if not vram:
            return None  # nothing loaded yet: Ollama cannot say where a model will run
        return any(int(size or 0) > 0 for size in vram.values())
    if backend == "golem":
        gpu = status.get("provider_gpu")
        return None if gpu is None else bool(gpu)
    return None


def served_components(
    health: Mapping[str, Any] | None,
    workers: Sequence[Mapping[str, Any]] | None,
    regions: Sequence[str],
) -> dict[str, Served]:
    """Every component of :data:`COMPONENTS` and what served it, from the runner's own reports."""
    components = (health or {}).get("components") or {}
    out: dict[str, Served] = {}

    database = components.get("database") or {}
    out["database"] = Served(
        "database",
        "PostgreSQL",
        database.get("dialect"),
        f"/health database dialect {database.get('dialect')!r}",
    )
    queue = components.get("queue") or {}
    out["queue"] = Served("queue", "Redis", queue.get("kind"), f"/health queue kind {queue.get('kind')!r}")
    store = components.get("content_store") or {}
    if not store:
        out["content_store"] = Served("content_store", "IPFS", None, "/health reports no content store")
    elif store.get("node"):
        out["content_store"] = Served(
            "content_store", "IPFS", "ipfs", f"kubo at {store['node']} (version {store.get('version')})"
        )
    else:
        out["content_store"] = Served(
            "content_store", "IPFS", "local", str(store.get("ipfs") or "no IPFS node configured")
        )

    if workers is None:
        for name in ("backend", "gpu", "golem"):
            spec = COMPONENTS[name]
            out[name] = Served(name, spec.label, None, "the worker list could not be read")
        return out
    backends = region_backends(workers, regions)
    per_region = ", ".join(f"{r}: {'+'.join(b) or 'no live worker'}" for r, b in backends.items())
    if any(not b for b in backends.values()):
        out["backend"] = Served("backend", "Ollama/Golem", None, per_region)
    else:
        out["backend"] = Served(
            "backend",
            "Ollama/Golem",
            ",".join(sorted({b for bs in backends.values() for b in bs})),
            per_region,
        )
    golem_regions = [r for r, b in backends.items() if "golem" in b]
    out["golem"] = Served(
        "golem",
        "Golem",
        "golem" if golem_regions else ",".join(sorted({b for bs in backends.values() for b in bs})) or None,
        f"Golem serves {', '.join(golem_regions)}" if golem_regions else f"no region on Golem ({per_region})",
    )
    gpu_by_region: dict[str, list[bool | None]] = {r: [] for r in regions}
    for worker in live_workers(workers):
        if worker.get("region") in gpu_by_region:
            gpu_by_region[str(worker["region"])].append(worker_uses_gpu(worker))
    described = ", ".join(
        f"{r}: {'GPU' if v and all(v) else 'unknown' if not v or None in v else 'CPU'}"
        for r, v in gpu_by_region.items()
    )
    if all(v and all(x is True for x in v) for v in gpu_by_region.values()):
        out["gpu"] = Served("gpu", "GPU", "gpu", described)
    elif any(x is False for v in gpu_by_region.values() for x in v):
        out["gpu"] = Served("gpu", "GPU", "cpu", described)
    else:
        out["gpu"] = Served("gpu", "GPU", None, described)
    return out


def served_rows(
    served: Mapping[str, Served], workers: Sequence[Mapping[str, Any]] | None, regions: Sequence[str]
) -> list[dict[str, Any]]:
    """Per region: what serves it (backend, model digests, host, GPU) and the backend's own health."""
    rows = []
    for worker in live_workers(workers or []):
        if worker.get("region") not in regions:
            continue
        status = worker.get("backend_status") or {}
        host = status.get("host_facts") or {}
        models = status.get("models") or {}
        rows.append(
            {
                "region": worker.get("region"),
                "worker": worker.get("id"),
                "backend": status.get("backend") or worker.get("backend"),
                "ready": status.get("ready"),
                "backend_version": status.get("backend_version") or status.get("yapapi_version"),
                "models": {
                    name: (entry or {}).get("digest") if isinstance(entry, Mapping) else entry
                    for name, entry in models.items()
                }
                if isinstance(models, Mapping)
                else models,
                "host": worker.get("hostname"),
                "ollama_host": status.get("host"),
                "yagna_url": status.get("yagna_url"),
                "gpu": [g.get("name") for g in (host.get("gpu") or [])],
                "uses_gpu": worker_uses_gpu(worker),
                "provider": status.get("requestor") or status.get("provider_id"),
                "payment_account": status.get("payment_account"),
                "error": status.get("error"),
            }
        )
    return rows
