"""CLI: ``beacon keys generate|show``, ``beacon sign``, ``beacon verify``, ``beacon submit``.

The same operations back the ``jobspec-signer`` compatibility command (beacon/cli/signer.py).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from beacon.errors import ExitCode
from beacon.intake import IntakeError, Scheme, check_document, parse_document, sign_jobspec, stamp
from beacon.keys import (
    Ed25519Key,
    KeyFileError,
    TrustedKeys,
    read_key_file,
    read_trusted_key_entries,
    write_key_file,
)

keys_app = typer.Typer(help="Ed25519 keys for signing JobSpecs.", no_args_is_help=True)


class KeyFormat(StrEnum):
    JSON = "json"
    GO = "go"


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def trusted_entry(key: Ed25519Key, kid: str | None = None) -> dict[str, str]:
    """The key as a TRUSTED_KEYS entry."""
    return {"kid": kid or key.kid, "public_key": key.public_key_b64, "status": "active"}


def generate_key_file(output: Path, *, force: bool, key_format: KeyFormat) -> Ed25519Key:
    """Write a new private key to ``output`` (mode 600); refuses to overwrite without ``force``."""
    if output.exists() and not force:
        raise _fail(f"{output} exists; pass --force to replace it (the old key would be lost)", 2)
    key = Ed25519Key.generate()
    if key_format is KeyFormat.JSON:
        write_key_file(key, output)
    else:  # the Go CLIs' form: bare base64 of seed ‖ public key, plus a .pub file with the public key
        output.parent.mkdir(parents=True, exist_ok=True)
        output.unlink(missing_ok=True)
        output.touch(mode=0o600)
        output.write_text(key.private_key_b64, encoding="ascii")
        output.with_name(output.name + ".pub").write_text(key.public_key_b64, encoding="ascii")
    return key


def load_key(path: Path) -> Ed25519Key:
    try:
        return read_key_file(path)
    except (KeyFileError, ValueError) as exc:
        raise _fail(f"cannot use the key in {path}: {exc}", ExitCode.UNREADABLE) from None


def read_document(path: Path) -> tuple[dict[str, Any], bytes]:
    """A JSON object from ``path`` (``-`` for stdin); exit 3 when it cannot be read."""
    try:
        raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}", ExitCode.UNREADABLE) from None
    try:
        return parse_document(raw), raw
    except IntakeError as exc:
        raise _fail(f"{path}: {exc.detail}", ExitCode.UNREADABLE) from None


def write_document(document: dict[str, Any], output: Path | None) -> None:
    """Two-space indented UTF-8 JSON, like the Go signer's output; stdout when ``output`` is None or ``-``."""
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None or str(output) == "-":
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")


def sign_file(
    key_path: Path, input_path: Path, output: Path | None, *, scheme: Scheme, add_replay_fields: bool
) -> dict[str, Any]:
    key = load_key(key_path)
    document, _ = read_document(input_path)
    if add_replay_fields:
        document = stamp(document)
    try:
        signed = sign_jobspec(document, key, scheme)
    except ValueError as exc:
        raise _fail(f"cannot sign under {scheme}: {exc}", 2) from None
    write_document(signed, output)
    return signed


def load_trusted_keys(source: str) -> TrustedKeys:
    """TRUSTED_KEYS-style input: an inline JSON array, or a path to a file holding one."""
    try:
        return TrustedKeys.from_entries(read_trusted_key_entries(source))
    except ValueError as exc:
        raise _fail(f"trusted keys: {exc}", ExitCode.UNREADABLE) from None


def verify_file(path: Path, trusted_keys: str | None, *, legacy: bool) -> ExitCode:
    document, _ = read_document(path)
    trusted = load_trusted_keys(trusted_keys) if trusted_keys is not None else None
    verdict = check_document(document, trusted, accept_go_strip=legacy, accept_portal_v1=legacy)
    typer.echo(json.dumps(verdict.as_json(), indent=2))
    return verdict.exit_code


SchemeOption = typer.Option(
    Scheme.JCS,
    "--scheme",
    help="jcs (Beacon's scheme: a context line + RFC 8785, the default), or, for documents in the original "
    "runner's shape only, a legacy scheme it understood: go-strip, portal-v1.",
)


