"""Failpoints: named places in the pipeline where a fault test can make a process stop or stall.

The technique of etcd's gofail and FoundationDB's simulation, reduced to what our crash matrix
needs. Production never sets ``BEACON_FAILPOINTS``; then every failpoint is one dict lookup.

``BEACON_FAILPOINTS="relay.after_publish=kill;worker.mid_execution=sleep(0.5)"`` — actions:

* ``kill``       SIGKILL this process (no cleanup, no flush: a crash at exactly this line)
* ``segv``       SIGSEGV this process (what a native crash looks like from outside)
* ``sleep(S)``   pause S seconds (a window for an outside ``kill -9``)
* ``raise``      raise :class:`FailpointError`
* ``N*action``   only the first N times (``1*kill``)
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from dataclasses import dataclass

ENV = "BEACON_FAILPOINTS"

_SPEC = re.compile(r"^(?:(?P<count>\d+)\*)?(?P<action>kill|segv|raise|sleep\((?P<seconds>[0-9.]+)\))$")


class FailpointError(RuntimeError):
    """Raised by a failpoint configured with ``raise``."""


@dataclass
class _Failpoint:
    action: str
    seconds: float
    remaining: int | None


def _parse(text: str) -> dict[str, _Failpoint]:
    points: dict[str, _Failpoint] = {}
    for part in filter(None, (item.strip() for item in text.split(";"))):
        name, _, spec = part.partition("=")
        match = _SPEC.match(spec.strip())
        if not name.strip() or match is None:
            raise ValueError(
                f"{ENV}: cannot read {part!r} (expected name=kill|segv|raise|sleep(S), optionally N*)"
            )
        count = match.group("count")
        action = match.group("action").split("(", 1)[0]
        points[name.strip()] = _Failpoint(
            action, float(match.group("seconds") or 0), int(count) if count is not None else None
        )
    return points


_points: dict[str, _Failpoint] = _parse(os.environ.get(ENV, ""))


def configure(text: str) -> None:
    """Replace the active failpoints (tests of this module; processes use the environment)."""
    global _points
    _points = _parse(text)


def _due(name: str) -> _Failpoint | None:
    point = _points.get(name)
    if point is None:
        return None
    if point.remaining is not None:
        if point.remaining <= 0:
            return None
        point.remaining -= 1
    if point.action in ("kill", "segv"):
        os.kill(os.getpid(), signal.SIGKILL if point.action == "kill" else signal.SIGSEGV)
    elif point.action == "raise":
        raise FailpointError(f"failpoint {name}")
    return point


async def failpoint(name: str) -> None:
    """Trigger the failpoint ``name`` if it is configured."""
    point = _due(name)
    if point is not None and point.action == "sleep":
        await asyncio.sleep(point.seconds)


def failpoint_sync(name: str) -> None:
    """:func:`failpoint` for code off the event loop (``sleep`` blocks the calling thread)."""
    point = _due(name)
    if point is not None and point.action == "sleep":
        time.sleep(point.seconds)
