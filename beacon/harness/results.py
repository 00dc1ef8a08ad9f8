"""Phase results: the one JSON document each Day-1 phase writes, so pytest and reports read data.

A notebook does::

    results = PhaseResults(results_path, phase="t-15")
    results.check("unsigned_rejected", expected=400, actual=response.status_code)
    results.check("rows_listed", expected="a list", actual=rows, passed=ok, examined=len(rows))
    results.check("db_up", expected="up", actual=state, served_by="sqlite", real="postgresql")
    results.skip("gpu", "no GPU on this host")          # recorded as not exercised, with the reason
    results.measure("latency_s", 0.42, unit="s", region="EU", model="smollm2-135m")
    results.table("error_paths", rows)
    results.finish()

Every check ends in one of three verdicts: ``pass``, ``fail`` or ``not_exercised`` (with the
reason). A check that would pass on nothing (``examined=0``) or on a substitute of the component it
names (``served_by`` is not ``real``: SQLite for PostgreSQL, the in-process queue for Redis …) is
recorded as *not exercised*, never as a pass; a failure stays a failure whatever served it.

The document is rewritten atomically after every check (and at most once a second for other
records), so a kernel that dies or a phase that is killed on its timeout still leaves everything it
had established on disk.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from beacon.canonical import sha256_file
from beacon.client import CallLog, CallRecord

SCHEMA = "beacon.phase-results/v1"

CheckStatus = Literal["pass", "fail", "not_exercised"]
NOT_EXERCISED = "not_exercised"
LEGACY_NOT_EXERCISED = "skip"
"""What phase results written before the three verdicts called a check not exercised."""
Severity = Literal["info", "warning", "error"]


def to_jsonable(value: Any) -> Any:
    """Plain JSON values for numpy/pandas scalars, datetimes, paths, sets, bytes and dataclasses."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [to_jsonable(v) for v in items]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return to_jsonable(tolist())
    return str(value)


def verdict_of(check: Mapping[str, Any]) -> CheckStatus:
    """A recorded check's verdict (older documents' ``skip`` reads as not exercised)."""
    status = check.get("status")
    if status == "pass":
        return "pass"
    if status == "fail":
        return "fail"
    return "not_exercised"


