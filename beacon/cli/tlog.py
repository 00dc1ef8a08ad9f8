"""CLI: ``beacon tlog verify-note | monitor``, ``beacon verify-receipt``, ``beacon verify-bundle``.

Everything an auditor runs without trusting the runner. Exit codes: :class:`beacon.errors.ExitCode`
(0 verified, 1 does not verify, 2 untrusted: the log forked (monitor), 3 unreadable input or
unreachable runner). Receipts are checked by :func:`beacon.verify.verify_receipt` and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from beacon.errors import ExitCode, VerificationError
from beacon.keys import KeyFileError, read_public_key
from beacon.transparency.bundle import verify_bundle
from beacon.transparency.checkpoint import Checkpoint, CheckpointError
from beacon.transparency.cid import CIDError, compute_cid, parse_cid
from beacon.transparency.note import NoteError, Verifier, open_note
from beacon.verify import ReceiptError, verify_receipt

tlog_app = typer.Typer(
    name="tlog",
    help="Audit a Beacon transparency log: verify signed notes, follow checkpoints and detect forks.",
    no_args_is_help=True,
)
err = Console(stderr=True)

VkeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--vkey",
        help="A log verifier key (C2SP vkey 'name+hexid+base64'), or a file with one per line; repeatable.",
    ),
]
RunnerKeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--runner-key",
        help="The runner's Ed25519 public key (base64, or a key file); repeatable. It signs receipts "
        "and, under the log's origin name, checkpoints.",
    ),
]


def _emit(verdict: dict[str, Any]) -> None:
    typer.echo(json.dumps(verdict, indent=2))


def _fail(code: ExitCode, message: str, **facts: Any) -> typer.Exit:
    _emit({"valid": False, "error": message, **facts})
    return typer.Exit(code)


def _read_text(source: str) -> str:
    try:
        return sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(ExitCode.UNREADABLE, f"cannot read {source}: {exc}") from exc


def _verifiers(vkeys: list[str] | None) -> list[Verifier]:
    out: list[Verifier] = []
    for value in vkeys or []:
        path = Path(value)
        lines = path.read_text(encoding="utf-8").split() if "+" not in value and path.is_file() else [value]
        for line in lines:
            try:
                out.append(Verifier.parse(line))
            except NoteError as exc:
                raise _fail(ExitCode.UNREADABLE, f"--vkey {line[:40]!r}: {exc}") from exc
    return out


def _public_keys(values: list[str] | None) -> list[bytes]:
    keys = []
    for value in values or []:
        try:
            keys.append(read_public_key(value))
        except (KeyFileError, ValueError, OSError) as exc:
            raise _fail(ExitCode.UNREADABLE, f"--runner-key: {exc}") from exc
    return keys


def _log_verifiers(vkeys: list[Verifier], runner_keys: list[bytes], origin: str | None) -> list[Verifier]:
    """The given vkeys, else the runner keys under the checkpoint's origin (Beacon's log key naming)."""
    if vkeys:
        return vkeys
    if origin:
        return [Verifier(origin, key) for key in runner_keys]
    return []


# --- tlog verify-note ---------------------------------------------------------------------------------


@tlog_app.command("verify-note")
def verify_note(
    file: Annotated[
        str, typer.Argument(help="The signed note (a checkpoint, say); '-' reads standard input.")
    ],
    vkey: VkeyOption = None,
) -> None:
    """Verify a C2SP signed note: exit 0 only if a known key verifies it (unknown signers are ignored)."""
    verifiers = _verifiers(vkey)
    if not verifiers:
        raise _fail(ExitCode.UNREADABLE, "give at least one --vkey")
    note = _read_text(file)
    try:
        opened = open_note(note, verifiers)
    except NoteError as exc:
        raise _fail(ExitCode.NOT_VERIFIED, str(exc)) from exc
    verdict: dict[str, Any] = {"valid": True, "verified_by": opened.verified_by()}
    try:
        checkpoint = Checkpoint.parse_text(opened.text)
        verdict["checkpoint"] = {
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": checkpoint.root.hex(),
        }
    except CheckpointError:
        pass  # a signed note that is not a checkpoint
    _emit(verdict)


# --- tlog monitor -------------------------------------------------------------------------------------


@tlog_app.command("monitor")
def monitor(
    url: Annotated[str, typer.Argument(help="The runner's base URL, e.g. http://127.0.0.1:8090")],
    vkey: VkeyOption = None,
    state: Annotated[
        Path | None, typer.Option(help="Remember the last accepted checkpoint here (kept across runs).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls.", min=0.1)] = 10.0,
    max_polls: Annotated[int | None, typer.Option(help="Stop after this many polls.", min=1)] = None,
) -> None:
    """Follow the log's checkpoints, proving each consistent with the last; exit 2 on a fork.

    Without --vkey the keys pinned in --state are used; failing those, the runner's own
    /api/v1/transparency/keys on first use (trust on first use, then pinned in --state).
    """
    from beacon.client import BeaconClient, BeaconError
    from beacon.transparency.monitor import ForkDetected, Monitor, load_state, save_state

    previous, pinned = load_state(state) if state else (None, [])
    verifiers = _verifiers(vkey) or _verifiers(pinned)
    try:
        client = BeaconClient(url)
    except BeaconError as exc:
        raise _fail(ExitCode.UNREADABLE, str(exc)) from exc
    try:
        if not verifiers:
            try:
                verifiers = [Verifier.parse(k["vkey"]) for k in client.log_keys()["keys"]]
            except (BeaconError, KeyError, TypeError, NoteError) as exc:
                raise _fail(ExitCode.UNREADABLE, f"cannot read the log's keys from {url}: {exc}") from exc
            err.print(f"[yellow]trusting the runner's own log key on first use: {verifiers[0].vkey}[/]")
        try:
            follower = Monitor(client, verifiers, previous)
        except CheckpointError as exc:
            raise _fail(
                ExitCode.UNREADABLE, f"--state holds a checkpoint these keys do not verify: {exc}"
            ) from exc
        polls = 1 if once else max_polls
        done = 0
        while polls is None or done < polls:
            if done:
                time.sleep(interval)
            done += 1
            try:
                result = follower.poll()
            except ForkDetected as exc:
                _emit(
                    {
                        "valid": False,
                        "fork": str(exc),
                        "old_checkpoint": exc.old_note,
                        "new_checkpoint": exc.new_note,
                    }
                )
                raise typer.Exit(exc.exit_code) from exc
            except CheckpointError as exc:
                raise _fail(ExitCode.NOT_VERIFIED, f"checkpoint: {exc}") from exc
            except BeaconError as exc:
                err.print(f"[red]poll {done}: {exc}[/]")
                if polls == 1:
                    raise typer.Exit(ExitCode.UNREADABLE) from exc
                continue
            typer.echo(json.dumps({"poll": done, **result.as_dict()}))
            if state:
                save_state(state, follower)
    finally:
        client.close()


# --- verify-receipt -------------------------------------------------------------------------------------


def _load_json(source: str) -> Any:
    try:
        return json.loads(_read_text(source))
    except json.JSONDecodeError as exc:
        raise _fail(ExitCode.UNREADABLE, f"{source} is not JSON: {exc}") from exc


def verify_receipt_command(
    file: Annotated[
        str,
        typer.Argument(
            help="A receipt (JSON), or a document holding one as 'receipt' with 'leaf_index' (and maybe "
            "'proof'), like an execution or an attestation response; '-' reads standard input."
        ),
    ],
    runner_key: RunnerKeyOption = None,
    runner: Annotated[
        str | None, typer.Option(help="Fetch the inclusion proof from this runner URL.")
    ] = None,
    proof: Annotated[str | None, typer.Option(help="A c2sp.org/tlog-proof@v1 file for this receipt.")] = None,
    index: Annotated[
        int | None, typer.Option(help="The receipt's leaf index (with --runner).", min=0)
    ] = None,
    vkey: VkeyOption = None,
) -> None:
    """Verify a receipt offline: its signature, and its inclusion in the log under a signed checkpoint."""
    document = _load_json(file)
    receipt = document.get("receipt") if isinstance(document, dict) and "receipt" in document else document
    if not isinstance(receipt, dict):
        raise _fail(ExitCode.UNREADABLE, "no receipt object in the input")
    keys = _public_keys(runner_key)
    if not keys:
        raise _fail(ExitCode.UNREADABLE, "give the runner's public key with --runner-key (GET /api/v1/keys)")
    # An execution (GET /api/v1/executions/{id}) holds the output its receipt hashes: check that too.
    held = document.get("output") if document is not receipt else None
    output = held if isinstance(held, str) else None
    try:
        # The receipt's own claims first: a forged receipt is "not verified" even where no proof is at hand.
        verified = verify_receipt(receipt, keys, output=output)
        proof_text = _proof_text(document, proof, runner, index)
        if proof_text is not None:
            verified = verify_receipt(
                receipt, keys, proof=proof_text, log_keys=_verifiers(vkey) or None, output=output
            )
    except ReceiptError as exc:
        part = "inclusion" if exc.check == "inclusion" else "signature"
        raise _fail(ExitCode.NOT_VERIFIED, f"{part}: {exc}", receipt_id=receipt.get("receipt_id")) from exc
    verdict: dict[str, Any] = {
        "valid": True,
        "receipt_id": receipt.get("receipt_id"),
        "signed_by": verified.signed_by,
    }
    if verified.checkpoint is None:
        _emit({**verdict, "inclusion": "not checked: give --runner URL (and --index) or --proof FILE"})
        return
    _emit(
        {
            **verdict,
            "leaf_index": verified.leaf_index,
            "checkpoint": {
                "origin": verified.checkpoint.checkpoint.origin,
                "size": verified.checkpoint.size,
                "root": verified.checkpoint.root.hex(),
            },
            "checkpoint_signed_by": list(verified.checkpoint.verified_by),
        }
    )


def _proof_text(document: Any, proof: str | None, runner: str | None, index: int | None) -> str | None:
    if proof is not None:
        return _read_text(proof)
    if isinstance(document, dict) and isinstance(document.get("proof"), str):
        return str(document["proof"])
    if runner is None:
        return None
    if index is None and isinstance(document, dict) and isinstance(document.get("leaf_index"), int):
        index = int(document["leaf_index"])
    if index is None:
        raise _fail(ExitCode.UNREADABLE, "with --runner, give --index (the receipt's leaf index)")
    from beacon.client import BeaconClient, BeaconError

    try:
        with BeaconClient(runner) as client:
            return str(client.inclusion_proof(index)["tlog_proof"])
    except (BeaconError, KeyError) as exc:
        raise _fail(
            ExitCode.UNREADABLE, f"cannot fetch the proof of leaf {index} from {runner}: {exc}"
        ) from exc


# --- verify-bundle ---------------------------------------------------------------------------------------


def verify_bundle_command(
    cid_or_file: Annotated[str, typer.Argument(help="A bundle file, or a bundle's CID to fetch.")],
    runner: Annotated[str | None, typer.Option(help="Fetch the CID from this runner URL.")] = None,
    gateway: Annotated[
        str | None, typer.Option(help="Fetch the CID from this IPFS gateway, e.g. https://ipfs.io")
    ] = None,
    runner_key: RunnerKeyOption = None,
    vkey: VkeyOption = None,
) -> None:
    """Verify a job bundle offline: its CID, signatures, JobSpec hash, every receipt's inclusion proof."""
    path = Path(cid_or_file)
    if path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _fail(ExitCode.UNREADABLE, f"cannot read {path}: {exc}") from exc
        cid = compute_cid(data)
    else:
        try:
            cid = str(parse_cid(cid_or_file))
        except CIDError as exc:
            raise _fail(ExitCode.UNREADABLE, f"{cid_or_file!r} is neither a file nor a CID: {exc}") from exc
        data = _fetch_bundle(cid, runner, gateway)
    try:
        bundle = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(ExitCode.NOT_VERIFIED, f"the bundle is not JSON: {exc}", cid=cid) from exc
    keys = _public_keys(runner_key)
    report = verify_bundle(bundle, runner_public_key=keys or None, vkeys=_verifiers(vkey) or None)
    _emit({"cid": cid, **report.as_dict()})
    raise typer.Exit(ExitCode.VERIFIED if report.ok else ExitCode.NOT_VERIFIED)


