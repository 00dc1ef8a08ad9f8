"""``jobspec-signer``: the original runner's signing tool, re-implemented so the Day-1 plan's commands work verbatim.

    jobspec-signer generate-keypair -o dev-key.json
    jobspec-signer sign -k dev-key.json -i ./jobspec.json -o ./jobspec.signed.json
    jobspec-signer verify ./jobspec.signed.json [--trusted-keys FILE_OR_JSON]

Reads the original's key files too (a bare base64 64-byte private key, ``Private Key: …`` output,
or a 32-byte seed). Signs with Beacon's primary scheme (jcs) unless ``--scheme`` says otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from beacon.cli.keys import (
    KeyFormat,
    SchemeOption,
    generate_key_file,
    sign_file,
    trusted_entry,
    verify_file,
)
from beacon.intake import Scheme

app = typer.Typer(
    name="jobspec-signer",
    help="Generate Ed25519 keys, sign and verify JobSpecs (compatible with the original runner's tool).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command("generate-keypair")
def generate_keypair(
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the key pair (mode 600)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    key_format: KeyFormat = typer.Option(
        KeyFormat.JSON,
        "--format",
        help="json (Beacon's key file) or go (bare base64 private key + .pub file).",
    ),
) -> None:
    """Generate a key pair; prints the public key and its TRUSTED_KEYS entry."""
    key = generate_key_file(output, force=force, key_format=key_format)
    typer.echo(f"Public Key: {key.public_key_b64}")
    typer.echo(f"Key pair written to {output}")
    typer.echo(f"TRUSTED_KEYS entry: {json.dumps(trusted_entry(key))}")


@app.command("sign")
def sign(
    key: Path = typer.Option(..., "-k", "--key", help="The private key file."),
    input_path: Path = typer.Option(..., "-i", "--input", help="The JobSpec to sign."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Output file (default: <input>.signed.json)."
    ),
    scheme: Scheme = SchemeOption,
    no_stamp: bool = typer.Option(
        False, "--no-stamp", help="Do not add metadata.timestamp / metadata.nonce."
    ),
) -> None:
    """Sign a JobSpec (adds metadata.timestamp and metadata.nonce when missing)."""
    target = output or input_path.with_name(input_path.stem + ".signed.json")
    signed = sign_file(key, input_path, target, scheme=scheme, add_replay_fields=not no_stamp)
    typer.echo(f"Signed JobSpec written to {target} (scheme {scheme}, public key {signed['public_key']})")


@app.command("verify")
def verify(
    file: Path = typer.Argument(..., help="The signed JobSpec."),
    trusted_keys: str | None = typer.Option(
        None, "--trusted-keys", help="TRUSTED_KEYS as inline JSON or a file."
    ),
) -> None:
    """Verify a signed JobSpec. Exit 0 valid, 1 bad signature, 2 untrusted key, 3 unreadable input."""
    raise typer.Exit(verify_file(file, trusted_keys, legacy=True))


def main() -> None:
    """Entry point of the ``jobspec-signer`` console script."""
    app()
