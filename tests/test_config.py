"""Settings from the environment: good values are read, bad ones stop start-up naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beacon.config import ConfigError, load_settings
from beacon.keys import Ed25519Key


@pytest.fixture
def env(
    make_settings: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> pytest.MonkeyPatch:
    """A clean environment (make_settings strips Beacon's variables) with a private data dir."""
    make_settings()
    monkeypatch.setenv("BEACON_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://db/beacon"),
        ("BEACON_MODE", "production"),
        ("GIN_MODE", "fast"),
        ("RATE_LIMIT_PER_MINUTE", "-1"),
        ("RATE_LIMIT_PER_MINUTE", "lots"),
        ("SUBMIT_RATE_LIMIT_PER_MINUTE", "-5"),
        ("BEACON_MAX_BODY_BYTES", "0"),
        ("TIMESTAMP_MAX_SKEW_SECONDS", "0"),
        ("CORS_ORIGINS", "https://projectbeacon.netlify.app,*"),
        ("TRUSTED_KEYS", "[{not json"),
        ("TRUSTED_KEYS", '{"kid": "a"}'),
        ("TRUSTED_KEYS", "[1]"),
        ("TRUSTED_KEYS", '[{"kid": "a", "public_key": "zzz"}]'),
        ("TRUSTED_KEYS", '[{"kid": "a", "public_key": "' + "A" * 43 + '=", "status": "paused"}]'),
        ("TRUSTED_KEYS", "/no/such/trusted-keys.json"),
        ("TRUSTED_KEYS_FILE", "/no/such/trusted-keys.json"),
        ("BEACON_REGION_BACKENDS", '{"MARS": "llamacpp"}'),
        ("BEACON_ACCEPT_GO_STRIP", "perhaps"),
        ("BEACON_TRUSTED_PROXIES", "10.0.0.1,proxy.internal"),
        ("BEACON_TRUSTED_PROXIES", "*"),
        ("BEACON_TRUST_FORWARDED_FOR", "true"),
    ],
)
def test_a_bad_value_names_its_variable(env: pytest.MonkeyPatch, variable: str, value: str) -> None:
    env.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert variable in str(refused.value)


def test_release_mode_allows_no_development_origin_by_default(env: pytest.MonkeyPatch) -> None:
    # Issue 16, item 8: the default list allowed http://localhost origins in release mode too.
    assert "http://localhost:5173" in load_settings().cors_origins  # debug: the dev servers
    env.setenv("GIN_MODE", "release")
    assert load_settings().cors_origins == ["https://projectbeacon.netlify.app"]
    env.setenv("CORS_ORIGINS", "https://portal.example,http://localhost:3000")  # an operator's choice
    assert load_settings().cors_origins == ["https://portal.example", "http://localhost:3000"]


def test_trusted_proxies_are_addresses_or_networks(env: pytest.MonkeyPatch) -> None:
    assert load_settings().trusted_proxies == []  # no forwarded header is believed by default
    env.setenv("BEACON_TRUSTED_PROXIES", " 10.0.0.5, 10.1.0.0/16 ,::1")
    assert load_settings().trusted_proxies == ["10.0.0.5/32", "10.1.0.0/16", "::1/128"]


def test_the_plans_variables_are_read(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = Ed25519Key.generate()
    keys_file = tmp_path / "trusted.json"
    keys_file.write_text(json.dumps([{"kid": "file", "public_key": Ed25519Key.generate().public_key_b64}]))
    env.setenv("ADMIN_TOKENS", "a1, a2,,")
    env.setenv("OPERATOR_TOKENS", "o1")
    env.setenv("VIEWER_TOKENS", "")
    env.setenv(
        "TRUSTED_KEYS", json.dumps([{"kid": "dev", "public_key": key.public_key_b64, "status": "active"}])
    )
    env.setenv("TRUSTED_KEYS_FILE", str(keys_file))
    env.setenv("DATABASE_URL", "postgres://beacon@db.example:5432/beacon")
    env.setenv("REDIS_URL", "redis://cache:6379/0")
    env.setenv("IPFS_URL", "http://ipfs:5001")
    env.setenv("YAGNA_URL", "http://yagna:7465")
    env.setenv("OLLAMA_HOST", "http://gpu:11434")
    env.setenv("GIN_MODE", "release")
    env.setenv("CORS_ORIGINS", "https://projectbeacon.netlify.app/, http://localhost:3000")
    env.setenv("RATE_LIMIT_PER_MINUTE", "120")
    env.setenv("SUBMIT_RATE_LIMIT_PER_MINUTE", "0")
    settings = load_settings()
    assert settings.admin_tokens == ["a1", "a2"]
    assert settings.operator_tokens == ["o1"]
    assert settings.viewer_tokens == []
    assert [entry["kid"] for entry in settings.trusted_key_entries] == ["dev", "file"]
    assert settings.database_url == "postgresql+asyncpg://beacon@db.example:5432/beacon"
    assert settings.redis_url == "redis://cache:6379/0"
    assert (settings.ipfs_url, settings.yagna_url, settings.ollama_host) == (
        "http://ipfs:5001",
        "http://yagna:7465",
        "http://gpu:11434",
    )
    assert settings.release
    assert settings.cors_origins == ["https://projectbeacon.netlify.app", "http://localhost:3000"]
    assert (settings.rate_limit_per_minute, settings.submit_rate_limit_per_minute) == (120, 0)


def test_trusted_keys_may_be_a_path(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    keys_file = tmp_path / "trusted.json"
    keys_file.write_text(json.dumps([{"kid": "p", "public_key": Ed25519Key.generate().public_key_b64}]))
    env.setenv("TRUSTED_KEYS", str(keys_file))
    assert [e["kid"] for e in load_settings().trusted_key_entries] == ["p"]


def test_beacon_serve_refuses_to_start_and_says_why(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environment = {**os.environ, "DATABASE_URL": "mysql://db/beacon", "BEACON_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "beacon"), "serve", "--port", "0"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
