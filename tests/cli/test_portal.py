"""``beacon portal``: serve the portal on its own origin."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from beacon.cli import app

runner = CliRunner()


def test_help_says_what_the_runner_must_allow() -> None:
    result = runner.invoke(app, ["portal", "--help"])
    assert result.exit_code == 0 and "CORS_ORIGINS" in result.output


def test_a_bad_api_base_or_a_taken_port_exits_2_with_the_reason() -> None:
    bad = runner.invoke(app, ["portal", "--api-base", "ftp://runner.example", "--port", "0"])
    assert bad.exit_code == 2 and "is not an http(s) URL" in " ".join(bad.output.split())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = runner.invoke(app, ["portal", "--api-base", "http://127.0.0.1:8090", "--port", str(port)])
    assert busy.exit_code == 2 and "cannot serve the portal" in busy.output
