"""The embedded runner: a real ``beacon serve --embedded`` child, provisioned, logged, stopped by PID."""

from __future__ import annotations

import json

import httpx
import psutil
import pytest

from beacon.harness.launcher import EmbeddedRunner, EmbeddedRunnerError
from beacon.keys import read_key_file

pytestmark = pytest.mark.slow


def test_starts_ready_with_roles_and_a_trusted_key_and_stops_by_pid() -> None:
    runner = EmbeddedRunner().start()
    try:
        assert runner.url.startswith("http://127.0.0.1:")
        assert httpx.get(runner.url + "/health/ready").status_code == 200
        credentials = runner.credentials
        assert credentials is not None
        for token, role in (
            (credentials.admin_token, "admin"),
            (credentials.operator_token, "operator"),
            (credentials.viewer_token, "viewer"),
        ):
            answer = httpx.get(
                runner.url + "/auth/whoami", headers={"Authorization": f"Bearer {token}"}
            ).json()
            assert answer["role"] == role
        assert runner.data_dir is not None
        trusted = json.loads((runner.data_dir / "trusted-keys.json").read_text())
        assert trusted[0]["public_key"] == read_key_file(credentials.signing_key_file).public_key_b64
        env = credentials.env()
        assert set(env) == {"ADMIN_TOKEN", "OPERATOR_TOKEN", "VIEWER_TOKEN", "BEACON_SIGNING_KEY_FILE"}
        assert runner.log_path.is_file()
        data_dir = runner.data_dir
        pid = runner.pid
        assert pid is not None
    finally:
        status = runner.stop()
    assert status is not None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not data_dir.exists()  # its temporary data is gone
    assert runner.credentials is None


def test_a_runner_that_cannot_start_reports_its_log(tmp_path) -> None:
    runner = EmbeddedRunner(
        data_dir=tmp_path, extra_env={"DATABASE_URL": "mysql://nope"}, startup_timeout_s=30
    )
    with pytest.raises(EmbeddedRunnerError, match="DATABASE_URL"):
        runner.start()
    assert runner.process is None
