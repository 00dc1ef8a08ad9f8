"""Where the tests find this machine's PostgreSQL and Redis, and the one rule for a service that is down.

Imported by the root conftest.py and by test modules that start processes of their own; a plain module
(not a conftest) so that ``tests/faults/conftest.py`` can never shadow it.
"""

from __future__ import annotations

import os
import socket

import pytest

PG_HOST = os.environ.get("BEACON_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BEACON_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("BEACON_TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("BEACON_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BEACON_TEST_REDIS_PORT", "6379"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port within a second."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip loudly when a service is down; under CI=true, fail instead."""
    if reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: .ci/run must start it)", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {message}; start it to run this test")
