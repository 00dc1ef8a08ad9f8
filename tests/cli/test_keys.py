"""Key tooling: beacon keys/sign/verify and the jobspec-signer compatibility command."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from typer.testing import CliRunner

from beacon.cli import app
from beacon.intake import Scheme, sign_jobspec, stamp, verify_jobspec
from beacon.keys import Ed25519Key, read_key_file

runner = CliRunner()
JOBSPEC = {"id": "day1-001", "version": "1", "benchmark": "noop", "container": {"image": "noop"}}
LEGACY_JOBSPEC = {
    "id": "day1-001",
    "version": "1",
    "benchmark": {"name": "noop", "container": {"image": "noop"}},
}
"""The same job in the original runner's shape: the only shape the legacy schemes are for."""
BIN = Path(sys.executable).parent


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_generate_writes_a_private_key_file_and_prints_its_trusted_entry(tmp_path: Path) -> None:
    target = tmp_path / "dev-key.json"
    result = invoke("keys", "generate", "-o", str(target))
    assert result.exit_code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    key = read_key_file(target)
    entry = json.loads(result.stdout)
    assert entry == {"kid": key.kid, "public_key": key.public_key_b64, "status": "active"}
    assert invoke("keys", "generate", "-o", str(target)).exit_code == 2  # no silent overwrite
    assert read_key_file(target).public_key == key.public_key
    assert invoke("keys", "generate", "-o", str(target), "--force").exit_code == 0
    assert read_key_file(target).public_key != key.public_key


def test_the_go_key_formats_are_read(tmp_path: Path) -> None:
    key = Ed25519Key.generate()
    forms = {
        "bare-64.key": key.private_key_b64,  # sigtool keygen: base64(seed ‖ public), no newline
        "printed.txt": f"Private Key: {key.private_key_b64}\nPublic Key: {key.public_key_b64}\n",  # jobspec-signer -generate-key
        "seed.key": __import__("base64").b64encode(key.seed).decode(),  # the portal's 32-byte seed
    }
    for name, text in forms.items():
        (tmp_path / name).write_text(text)
        shown = json.loads(invoke("keys", "show", str(tmp_path / name)).stdout)
        assert shown["public_key"] == key.public_key_b64, name
    generated = tmp_path / "go.key"
    assert invoke("keys", "generate", "-o", str(generated), "--format", "go").exit_code == 0
    assert len(__import__("base64").b64decode(generated.read_text())) == 64
    assert (tmp_path / "go.key.pub").read_text() == read_key_file(generated).public_key_b64


def test_sign_adds_replay_fields_and_a_verifiable_signature(tmp_path: Path) -> None:
    invoke("keys", "generate", "-o", str(tmp_path / "k.json"))
    source = write(tmp_path / "jobspec.json", {**JOBSPEC, "metadata": {"nonce": "keep-me"}})
    target = tmp_path / "jobspec.signed.json"
    result = invoke("sign", "-k", str(tmp_path / "k.json"), "-i", str(source), "-o", str(target))
    assert result.exit_code == 0
    text = target.read_text()
    assert text.startswith('{\n  "id"')  # two-space indentation, like the Go signer
    signed = json.loads(text)
    assert signed["metadata"]["nonce"] == "keep-me"
    assert signed["metadata"]["timestamp"].endswith("Z")
    assert verify_jobspec(signed).scheme is Scheme.JCS
    assert signed["public_key"] == read_key_file(tmp_path / "k.json").public_key_b64


@pytest.mark.parametrize("scheme", ["go-strip", "portal-v1"])
def test_sign_can_produce_the_legacy_schemes(tmp_path: Path, scheme: str) -> None:
    invoke("keys", "generate", "-o", str(tmp_path / "k.json"))
    document = {**LEGACY_JOBSPEC, "benchmark": {**LEGACY_JOBSPEC["benchmark"], "description": "Q&A <b>"}}
    source = write(tmp_path / "in.json", document)
    result = invoke("sign", "-k", str(tmp_path / "k.json"), "-i", str(source), "--scheme", scheme)
    assert result.exit_code == 0
    assert verify_jobspec(json.loads(result.stdout)).scheme == scheme


def test_sign_refuses_a_legacy_scheme_for_a_document_not_in_the_legacy_shape(tmp_path: Path) -> None:
    invoke("keys", "generate", "-o", str(tmp_path / "k.json"))
    source = write(tmp_path / "in.json", JOBSPEC)
    result = invoke("sign", "-k", str(tmp_path / "k.json"), "-i", str(source), "--scheme", "go-strip")
    assert result.exit_code == 2
    assert "benchmark is not an object" in result.stderr


def test_sign_signs_the_context_line_and_the_rfc8785_bytes(tmp_path: Path) -> None:
    # Checked with the reference rfc8785 package and PyNaCl, not Beacon's own helpers.
    invoke("keys", "generate", "-o", str(tmp_path / "k.json"))
    result = invoke("sign", "-k", str(tmp_path / "k.json"), "-i", str(write(tmp_path / "in.json", JOBSPEC)))
    signed = json.loads(result.stdout)
    body = {k: v for k, v in signed.items() if k not in ("signature", "public_key")}
    message = b"beacon-jobspec/v1\n" + rfc8785.dumps(body)
    VerifyKey(base64.b64decode(signed["public_key"])).verify(message, base64.b64decode(signed["signature"]))
    with pytest.raises(BadSignatureError):  # the bare JCS bytes are not what is signed
        VerifyKey(base64.b64decode(signed["public_key"])).verify(
            rfc8785.dumps(body), base64.b64decode(signed["signature"])
        )


