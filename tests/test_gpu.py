"""GPU, Ollama and host metrics: NVML when present, Ollama over its HTTP API, psutil always."""

from __future__ import annotations

import asyncio
import csv
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from beacon import gpu
from beacon.standins.ollama import OllamaStandin


@pytest.fixture(scope="module")
def ollama() -> Iterator[str]:
    """The loopback Ollama STAND-IN (Ollama's wire protocol, answered by SmolLM2), on its own loop."""
    loop = asyncio.new_event_loop()
    standin = OllamaStandin()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(standin.start(), loop).result(120)
    yield standin.url
    asyncio.run_coroutine_threadsafe(standin.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def no_default_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    """OLLAMA_HOST unset, and nothing listening where Ollama's default address is taken to be."""
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.setattr(gpu, "OLLAMA_DEFAULT_HOST", "127.0.0.1:9")


def both_checks(*options: str) -> list[tuple[int, dict]]:
    """``beacon gpu check OPTIONS --json`` and ``ollama-metrics --check OPTIONS --json``: (exit, report)."""
    import json

    import typer
    from typer.testing import CliRunner

    from beacon.cli import app
    from beacon.cli.gpu import _ollama_metrics

    metrics = typer.Typer()
    metrics.command()(_ollama_metrics)
    out = []
    for command, arguments in ((app, ["gpu", "check"]), (metrics, ["--check"])):
        result = CliRunner().invoke(command, [*arguments, *options, "--json"])
        assert result.exit_code in (0, 1), result.output
        out.append((result.exit_code, json.loads(result.output)))
    return out


def verdict(report: dict) -> tuple:
    ollama = report["ollama"] or {}
    return (
        report["healthy"],
        report["exit_status"],
        report["problems"],
        ollama.get("host"),
        ollama.get("reachable"),
    )


@pytest.mark.usefixtures("no_default_ollama")
@pytest.mark.parametrize(
    ("options", "exit_status"),
    [
        ([], 0),  # no Ollama on this host: said so, not a failure
        (["--host", "127.0.0.1:9"], 1),  # an Ollama named and unreachable
        (["--model", "llama3.2:1b"], 1),  # a model required and no Ollama to hold it
    ],
)
def test_gpu_check_and_ollama_metrics_agree(options: list[str], exit_status: int) -> None:
    (check_exit, check), (metrics_exit, metrics) = both_checks(*options)
    assert check_exit == metrics_exit == exit_status == check["exit_status"]
    assert verdict(check) == verdict(metrics)
    if not options:
        assert any("no Ollama on this host" in note for note in check["notes"])


@pytest.mark.slow
@pytest.mark.usefixtures("no_default_ollama")
def test_gpu_check_and_ollama_metrics_agree_on_a_running_ollama(
    ollama: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", ollama)  # the variable the plan's host sets: both read it
    (check_exit, check), (metrics_exit, metrics) = both_checks("--no-probe")
    assert check_exit == metrics_exit == 0 and verdict(check) == verdict(metrics)
    assert check["ollama"]["reachable"] and check["ollama"]["version"] == "0.0.0-beacon-standin"
    (check_exit, check), (metrics_exit, metrics) = both_checks("--no-probe", "--model", "mistral:7b")
    assert check_exit == metrics_exit == 1 and verdict(check) == verdict(metrics)
    assert "models not pulled" in check["problems"][0]
    if not gpu.gpu_status().available:
        (check_exit, _), (metrics_exit, _) = both_checks("--no-probe", "--require-gpu")
        assert check_exit == metrics_exit == 1


def test_host_facts_are_always_there(tmp_path: Path) -> None:
    status = gpu.system_status(tmp_path, cpu_interval_s=0.05)
    assert status.cpu_count >= 1
    assert 0 < status.memory_available_mib <= status.memory_total_mib
    assert status.disk_total_gib > 0


@pytest.mark.usefixtures("no_default_ollama")
def test_without_a_gpu_the_report_says_so_plainly() -> None:
    status = gpu.gpu_status()
    if status.available:
        pytest.skip("this host has an NVIDIA GPU")
    assert status.reason and status.reason.startswith("no NVIDIA GPU available")
    report = gpu.health_check()
    assert report.healthy  # a GPU is not required unless asked for
    assert report.gpu_acceleration is None
    assert status.reason in report.notes
    strict = gpu.health_check(require_gpu=True)
    assert not strict.healthy and status.reason in strict.problems


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("localhost:11434", "http://localhost:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("http://gpu-box:8080/", "http://gpu-box:8080"),
        (":11435", "http://127.0.0.1:11435"),
        ("[::]:11434", "http://[::1]:11434"),
        (
            "https://ollama.example",
            "https://ollama.example",
        ),  # a URL keeps its scheme's port, as Ollama's client
    ],
)
def test_ollama_host_spellings(host: str, url: str) -> None:
    assert gpu.ollama_base_url(host) == url


@pytest.mark.slow
def test_ollama_models_loaded_models_and_a_latency_probe(ollama: str) -> None:
    status = gpu.ollama_status(ollama)
    assert status.reachable and status.version == "0.0.0-beacon-standin"
    assert status.models and status.probe is not None and status.probe.ok
    assert status.probe.wall_s is not None and status.probe.wall_s > 0
    assert status.probe.tokens and status.probe.tokens <= 8
    report = gpu.health_check(ollama_host=ollama, models=[status.models[0].name])
    assert report.healthy, report.problems
    missing = gpu.health_check(ollama_host=ollama, models=["mistral:7b"], probe=False)
    assert not missing.healthy and "models not pulled" in missing.problems[0]
    slow = gpu.health_check(ollama_host=ollama, max_latency_s=1e-6)
    assert any("latency probe took" in p for p in slow.problems)


def test_unreachable_ollama_is_a_problem() -> None:
    report = gpu.health_check(ollama_host="127.0.0.1:9")
    assert not report.healthy
    assert report.ollama is not None and not report.ollama.reachable
    assert "unreachable" in report.problems[0]


def test_sampler_and_csv(tmp_path: Path) -> None:
    with gpu.Sampler(interval_s=0.05) as sampler:
        threading.Event().wait(0.3)
    assert len(sampler.rows) >= 3
    assert {"time", "cpu_percent", "memory_used_mib", "memory_percent"} <= set(sampler.rows[0])
    gpu.write_csv(sampler.rows, tmp_path / "m.csv")
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert len(rows) == len(sampler.rows)
    samples = list(gpu.watch(0.05, duration_s=0.2))
    assert 2 <= len(samples) <= 8
