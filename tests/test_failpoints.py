"""Failpoints: the spec syntax, and the sync variant the model process uses."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from beacon import failpoints


def test_segv_kills_the_process_with_sigsegv() -> None:
    script = (
        "from beacon import failpoints\nfailpoints.configure('x=1*segv')\nfailpoints.failpoint_sync('x')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert done.returncode == -11


def test_counted_sleep_blocks_only_the_first_times() -> None:
    failpoints.configure("x=1*sleep(0.2)")
    try:
        started = time.perf_counter()
        failpoints.failpoint_sync("x")
        failpoints.failpoint_sync("x")
        assert 0.2 <= time.perf_counter() - started < 0.39
    finally:
        failpoints.configure("")


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match=r"kill\|segv"):
        failpoints.configure("x=explode")
