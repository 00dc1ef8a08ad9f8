"""CLI: ``beacon lab`` — one runner and one run folder shared by every notebook of a JupyterLab session.

``make lab`` runs it. It starts an embedded runner (or uses ``--runner``), makes a run folder
(``reports/lab-<time>/`` by default), writes ``session.json`` there (the runner's URL, the *names* of
the token variables, the runner's log, the run folder; never a token), and runs JupyterLab (or the
command given after ``--``) with ``BEACON_SESSION_FILE`` and the tokens in its environment — the
kernels inherit them, so a notebook with an empty ``runner_url`` joins this session. The tokens live
only in the environment of that process tree (decision 1401). The runner stops when JupyterLab exits.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import typer
from rich.console import Console

TOKEN_ENVS = {"admin": "ADMIN_TOKEN", "operator": "OPERATOR_TOKEN", "viewer": "VIEWER_TOKEN"}
SIGNING_KEY_ENV = "BEACON_SIGNING_KEY_FILE"


def default_run_dir() -> Path:
    return Path("reports") / ("lab-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"))


def lab(
    ctx: typer.Context,
    runner: str = typer.Option(
        "", "--runner", help="Use this runner (tokens already exported) instead of starting an embedded one."
    ),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="The session's run folder (default reports/lab-<time>/).", show_default=False
    ),
    notebooks: Path | None = typer.Option(
        None,
        "--notebooks",
        help="JupyterLab's root folder (default: ./notebooks when there is one, else this folder).",
        show_default=False,
    ),
) -> None:
    """Start a shared runner and JupyterLab on the notebooks; every notebook joins the same session.

    After ``--``, a command to run instead of JupyterLab (e.g. papermill), with the same environment.
    """
    from beacon.harness.launcher import EmbeddedRunner, EmbeddedRunnerError
    from beacon.harness.session import SESSION_FILE_ENV, write_session_file

    console = Console(stderr=True)
    folder = (run_dir or default_run_dir()).resolve()
    (folder / "results").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    embedded: EmbeddedRunner | None = None
    runner_log: Path | None = None
    if not runner:
        embedded = EmbeddedRunner(data_dir=folder / "runner")
        try:
            embedded.start()
        except EmbeddedRunnerError as exc:
            console.print(f"[red]the embedded runner did not start: {exc}[/]")
            raise typer.Exit(2) from None
        assert embedded.credentials is not None
        env.update(embedded.credentials.env({**TOKEN_ENVS, "signing_key": SIGNING_KEY_ENV}))
        runner = embedded.url
        runner_log = embedded.log_path
    session_file = write_session_file(
        folder / "session.json",
        runner_url=runner,
        run_dir=folder,
        token_envs=TOKEN_ENVS,
        signing_key_env=SIGNING_KEY_ENV,
        runner_log=runner_log,
        written_by="beacon lab",
    )
    env[SESSION_FILE_ENV] = str(session_file)
    root = notebooks or (Path("notebooks") if Path("notebooks").is_dir() else Path.cwd())
    command = list(ctx.args) or ["jupyter", "lab", f"--ServerApp.root_dir={root.resolve()}"]
    console.print(f"runner {runner}; run folder {folder}; session file {session_file}")
    console.print(f"running: {' '.join(command)}")
    try:
        status = subprocess.run(command, env=env, check=False).returncode
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/]")
        status = 127
    except KeyboardInterrupt:
        status = 130
    finally:
        if embedded is not None:
            embedded.stop()
    raise typer.Exit(status)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beacon`` app."""
    app.command("lab", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(lab)
