"""Run one phase notebook with papermill in a child process; report progress as JSON lines.

``python -m beacon.harness.execute SPEC.json`` runs one phase. With ``--standby --kernel K --cwd DIR``
it starts kernel K first (and imports, silently, the modules every phase notebook uses), reports
``{"event": "standby"}`` and waits for the path of its SPEC.json on standard input: this is how
:mod:`beacon.harness.phase_executor` prepares the next phase while the current one runs. Running papermill in a child of its own lets the parent enforce a wall-clock budget and kill
the whole tree (papermill, kernel) when a kernel hangs or dies without telling anyone — papermill's
own known failure modes (nteract/papermill#125, #711) — instead of the run getting stuck.

Events written to stdout, one JSON object per line:

* ``{"event": "start", "cells": N}``
* ``{"event": "cell", "index": i, "state": "start"|"done"|"failed", "duration": s}``
* ``{"event": "end", "outcome": "ok"|"cell_error"|"kernel_died"|"cell_timeout"|"harness_error", ...}``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

EXIT_CODES = {"ok": 0, "cell_error": 1, "kernel_died": 3, "cell_timeout": 4, "harness_error": 5}

_events: IO[str] = sys.stdout


def emit(event: dict[str, Any]) -> None:
    _events.write(json.dumps(event) + "\n")
    _events.flush()


def _progress_engine() -> type:
    from papermill.engines import NBClientEngine

    class ProgressEngine(NBClientEngine):  # type: ignore[misc]
        """papermill's nbclient engine, announcing each cell's start and end."""

        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            cell_start, cell_complete, cell_exception = (
                nb_man.cell_start,
                nb_man.cell_complete,
                nb_man.cell_exception,
            )
            started: dict[int, float] = {}

            def on_start(cell: Any, cell_index: int | None = None, **kw: Any) -> None:
                cell_start(cell, cell_index, **kw)
                started[cell_index or 0] = time.monotonic()
                emit({"event": "cell", "index": cell_index, "state": "start", "type": cell.get("cell_type")})

            def on_exception(cell: Any, cell_index: int | None = None, **kw: Any) -> None:
                cell_exception(cell, cell_index, **kw)
                emit({"event": "cell", "index": cell_index, "state": "failed"})

            def on_complete(cell: Any, cell_index: int | None = None, **kw: Any) -> None:
                cell_complete(cell, cell_index, **kw)
                duration = time.monotonic() - started.get(cell_index or 0, time.monotonic())
                emit({"event": "cell", "index": cell_index, "state": "done", "duration": round(duration, 4)})

            nb_man.cell_start, nb_man.cell_complete, nb_man.cell_exception = (
                on_start,
                on_complete,
                on_exception,
            )
            emit({"event": "start", "cells": len(nb_man.nb.cells)})
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    return ProgressEngine


WARM_IMPORTS = (
    "import pandas, httpx, beacon.client, beacon.gpu, beacon.harness, beacon.harness.jobs, "
    "beacon.harness.probes, beacon.harness.plan"
)
"""What every phase notebook imports: done silently (no execution count, no output) while on standby."""


def start_kernel(kernel: str, cwd: str, timeout_s: float) -> Any:
    """A started, ready kernel with the harness's modules already imported."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    async def start() -> Any:
        manager = AsyncKernelManager(kernel_name=kernel)
        await manager.start_kernel(cwd=cwd)
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=timeout_s)
            await client.execute_interactive(
                WARM_IMPORTS, silent=True, store_history=False, timeout=timeout_s
            )
        finally:
            client.stop_channels()
        return manager

    return asyncio.run(start())


def stop_kernel(manager: Any) -> None:
    import asyncio

    with contextlib.suppress(Exception):  # a kernel that died on its own is already stopped
        asyncio.run(manager.shutdown_kernel(now=True))


def run(spec: dict[str, Any], km: Any = None) -> str:
    """Execute the notebook described by ``spec`` (on kernel manager ``km`` if given); return the outcome."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    papermill_engines.register("beacon-progress", _progress_engine())
    engine_kwargs = {"km": km} if km is not None else {}
    try:
        papermill.execute_notebook(
            spec["input"],
            spec["output"],
            parameters=spec.get("parameters") or {},
            engine_name="beacon-progress",
            kernel_name=spec.get("kernel", "beacon"),
            progress_bar=False,
            log_output=False,
            cwd=spec.get("cwd"),
            start_timeout=spec.get("start_timeout_s", 60),
            execution_timeout=spec.get("cell_timeout_s"),
            **engine_kwargs,
        )
    except PapermillExecutionError as exc:
        emit(
            {
                "event": "end",
                "outcome": "cell_error",
                "cell_index": exc.cell_index,
                "ename": exc.ename,
                "evalue": str(exc.evalue)[:2000],
            }
        )
        return "cell_error"
    except DeadKernelError as exc:
        emit({"event": "end", "outcome": "kernel_died", "evalue": str(exc)[:2000]})
        return "kernel_died"
    except CellTimeoutError as exc:
        emit({"event": "end", "outcome": "cell_timeout", "evalue": str(exc)[:2000]})
        return "cell_timeout"
    except Exception as exc:
        emit(
            {
                "event": "end",
                "outcome": "harness_error",
                "ename": type(exc).__name__,
                "evalue": str(exc)[:2000],
            }
        )
        traceback.print_exc()
        return "harness_error"
    emit({"event": "end", "outcome": "ok"})
    return "ok"


def main(argv: list[str] | None = None) -> int:
    global _events
    parser = argparse.ArgumentParser(prog="python -m beacon.harness.execute", description=__doc__)
    parser.add_argument("spec", nargs="?", help="SPEC.json (without --standby)")
    parser.add_argument(
        "--standby", action="store_true", help="start the kernel, then read SPEC.json's path from stdin"
    )
    parser.add_argument("--kernel", default="beacon")
    parser.add_argument("--cwd", default=".")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if bool(args.spec) == args.standby:
        parser.error("give SPEC.json, or --standby")
    # Events own stdout; anything else that prints (papermill, nbclient, warnings) goes to stderr.
    _events = sys.stdout
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.standby:
        return EXIT_CODES[run(json.loads(Path(args.spec).read_text(encoding="utf-8")))]
    import papermill  # noqa: F401 (imported while waiting, not on the phase's clock)

    try:
        manager = start_kernel(args.kernel, args.cwd, args.start_timeout)
    except Exception as exc:  # the phase that takes this process over reports it
        if sys.stdin.readline():
            emit(
                {
                    "event": "end",
                    "outcome": "harness_error",
                    "ename": type(exc).__name__,
                    "evalue": f"kernel start: {exc}",
                }
            )
            return EXIT_CODES["harness_error"]
        return 0
    emit({"event": "standby"})
    line = sys.stdin.readline().strip()
    try:
        if not line:  # the run ended without a phase for this process
            return 0
        return EXIT_CODES[run(json.loads(Path(line).read_text(encoding="utf-8")), km=manager)]
    finally:
        stop_kernel(manager)


if __name__ == "__main__":
    raise SystemExit(main())