@keys_app.command("generate")
def keys_generate(
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the private key (mode 600)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    key_format: KeyFormat = typer.Option(
        KeyFormat.JSON, "--format", help="json (Beacon's key file) or go (bare base64, as the Go CLIs wrote)."
    ),
) -> None:
    """Generate an Ed25519 key for signing JobSpecs; prints its TRUSTED_KEYS entry."""
    key = generate_key_file(output, force=force, key_format=key_format)
    typer.secho(f"private key written to {output} (keep it secret)", err=True)
    typer.echo(json.dumps(trusted_entry(key)))


@keys_app.command("show")
def keys_show(
    key_file: Path = typer.Argument(
        ..., help="A private key file (Beacon JSON, or the Go CLIs' base64 forms)."
    ),
    kid: str | None = typer.Option(None, help="The kid to put in the entry (default: a fingerprint)."),
) -> None:
    """Print the public half of a key as a TRUSTED_KEYS entry (safe to share)."""
    typer.echo(json.dumps(trusted_entry(load_key(key_file), kid)))


def sign(
    key: Path = typer.Option(..., "-k", "--key", help="The private key file."),
    input_path: Path = typer.Option(..., "-i", "--input", help="The JobSpec to sign (- for stdin)."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Where to write the signed JobSpec (default stdout)."
    ),
    scheme: Scheme = SchemeOption,
    no_stamp: bool = typer.Option(
        False, "--no-stamp", help="Do not add metadata.timestamp / metadata.nonce (the runner requires both)."
    ),
) -> None:
    """Sign a JobSpec: adds metadata.timestamp and metadata.nonce when missing, then public_key and signature."""
    signed = sign_file(key, input_path, output, scheme=scheme, add_replay_fields=not no_stamp)
    if output is not None and str(output) != "-":
        typer.secho(f"signed ({scheme}) by {signed['public_key']} → {output}", err=True)


def verify(
    file: Path = typer.Argument(..., help="The signed JobSpec (- for stdin)."),
    trusted_keys: str | None = typer.Option(
        None,
        "--trusted-keys",
        help="TRUSTED_KEYS as inline JSON or a file: also check that the key is trusted.",
    ),
    legacy: bool = typer.Option(
        True, "--legacy/--no-legacy", help="Also accept the go-strip and portal-v1 schemes."
    ),
) -> None:
    """Verify a signed JobSpec offline. Prints {valid, scheme, public_key, kid, key_status, …}.

    Exit codes: 0 valid (and trusted, with --trusted-keys), 1 bad signature, 2 untrusted key, 3 unreadable input.
    """
    raise typer.Exit(verify_file(file, trusted_keys, legacy=legacy))


def _runner_url(value: str) -> str:
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{value!r}: expected the runner's base URL, e.g. http://127.0.0.1:8090")
    return value.strip()


def submit(
    file: Path = typer.Argument(..., help="The signed JobSpec."),
    runner: str = typer.Option(
        ..., "--runner", envvar="BEACON_RUNNER", callback=_runner_url, help="The runner's base URL."
    ),
    idempotency_key: str | None = typer.Option(
        None,
        "--idempotency-key",
        help="Sent as Idempotency-Key: a retry with the same key cannot create a second job.",
    ),
    token: str | None = typer.Option(None, "--token", envvar="BEACON_TOKEN", help="Bearer token (optional)."),
    timeout: float = typer.Option(30.0, help="Seconds to wait for the runner."),
) -> None:
    """POST a signed JobSpec to a runner; prints the runner's JSON answer. Exit 0 on 2xx, 1 on 4xx, 2 otherwise.

    The file's bytes are sent as they are, so the answer's spec_hash is the SHA-256 of the file.
    """
    from beacon.client import BeaconAPIError, BeaconClient, BeaconConnectionError

    _, body = read_document(file)
    try:
        with BeaconClient(runner, token=token or None, timeout=timeout) as client:
            answer = client.submit_job(body, idempotency_key=idempotency_key)  # bytes go out verbatim
    except BeaconConnectionError as exc:
        raise _fail(f"cannot reach {exc.url}: {exc.reason}", 2) from None
    except BeaconAPIError as exc:
        typer.echo(json.dumps(exc.problem, indent=2))
        raise typer.Exit(2 if exc.status >= 500 else 1) from None
    typer.echo(json.dumps(answer, indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``beacon`` app."""
    app.add_typer(keys_app, name="keys")
    app.command()(sign)
    app.command()(verify)
    app.command()(submit)
