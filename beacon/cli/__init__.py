"""The ``beacon`` command: one typer app; each module registers its commands.

| module      | commands                                                              |
|-------------|-----------------------------------------------------------------------|
| serve.py    | serve, worker, db upgrade                                             |
| keys.py     | keys generate, sign, verify, submit                                   |
| signer.py   | the ``jobspec-signer`` compatibility command                          |
| ops.py      | ops (pause/resume, queue stats, dead letters, workers, drain), backup, restore |
| tlog.py     | tlog verify-note / monitor, verify-receipt, verify-bundle             |
| gpu.py      | gpu check / watch, and the ``ollama-metrics`` command                 |
| day1.py     | day1, report, verify-report                                           |
| golem.py    | golem devnet up / down / status                                       |
| lab.py      | lab (a shared runner and run folder for JupyterLab)                   |
| portal.py   | portal (the browser front end on its own origin)                      |
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="beacon",
    help="Beacon: verifiable, multi-region LLM bias benchmarks and the Day-1 test plan of their runner.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _register() -> None:
    from beacon.cli import day1, golem, gpu, keys, lab, ops, portal, serve, tlog

    for module in (serve, keys, ops, tlog, gpu, day1, golem, lab, portal):
        module.register(app)


_register()


def main() -> None:
    """Entry point of the ``beacon`` console script."""
    app()
