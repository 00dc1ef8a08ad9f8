"""The auditor's commands against a real runner over HTTP: verify-note, monitor (and its fork alarm),
verify-receipt, verify-bundle."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from beacon.canonical import jcs
from beacon.cli import app
from beacon.config import Settings
from beacon.keys import Ed25519Key, write_key_file
from beacon.store import Database
from beacon.transparency.log import LeafInput, TransparencyLog
from beacon.transparency.note import Signer, Verifier, sign_note

cli = CliRunner()
ORIGIN = "beacon.local/tlog"
KEY = Ed25519Key.from_seed(b"\x07" * 32)
VKEY = Verifier(ORIGIN, KEY.public_key).vkey


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Runner:
    """A runner API on a loopback port (uvicorn in a thread) over its own SQLite file."""

    def __init__(self, settings: Settings) -> None:
        from beacon.api.app import create_app

        self.settings = settings
        self.url = f"http://127.0.0.1:{free_port()}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host="127.0.0.1",
                port=int(self.url.rsplit(":", 1)[1]),
                log_level="warning",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Runner:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "runner did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def append(self, n: int, prefix: str) -> list[bytes]:
        entries = [jcs({"ref": f"{prefix}-{i}"}) for i in range(n)]

        async def go() -> None:
            db = Database(self.settings.effective_database_url)
            log = TransparencyLog(db, Signer(ORIGIN, KEY))
            async with db.begin() as conn:
                await log.append_many(
                    conn, [LeafInput("receipt", f"{prefix}-{i}", e) for i, e in enumerate(entries)]
                )
            await db.close()

        asyncio.run(go())
        return entries


@pytest.fixture
def runner_settings(make_settings: Callable[..., Any], tmp_path: Path) -> Callable[[str], Settings]:
    key_file = tmp_path / "runner-key.json"
    write_key_file(KEY, key_file)

    def build(name: str) -> Settings:
        return make_settings(
            data_dir=tmp_path / name, runner_key_file=key_file, log_origin=ORIGIN, checkpoint_interval_s=3600
        )

    return build


@pytest.fixture
def runner(runner_settings: Callable[[str], Settings]) -> Iterator[Runner]:
    with Runner(runner_settings("a")) as running:
        yield running


def run(*args: str) -> tuple[int, Any]:
    result = cli.invoke(app, list(args))
    try:
        return result.exit_code, json.loads(result.stdout)
    except json.JSONDecodeError:
        return result.exit_code, result.stdout


def test_verify_note(tmp_path: Path) -> None:
    note = tmp_path / "note"
    note.write_text(sign_note(f"{ORIGIN}\n3\n{'A' * 43}=\n", [Signer(ORIGIN, KEY)]))
    code, verdict = run("tlog", "verify-note", str(note), "--vkey", VKEY)
    assert code == 0 and verdict["verified_by"] == [ORIGIN] and verdict["checkpoint"]["size"] == 3
    other = Verifier(ORIGIN, Ed25519Key.generate().public_key).vkey
    assert run("tlog", "verify-note", str(note), "--vkey", other)[0] == 1
    assert run("tlog", "verify-note", str(note))[0] == 3
    note.write_text(note.read_text().replace("\n3\n", "\n4\n"))
    assert run("tlog", "verify-note", str(note), "--vkey", VKEY)[0] == 1


def test_monitor_follows_and_detects_a_fork(
    runner: Runner, runner_settings: Callable[[str], Settings], tmp_path: Path
) -> None:
    state = tmp_path / "monitor.json"
    runner.append(3, "a")
    code, out = run("tlog", "monitor", runner.url, "--vkey", VKEY, "--state", str(state), "--once")
    assert code == 0 and out["event"] == "first" and out["size"] == 3
    runner.append(4, "b")
    from beacon.client import BeaconClient

    with BeaconClient(runner.url) as client:
        client.inclusion_proof(6)  # publishes a checkpoint on demand (the interval is an hour here)
    code, lines = run(
        "tlog",
        "monitor",
        runner.url,
        "--vkey",
        VKEY,
        "--state",
        str(state),
        "--max-polls",
        "2",
        "--interval",
        "0.1",
    )
    events = [json.loads(line) for line in lines.splitlines()] if isinstance(lines, str) else [lines]
    assert (
        code == 0
        and events[0]["event"] == "grew"
        and events[0]["size"] == 7
        and events[-1]["event"] == "same"
    )
    # The same key and origin serving a different history: a fork.
    runner.__exit__()
    with Runner(runner_settings("b")) as forked:
        forked.append(9, "z")
        with BeaconClient(forked.url) as client:
            client.inclusion_proof(0)
        # No --vkey: the key pinned in the state file is used, not whatever the runner offers.
        assert json.loads(state.read_text())["vkeys"] == [VKEY]
        code, verdict = run("tlog", "monitor", forked.url, "--state", str(state), "--once")
    assert code == 2 and "not consistent" in verdict["fork"]


def test_verify_receipt_with_runner_and_proof_file(runner: Runner, tmp_path: Path) -> None:
    from beacon.signing import sign_document

    receipt = sign_document({"kind": "test-receipt", "n": 1}, KEY)

    async def log_it() -> None:
        db = Database(runner.settings.effective_database_url)
        async with db.begin() as conn:
            await TransparencyLog(db, Signer(ORIGIN, KEY)).append(
                conn, kind="receipt", ref="rc-1", entry=jcs(receipt)
            )
        await db.close()

    runner.append(2, "pad")
    asyncio.run(log_it())
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps({"receipt": receipt, "leaf_index": 2}))
    code, verdict = run(
        "verify-receipt", str(path), "--runner-key", KEY.public_key_b64, "--runner", runner.url
    )
    assert code == 0, verdict
    assert verdict["leaf_index"] == 2 and verdict["checkpoint"]["size"] == 3
    # Offline, with a saved tlog-proof.
    from beacon.client import BeaconClient

    with BeaconClient(runner.url) as client:
        (tmp_path / "proof.txt").write_text(client.inclusion_proof(2)["tlog_proof"])
    path.write_text(json.dumps(receipt))
    code, verdict = run(
        "verify-receipt",
        str(path),
        "--runner-key",
        KEY.public_key_b64,
        "--proof",
        str(tmp_path / "proof.txt"),
    )
    assert code == 0 and verdict["leaf_index"] == 2
    # A changed receipt fails its signature; a proof for another leaf fails inclusion.
    path.write_text(json.dumps({**receipt, "n": 2}))
    assert run("verify-receipt", str(path), "--runner-key", KEY.public_key_b64)[0] == 1
    with BeaconClient(runner.url) as client:
        (tmp_path / "proof.txt").write_text(client.inclusion_proof(1)["tlog_proof"])
    path.write_text(json.dumps(receipt))
    code, verdict = run(
        "verify-receipt",
        str(path),
        "--runner-key",
        KEY.public_key_b64,
        "--proof",
        str(tmp_path / "proof.txt"),
    )
    assert code == 1 and "inclusion" in verdict["error"]


def test_verify_receipt_checks_an_execution_receipt_with_each_runner_key(tmp_path: Path) -> None:
    from beacon.receipts import issue_receipt_with_leaf
    from beacon.signing import sign_document
    from tests.test_receipts import FACTS

    rotated = Ed25519Key.from_seed(b"\x08" * 32)
    receipt = issue_receipt_with_leaf(FACTS, KEY)[0]
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    keys = ("--runner-key", rotated.public_key_b64, "--runner-key", KEY.public_key_b64)
    code, verdict = run("verify-receipt", str(path), *keys)
    assert code == 0 and verdict["signed_by"] == KEY.public_key_b64
    assert verdict["inclusion"].startswith("not checked")
    # Validly signed, but its id does not derive from (execution_id, attempt): the receipt check refuses it.
    path.write_text(json.dumps(sign_document({**receipt, "attempt": 3}, KEY)))
    code, verdict = run("verify-receipt", str(path), *keys)
    assert code == 1 and "receipt_id does not match" in verdict["error"]
    # An execution document's output must be the output its receipt hashes.
    path.write_text(json.dumps({"receipt": receipt, "output": receipt["output"]["text"]}))
    assert run("verify-receipt", str(path), *keys)[0] == 0
    path.write_text(json.dumps({"receipt": receipt, "output": "another answer"}))
    code, verdict = run("verify-receipt", str(path), *keys)
    assert code == 1 and "output given" in verdict["error"]


def test_verify_bundle_file_and_cid(tmp_path: Path, runner: Runner) -> None:
    from beacon.canonical import jcs as canonical
    from beacon.signing import sign_document
    from beacon.transparency.bundle import FORMAT

    bundle = sign_document(
        {
            "format": FORMAT,
            "job_id": "j",
            "jobspec": "{}",
            "jobspec_sha256": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "receipts": [],
            "proofs": [],
            "checkpoint": sign_note(
                f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", [Signer(ORIGIN, KEY)]
            ),
            "log": {"origin": ORIGIN, "vkey": VKEY},
            "diff": None,
        },
        KEY,
    )
    path = tmp_path / "bundle.json"
    path.write_bytes(canonical(bundle))
    code, report = run("verify-bundle", str(path), "--runner-key", KEY.public_key_b64)
    assert code == 0, report
    path.write_bytes(canonical({**bundle, "job_id": "other"}))
    assert run("verify-bundle", str(path), "--runner-key", KEY.public_key_b64)[0] == 1
    assert run("verify-bundle", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")[0] == 3
    assert (
        run(
            "verify-bundle",
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            "--runner",
            runner.url,
        )[0]
        == 3
    )
