"""How a child process ended, in words and as evidence: one reading of an exit status for every caller
(the llamacpp executor's model processes, the harness's embedded runner)."""

from __future__ import annotations

import contextlib
import signal
from typing import Any


def signal_name(number: int) -> str:
    """``SIGSEGV`` for 11; ``signal 77`` for a number this platform has no name for."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(returncode: int) -> str:
    """``killed by SIGSEGV (signal 11)`` / ``exited with status 3`` (a ``Popen.returncode``)."""
    if returncode < 0:
        return f"killed by {signal_name(-returncode)} (signal {-returncode})"
    return f"exited with status {returncode}"


def exit_details(returncode: int | None) -> dict[str, Any]:
    """``{"exit_status": -11, "signal": "SIGSEGV"}``: an exit as evidence (empty when it is not known)."""
    if returncode is None:
        return {}
    details: dict[str, Any] = {"exit_status": returncode}
    if returncode < 0:
        with contextlib.suppress(ValueError):
            details["signal"] = signal.Signals(-returncode).name
    return details
