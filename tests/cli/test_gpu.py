"""``beacon gpu check`` / ``watch`` and ``ollama-metrics``: exit codes, CSV output."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from beacon.cli import app
from beacon.gpu import gpu_status


def test_check_exit_codes(monkeypatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.setattr("beacon.gpu.OLLAMA_DEFAULT_HOST", "127.0.0.1:9")  # no Ollama on this host
    cli = CliRunner()
    healthy = cli.invoke(app, ["gpu", "check"])
    assert healthy.exit_code == 0, healthy.output
    assert "healthy" in healthy.output
    unreachable = cli.invoke(app, ["gpu", "check", "--ollama-host", "127.0.0.1:9"])
    assert unreachable.exit_code == 1
    assert "unreachable" in unreachable.output
    as_json = cli.invoke(app, ["gpu", "check", "--json"])
    assert as_json.exit_code == 0 and '"healthy": true' in as_json.output
    if not gpu_status().available:
        strict = cli.invoke(app, ["gpu", "check", "--require-gpu"])
        assert strict.exit_code == 1
        assert "no NVIDIA GPU available" in " ".join(strict.output.split())


def test_watch_writes_csv(tmp_path: Path) -> None:
    out = tmp_path / "metrics.csv"
    result = CliRunner().invoke(
        app, ["gpu", "watch", "--interval", "0.05", "--duration", "0.3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) >= 3 and float(rows[-1]["time"]) > float(rows[0]["time"])


def test_ollama_metrics_console_script() -> None:
    script = Path(sys.executable).with_name("ollama-metrics")
    done = subprocess.run(
        [str(script), "--check", "--host", "127.0.0.1:9"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "unreachable" in done.stdout
    help_text = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and "--check" in help_text.stdout