def test_sign_refuses_a_portal_v1_document_with_unsigned_values(tmp_path: Path) -> None:
    invoke("keys", "generate", "-o", str(tmp_path / "k.json"))
    source = write(
        tmp_path / "in.json", {**LEGACY_JOBSPEC, "constraints": {"max_cost": 0, "regions": ["EU"]}}
    )
    result = invoke("sign", "-k", str(tmp_path / "k.json"), "-i", str(source), "--scheme", "portal-v1")
    assert result.exit_code == 2
    assert "constraints.max_cost" in result.stderr


@pytest.fixture
def signed_file(tmp_path: Path) -> tuple[Path, Ed25519Key]:
    key = Ed25519Key.generate()
    return write(tmp_path / "signed.json", sign_jobspec(stamp(JOBSPEC), key)), key


def trusted(key: Ed25519Key, **extra: Any) -> str:
    return json.dumps([{"kid": "dev", "public_key": key.public_key_b64, **extra}])


def test_verify_prints_a_verdict_and_exits_0(signed_file: tuple[Path, Ed25519Key]) -> None:
    path, key = signed_file
    result = invoke("verify", str(path))
    assert result.exit_code == 0
    verdict = json.loads(result.stdout)
    assert {k: verdict[k] for k in ("valid", "scheme", "public_key", "kid", "key_status")} == {
        "valid": True,
        "scheme": "jcs",
        "public_key": key.public_key_b64,
        "kid": key.kid,
        "key_status": "unchecked",
    }
    checked = invoke("verify", str(path), "--trusted-keys", trusted(key))
    assert checked.exit_code == 0
    assert (json.loads(checked.stdout)["kid"], json.loads(checked.stdout)["key_status"]) == ("dev", "trusted")


def test_verify_exit_codes(tmp_path: Path, signed_file: tuple[Path, Ed25519Key]) -> None:
    path, key = signed_file
    tampered = json.loads(path.read_text())
    tampered["version"] = "2"
    unsigned = write(tmp_path / "unsigned.json", JOBSPEC)
    keys_file = tmp_path / "trusted.json"
    keys_file.write_text(trusted(key, status="revoked"))
    cases = [
        (["verify", str(write(tmp_path / "t.json", tampered))], 1, "signature_mismatch"),
        (["verify", str(unsigned)], 1, "signature_missing"),
        (["verify", str(path), "--trusted-keys", trusted(Ed25519Key.generate())], 2, "key_unknown"),
        (["verify", str(path), "--trusted-keys", str(keys_file)], 2, "key_revoked"),
        (
            ["verify", str(path), "--trusted-keys", trusted(key, not_after="2020-01-01T00:00:00Z")],
            2,
            "key_expired",
        ),
    ]
    for args, code, reason in cases:
        result = invoke(*args)
        assert result.exit_code == code, (args, result.stdout)
        assert json.loads(result.stdout)["reason"] == reason
    (tmp_path / "broken.json").write_text("{not json")
    assert invoke("verify", str(tmp_path / "missing.json")).exit_code == 3
    assert invoke("verify", str(tmp_path / "broken.json")).exit_code == 3
    assert invoke("verify", str(write(tmp_path / "list.json", [1]))).exit_code == 3
    assert invoke("verify", str(path), "--trusted-keys", "/no/such/file").exit_code == 3
    assert invoke("verify", str(path), "--trusted-keys", '[{"kid": 1}]').exit_code == 3
    for not_entries in ("[1]", '["dev"]', '{"kid": "dev"}'):  # a clear refusal, not a traceback
        assert invoke("verify", str(path), "--trusted-keys", not_entries).exit_code == 3


def test_verify_can_refuse_legacy_schemes(tmp_path: Path) -> None:
    document = sign_jobspec(
        stamp({**LEGACY_JOBSPEC, "benchmark": {**LEGACY_JOBSPEC["benchmark"], "description": "a&b"}}),
        Ed25519Key.generate(),
        Scheme.GO_STRIP,
    )
    path = write(tmp_path / "legacy.json", document)
    assert json.loads(invoke("verify", str(path)).stdout)["scheme"] == "go-strip"
    assert invoke("verify", str(path), "--no-legacy").exit_code == 1


def test_submit_says_what_is_wrong_with_the_runner_url(signed_file: tuple[Path, Ed25519Key]) -> None:
    path, _ = signed_file
    for url in ("runner.example", "http://[::", "http://127.0.0.1:port"):
        refused = invoke("submit", str(path), "--runner", url)
        assert refused.exit_code == 2 and "--runner" in refused.output, (url, refused.output)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    unreachable = invoke("submit", str(path), "--runner", f"http://127.0.0.1:{closed}", "--timeout", "5")
    assert unreachable.exit_code == 2 and "cannot reach" in unreachable.output


def test_the_plans_jobspec_signer_commands_work_verbatim(tmp_path: Path) -> None:
    """`./jobspec-signer generate-keypair -o dev-key.json` and `sign -k … -i ./jobspec.json -o ./jobspec.signed.json`."""
    write(tmp_path / "jobspec.json", JOBSPEC)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    generated = run("jobspec-signer generate-keypair -o dev-key.json")
    assert generated.returncode == 0, generated.stderr
    public_key = read_key_file(tmp_path / "dev-key.json").public_key_b64
    assert f"Public Key: {public_key}" in generated.stdout
    signed = run("jobspec-signer sign -k dev-key.json -i ./jobspec.json -o ./jobspec.signed.json")
    assert signed.returncode == 0, signed.stderr
    document = json.loads((tmp_path / "jobspec.signed.json").read_text())
    assert verify_jobspec(document).public_key_b64 == public_key
    verified = run(
        f"jobspec-signer verify ./jobspec.signed.json --trusted-keys '{trusted(read_key_file(tmp_path / 'dev-key.json'))}'"
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["key_status"] == "trusted"
    assert run("jobspec-signer verify ./nope.json").returncode == 3