def count_verdicts(checks: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many checks have each verdict."""
    counts = {"pass": 0, "fail": 0, NOT_EXERCISED: 0}
    for check in checks:
        counts[verdict_of(check)] += 1
    return counts


def write_json_atomic(path: Path, document: Any) -> None:
    """Write ``document`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(to_jsonable(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PhaseResults:
    """Structured results of one phase, persisted to ``path`` as JSON (see the module docstring)."""

    FLUSH_INTERVAL_S = 1.0

    def __init__(self, path: str | os.PathLike[str] | None, phase: str, *, title: str | None = None) -> None:
        self.path = Path(path) if path else None
        now = time.time()
        self.doc: dict[str, Any] = {
            "schema": SCHEMA,
            "phase": phase,
            "title": title,
            "status": "running",
            "started_at": now,
            "updated_at": now,
            "finished_at": None,
            "parameters": {},
            "checks": [],
            "measurements": [],
            "tables": {},
            "artefacts": [],
            "findings": [],
            "calls": [],
            "deliberate": [],
        }
        self._last_flush = 0.0
        self._unsubscribe: list[Callable[[], None]] = []
        self.flush()

    # --- reading ---------------------------------------------------------------------------------
    @property
    def phase(self) -> str:
        return str(self.doc["phase"])

    @property
    def checks(self) -> list[dict[str, Any]]:
        return list(self.doc["checks"])

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(check["status"] != "fail" for check in self.doc["checks"])

    def get_check(self, check_id: str) -> dict[str, Any] | None:
        return next((c for c in self.doc["checks"] if c["id"] == check_id), None)

    # --- recording -------------------------------------------------------------------------------
    def parameters(self, **values: Any) -> None:
        """Record the parameters the notebook ran with (names of token variables, never tokens)."""
        self.doc["parameters"].update(to_jsonable(values))
        self.flush()

    def check(
        self,
        check_id: str,
        *,
        expected: Any,
        actual: Any,
        passed: bool | None = None,
        title: str | None = None,
        detail: str | None = None,
        evidence: Any = None,
        examined: int | None = None,
        served_by: str | None = None,
        real: str | None = None,
    ) -> bool:
        """Record a check; ``passed`` defaults to ``expected == actual``. Returns False only on a failure.

        ``examined``: how many items the check looked at; a pass on none is *not exercised*.
        ``served_by`` / ``real``: the component that answered and the one the check names; a pass
        on a substitute (``served_by != real``) is *not exercised*, with both named.
        Recording the same id again replaces the earlier record (re-running a cell by hand).
        """
        ok = (to_jsonable(expected) == to_jsonable(actual)) if passed is None else bool(passed)
        record: dict[str, Any] = {
            "id": check_id,
            "title": title,
            "status": "pass" if ok else "fail",
            "expected": to_jsonable(expected),
            "actual": to_jsonable(actual),
            "detail": detail,
            "evidence": to_jsonable(evidence),
            "examined": examined,
            "served_by": served_by,
            "at": time.time(),
        }
        if ok and examined is not None and examined <= 0:
            record.update(status=NOT_EXERCISED, detail=_joined("nothing to examine (0 items)", detail))
        elif ok and served_by is not None and real is not None and served_by != real:
            record.update(
                status=NOT_EXERCISED,
                detail=_joined(f"served by {served_by}, a substitute for {real}", detail),
                substitute_for=real,
            )
        return self._put_check(record)

    def not_exercised(
        self,
        check_id: str,
        reason: str,
        *,
        title: str | None = None,
        evidence: Any = None,
        served_by: str | None = None,
    ) -> None:
        """Record a check that could not be exercised here (no GPU, no log access …), with the reason."""
        self._put_check(
            {
                "id": check_id,
                "title": title,
                "status": NOT_EXERCISED,
                "expected": None,
                "actual": None,
                "detail": reason,
                "evidence": to_jsonable(evidence),
                "examined": None,
                "served_by": served_by,
                "at": time.time(),
            }
        )

    skip = not_exercised
    """The name phases used before the three verdicts (same meaning: not exercised, with a reason)."""

    def fail(self, check_id: str, detail: str, *, title: str | None = None, evidence: Any = None) -> bool:
        """Record a check that could not be carried out (an endpoint errored, a wait timed out)."""
        return self.check(
            check_id,
            expected="completed",
            actual="error",
            passed=False,
            title=title,
            detail=detail,
            evidence=evidence,
        )

    @contextmanager
    def attempt(self, check_id: str, *, title: str | None = None) -> Iterator[None]:
        """Run a block that records ``check_id``; if it raises, record the check as failed with the error.

        The notebook goes on (later checks still run) and the traceback is printed into the cell's
        output, so a missing endpoint fails its checks instead of stopping the phase.
        """
        try:
            yield
        except Exception as exc:  # every failure of the block is the check's failure
            traceback.print_exc()
            self.fail(check_id, f"{type(exc).__name__}: {exc}", title=title)

    def _put_check(self, record: dict[str, Any]) -> bool:
        checks: list[dict[str, Any]] = self.doc["checks"]
        for index, existing in enumerate(checks):
            if existing["id"] == record["id"]:
                checks[index] = record
                break
        else:
            checks.append(record)
        self.flush()
        return bool(record["status"] != "fail")

    def measure(self, name: str, value: float | int | None, *, unit: str = "", **tags: Any) -> None:
        """Record one measurement (a latency, a count, a rate) with tags such as region and model."""
        self.doc["measurements"].append(
            {
                "name": name,
                "value": to_jsonable(value),
                "unit": unit,
                "tags": to_jsonable(tags),
                "at": time.time(),
            }
        )
        self._maybe_flush()

    def table(self, name: str, rows: Iterable[Mapping[str, Any]] | Any) -> None:
        """Store a table (list of row objects; a pandas DataFrame is converted), replacing one of that name."""
        to_dict = getattr(rows, "to_dict", None)
        if callable(to_dict):
            rows = to_dict(orient="records")
        self.doc["tables"][name] = [to_jsonable(dict(row)) for row in rows]
        self.flush()

    def append_row(self, name: str, row: Mapping[str, Any]) -> None:
        """Append one row to a table (e.g. a sample of a time series)."""
        self.doc["tables"].setdefault(name, []).append(to_jsonable(dict(row)))
        self._maybe_flush()

    def artefact(self, path: str | os.PathLike[str], *, kind: str, description: str = "") -> None:
        """Reference a file the phase produced (relative to the results file where possible)."""
        file = Path(path)
        entry = {
            "path": self._relative(file),
            "kind": kind,
            "description": description,
            "sha256": sha256_file(file) if file.is_file() else None,
            "size": file.stat().st_size if file.is_file() else None,
        }
        self.doc["artefacts"] = [a for a in self.doc["artefacts"] if a["path"] != entry["path"]] + [entry]
        self.flush()

    def finding(self, text: str, *, severity: Severity = "info") -> None:
        """A sentence for the report's findings (what was learnt, not a verdict)."""
        self.doc["findings"].append({"severity": severity, "text": text, "at": time.time()})
        self.flush()

    def deliberate(self, request_id: str | None, reason: str) -> None:
        """Declare a request this phase made to be refused on purpose (an invalid submission, the
        drill's pause): T+60's 5xx and log checks ignore exactly these request ids."""
        if request_id:
            self.doc.setdefault("deliberate", []).append({"request_id": request_id, "reason": reason})
            self.flush()

    def watch(self, log: CallLog) -> None:
        """Record every HTTP call made through clients sharing ``log`` (for latency and 5xx tables)."""
        self._unsubscribe.append(log.subscribe(self._on_call))

    def _on_call(self, record: CallRecord) -> None:
        self.doc["calls"].append(record.to_json())
        self._maybe_flush()

    def finish(self) -> dict[str, Any]:
        """Mark the phase complete (the last cell of every notebook calls this) and write the document."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self.doc["status"] = "completed"
        self.doc["finished_at"] = time.time()
        self.flush()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        counts = count_verdicts(self.doc["checks"])
        return {"phase": self.phase, "status": self.doc["status"], "checks": counts, "passed": self.passed}

    # --- persistence -----------------------------------------------------------------------------
    def _relative(self, file: Path) -> str:
        """``file`` relative to the results file's folder (``../artefacts/…`` in a run folder)."""
        if self.path is None:
            return str(file)
        return os.path.relpath(file.resolve(), self.path.resolve().parent)

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        self.doc["updated_at"] = time.time()
        self._last_flush = time.monotonic()
        if self.path is not None:
            write_json_atomic(self.path, self.doc)


def _joined(first: str, second: str | None) -> str:
    return f"{first}; {second}" if second else first


def load_phase_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a phase-results document; ValueError if it is not one."""
    file = Path(path)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file}: not a readable phase-results document ({exc})") from exc
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ValueError(f"{file}: not a {SCHEMA} document")
    for check in document.get("checks") or []:
        if isinstance(check, dict) and check.get("status") == LEGACY_NOT_EXERCISED:
            check["status"] = NOT_EXERCISED
    return document