def _fetch_bundle(cid: str, runner: str | None, gateway: str | None) -> bytes:
    from beacon.transparency.cid import check_cid

    if runner:
        from beacon.client import BeaconClient, BeaconError

        try:
            with BeaconClient(runner) as client:
                data = client.bundle(cid)
        except BeaconError as exc:
            raise _fail(ExitCode.UNREADABLE, f"cannot fetch {cid} from {runner}: {exc}") from exc
        try:
            check_cid(cid, data)  # the runner checked it; so do we
        except CIDError as exc:
            raise _fail(ExitCode.NOT_VERIFIED, str(exc), cid=cid) from exc
        return data
    if gateway:
        from beacon.transparency.ipfs import ContentError, fetch_from_gateway

        try:
            return asyncio.run(fetch_from_gateway(gateway, cid))
        except ContentError as exc:
            code = exc.exit_code if isinstance(exc, VerificationError) else ExitCode.UNREADABLE
            raise _fail(code, str(exc), cid=cid) from exc
    raise _fail(ExitCode.UNREADABLE, "to fetch a CID give --runner URL or --gateway URL (or pass a file)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beacon`` app."""
    app.add_typer(tlog_app)
    app.command("verify-receipt")(verify_receipt_command)
    app.command("verify-bundle")(verify_bundle_command)
