"""Settings: the one place that reads the environment.

Every variable the Day-1 plan names is here (``ADMIN_TOKENS``, ``TRUSTED_KEYS``, ``DATABASE_URL`` …).
A bad value stops start-up with a message that names the variable, never a traceback.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REGIONS: tuple[str, ...] = ("US", "EU", "ASIA")
"""Canonical region names. Every accepted spelling is normalised to one of these, once, at intake."""

REGION_ALIASES: dict[str, str] = {
    "US": "US",
    "USA": "US",
    "US-EAST": "US",
    "US-WEST": "US",
    "US-CENTRAL": "US",
    "NA": "US",
    "EU": "EU",
    "EUROPE": "EU",
    "EU-WEST": "EU",
    "EU-CENTRAL": "EU",
    "EU-NORTH": "EU",
    "ASIA": "ASIA",
    "APAC": "ASIA",
    "ASIA-PACIFIC": "ASIA",
    "AP": "ASIA",
    "AP-SOUTHEAST": "ASIA",
    "AP-NORTHEAST": "ASIA",
}

RELEASE_CORS_ORIGINS = ("https://projectbeacon.netlify.app",)
"""The default allowlist in release mode: no http:// development origin (a page any local process
can serve would get credentialed access to the runner)."""

DEFAULT_CORS_ORIGINS = (
    *RELEASE_CORS_ORIGINS,
    "http://localhost:3000",
    "http://localhost:5173",
    "http://localhost:8080",
    "http://127.0.0.1:3000",
    "http://127.0.0.1:5173",
    "http://127.0.0.1:8080",
)


class ConfigError(Exception):
    """A setting could not be read; the message names the environment variable."""


def normalize_region(value: str) -> str | None:
    """Return the canonical region for an accepted spelling, or None if it is unknown."""
    return REGION_ALIASES.get(value.strip().upper().replace("_", "-"))


def canonical_region(value: str) -> str:
    """The canonical region for an accepted spelling; ValueError naming the known ones (for validators)."""
    region = normalize_region(value)
    if region is None:
        raise ValueError(
            f"unknown region {value!r}; known regions: {', '.join(REGIONS)} (and aliases such as APAC)"
        )
    return region


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Runner settings, read from the environment (and an optional ``.env`` file)."""

    model_config = SettingsConfigDict(
        env_file=os.environ.get("BEACON_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- mode -------------------------------------------------------------------------------------
    mode: Literal["debug", "release"] = Field(
        "debug", validation_alias=AliasChoices("BEACON_MODE", "GIN_MODE")
    )
    embedded: bool = Field(False, validation_alias=AliasChoices("BEACON_EMBEDDED"))
    data_dir: Path = Field(Path(".beacon"), validation_alias=AliasChoices("BEACON_DATA_DIR"))
    log_level: str = Field("INFO", validation_alias=AliasChoices("LOG_LEVEL", "BEACON_LOG_LEVEL"))

    # --- auth -------------------------------------------------------------------------------------
    admin_tokens: CsvList = Field(default_factory=list, validation_alias=AliasChoices("ADMIN_TOKENS"))
    operator_tokens: CsvList = Field(default_factory=list, validation_alias=AliasChoices("OPERATOR_TOKENS"))
    viewer_tokens: CsvList = Field(default_factory=list, validation_alias=AliasChoices("VIEWER_TOKENS"))

    # --- signed JobSpecs --------------------------------------------------------------------------
    trusted_keys: str | None = Field(None, validation_alias=AliasChoices("TRUSTED_KEYS", "TRUSTED_KEYS_JSON"))
    trusted_keys_file: Path | None = Field(None, validation_alias=AliasChoices("TRUSTED_KEYS_FILE"))
    require_trusted_key: bool = Field(True, validation_alias=AliasChoices("BEACON_REQUIRE_TRUSTED_KEY"))
    accept_go_strip: bool = Field(True, validation_alias=AliasChoices("BEACON_ACCEPT_GO_STRIP"))
    accept_portal_v1: bool = Field(True, validation_alias=AliasChoices("BEACON_ACCEPT_PORTAL_V1"))
    timestamp_max_skew_s: float = Field(
        300.0, gt=0, validation_alias=AliasChoices("TIMESTAMP_MAX_SKEW_SECONDS")
    )
    timestamp_max_age_s: float = Field(
        600.0, gt=0, validation_alias=AliasChoices("TIMESTAMP_MAX_AGE_SECONDS")
    )
    max_body_bytes: int = Field(1 << 20, gt=0, validation_alias=AliasChoices("BEACON_MAX_BODY_BYTES"))

    # --- stores -----------------------------------------------------------------------------------
    database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL"))
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL"))
    redis_prefix: str = Field("beacon", min_length=1, validation_alias=AliasChoices("BEACON_REDIS_PREFIX"))
    ipfs_url: str | None = Field(None, validation_alias=AliasChoices("IPFS_URL", "IPFS_NODE_URL"))
    ipfs_gateway: str = Field("https://ipfs.io", validation_alias=AliasChoices("IPFS_GATEWAY"))

    # --- backends ---------------------------------------------------------------------------------
    backend: Literal["llamacpp", "ollama", "golem"] = Field(
        "llamacpp", validation_alias=AliasChoices("BEACON_BACKEND")
    )
    region_backends: dict[str, str] = Field(
        default_factory=dict, validation_alias=AliasChoices("BEACON_REGION_BACKENDS")
    )
    default_models: CsvList = Field(
        default_factory=lambda: ["smollm2-135m"], validation_alias=AliasChoices("BEACON_DEFAULT_MODELS")
    )
    ollama_host: str | None = Field(None, validation_alias=AliasChoices("OLLAMA_HOST"))
    ollama_hosts: dict[str, str] = Field(default_factory=dict, validation_alias=AliasChoices("OLLAMA_HOSTS"))
    yagna_url: str | None = Field(None, validation_alias=AliasChoices("YAGNA_URL", "YAGNA_API_URL"))
    yagna_appkey: str | None = Field(None, validation_alias=AliasChoices("YAGNA_APPKEY", "GOLEM_API_KEY"))
    golem_network: str = Field("holesky", validation_alias=AliasChoices("GOLEM_NETWORK"))
    golem_subnet: str = Field("public", validation_alias=AliasChoices("GOLEM_SUBNET"))
    golem_images: dict[str, str] = Field(default_factory=dict, validation_alias=AliasChoices("GOLEM_IMAGES"))
    golem_region_providers: dict[str, list[str]] = Field(
        default_factory=dict, validation_alias=AliasChoices("GOLEM_REGION_PROVIDERS")
    )
    golem_budget_glm: float = Field(1.0, gt=0, validation_alias=AliasChoices("GOLEM_BUDGET_GLM"))
    # executor details (docs/executors.md): model ids map to backend names explicitly, never by guessing
    llamacpp_models: dict[str, Path] = Field(
        default_factory=dict, validation_alias=AliasChoices("LLAMACPP_MODELS")
    )
    llamacpp_threads: int | None = Field(None, ge=1, validation_alias=AliasChoices("LLAMACPP_THREADS"))
    llamacpp_n_ctx: int = Field(2048, ge=256, validation_alias=AliasChoices("LLAMACPP_N_CTX"))
    llamacpp_gpu_layers: int = Field(0, ge=-1, validation_alias=AliasChoices("LLAMACPP_GPU_LAYERS"))
    """Layers offloaded to the GPU: 0 = CPU only, -1 = all (needs a llama.cpp build with a GPU backend)."""
    provider_id: str | None = Field(None, validation_alias=AliasChoices("BEACON_PROVIDER_ID"))
    ollama_models: dict[str, str] = Field(
        default_factory=lambda: {
            "smollm2-135m": "smollm2:135m",
            # the original's three models (reference §7.3), by the tags their images pulled
            "llama3.2:1b": "llama3.2:1b",
            "qwen2.5:1.5b": "qwen2.5:1.5b",
            "mistral:7b": "mistral:7b",
        },
        validation_alias=AliasChoices("OLLAMA_MODELS"),
    )
    embedded_stand_ins: dict[str, str] = Field(
        default_factory=lambda: {
            "llama3.2:1b": "smollm2-135m",
            "qwen2.5:1.5b": "smollm2-135m",
            "mistral:7b": "smollm2-135m",
        },
        validation_alias=AliasChoices("BEACON_EMBEDDED_STAND_INS"),
    )
    """Embedded backend only: model id → the embedded model that answers for it, recorded in every
    receipt (``beacon.executors.stand_ins``); ``{}`` turns stand-ins off."""
    ollama_keep_alive: str = Field("5m", validation_alias=AliasChoices("OLLAMA_KEEP_ALIVE"))
    golem_payment_driver: str = Field("erc20", validation_alias=AliasChoices("GOLEM_PAYMENT_DRIVER"))
    golem_vm_entrypoint: str = Field(
        "/beacon/run-benchmark", validation_alias=AliasChoices("GOLEM_VM_ENTRYPOINT")
    )
    golem_min_mem_gib: float = Field(1.0, gt=0, validation_alias=AliasChoices("GOLEM_MIN_MEM_GIB"))
    golem_min_storage_gib: float = Field(2.0, gt=0, validation_alias=AliasChoices("GOLEM_MIN_STORAGE_GIB"))

    # --- HTTP -------------------------------------------------------------------------------------
    cors_origins: CsvList = Field(
        default_factory=lambda: list(DEFAULT_CORS_ORIGINS),
        validation_alias=AliasChoices("CORS_ORIGINS", "BEACON_CORS_ORIGINS"),
    )
    rate_limit_per_minute: int = Field(600, ge=0, validation_alias=AliasChoices("RATE_LIMIT_PER_MINUTE"))
    submit_rate_limit_per_minute: int = Field(
        600, ge=0, validation_alias=AliasChoices("SUBMIT_RATE_LIMIT_PER_MINUTE")
    )
    trusted_proxies: CsvList = Field(
        default_factory=list, validation_alias=AliasChoices("BEACON_TRUSTED_PROXIES")
    )
    """Addresses/networks of the reverse proxies in front of the API. Only a request from one of them
    has its X-Forwarded-For read, and the client is its right-most address that is not a proxy."""
    trust_forwarded_for: str | None = Field(None, validation_alias=AliasChoices("BEACON_TRUST_FORWARDED_FOR"))
    """Replaced by BEACON_TRUSTED_PROXIES; read only to refuse it (it trusted any peer's header)."""
    access_log: bool = Field(True, validation_alias=AliasChoices("BEACON_ACCESS_LOG"))

    start_wait_s: float = Field(30.0, ge=0, validation_alias=AliasChoices("BEACON_START_WAIT_SECONDS"))
    """How long ``beacon serve`` and ``beacon worker`` wait out an unreachable database at start
    (backing off) before they exit 2 naming it; 0 fails at once."""

    # --- workers ----------------------------------------------------------------------------------
    worker_concurrency: int = Field(1, ge=1, validation_alias=AliasChoices("BEACON_WORKER_CONCURRENCY"))
    max_attempts: int = Field(5, ge=1, validation_alias=AliasChoices("MAX_ATTEMPTS", "BEACON_MAX_ATTEMPTS"))
    heartbeat_interval_s: float = Field(2.0, gt=0, validation_alias=AliasChoices("BEACON_HEARTBEAT_SECONDS"))
    runner_key_file: Path | None = Field(None, validation_alias=AliasChoices("BEACON_RUNNER_KEY_FILE"))
    # queue and pipeline policy (docs/pipeline.md)
    worker_lease_s: float = Field(10.0, gt=0, validation_alias=AliasChoices("BEACON_WORKER_LEASE_SECONDS"))
    """A message whose worker stopped heartbeating for this long is reclaimed by another worker."""
    retry_base_s: float = Field(1.0, gt=0, validation_alias=AliasChoices("BEACON_RETRY_BASE_SECONDS"))
    retry_max_s: float = Field(60.0, gt=0, validation_alias=AliasChoices("BEACON_RETRY_MAX_SECONDS"))
    max_queue_wait_s: float = Field(
        86400.0, gt=0, validation_alias=AliasChoices("BEACON_MAX_QUEUE_WAIT_SECONDS")
    )
    """A job no worker has started within this long times out (queue wait never eats its own budget)."""
    sweep_interval_s: float = Field(5.0, gt=0, validation_alias=AliasChoices("BEACON_SWEEP_SECONDS"))
    relay_batch: int = Field(500, ge=1, le=10000, validation_alias=AliasChoices("BEACON_RELAY_BATCH"))
    finalizer_timeout_s: float = Field(
        120.0, gt=0, validation_alias=AliasChoices("BEACON_FINALIZER_TIMEOUT_SECONDS")
    )
    warm_up: bool = Field(True, validation_alias=AliasChoices("BEACON_WARM_UP"))
    """Workers load BEACON_DEFAULT_MODELS before taking work (no cold start inside a provider timeout)."""
    worker_finalizers: bool = Field(False, validation_alias=AliasChoices("BEACON_WORKER_FINALIZERS"))
    """Run job finalizers (diff report, bundle) in ``beacon worker`` processes too; by default the
    ``beacon serve`` process runs them, so region workers spend their CPU on executions."""
    cancel_wait_s: float = Field(10.0, ge=0, validation_alias=AliasChoices("BEACON_CANCEL_WAIT_SECONDS"))
    """How long ``POST /jobs/{id}/cancel`` waits for running executions to stop before answering 202."""

    # --- transparency log -------------------------------------------------------------------------
    log_origin: str = Field("beacon.local/tlog", validation_alias=AliasChoices("BEACON_LOG_ORIGIN"))
    checkpoint_interval_s: float = Field(
        1.0, ge=0, validation_alias=AliasChoices("BEACON_CHECKPOINT_INTERVAL_SECONDS")
    )
    checkpoint_max_leaves: int = Field(
        256, ge=1, validation_alias=AliasChoices("BEACON_CHECKPOINT_MAX_LEAVES")
    )

    # --- validators -------------------------------------------------------------------------------
    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "admin_tokens",
        "operator_tokens",
        "viewer_tokens",
        "cors_origins",
        "default_models",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_origin(cls, value: list[str]) -> list[str]:
        for origin in value:
            if "*" in origin:
                raise ValueError("wildcard origins are not allowed; list each origin exactly")
        return [origin.rstrip("/") for origin in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        networks = []
        for entry in value:
            try:
                networks.append(str(ipaddress.ip_network(entry, strict=False)))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/8, ::1)"
                ) from None
        return networks

    @field_validator("trust_forwarded_for")
    @classmethod
    def _replaced_setting(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "replaced by BEACON_TRUSTED_PROXIES: list the addresses of the proxies in front of the "
                "runner (X-Forwarded-For is read only from them, right-most untrusted hop)"
            )
        return None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        if value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            return value
        if value.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + value[len("sqlite://") :]
        raise ValueError("expected a postgresql:// or sqlite:// URL")

    @field_validator("region_backends", "ollama_hosts", "golem_region_providers")
    @classmethod
    def _region_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {canonical_region(key): item for key, item in value.items()}

    @model_validator(mode="after")
    def _release_cors_default(self) -> Settings:
        if self.release and "cors_origins" not in self.model_fields_set:
            self.cors_origins = list(RELEASE_CORS_ORIGINS)  # CORS_ORIGINS set explicitly is kept as is
        return self

    @model_validator(mode="after")
    def _trusted_keys_readable(self) -> Settings:
        # Parse once now so that a broken TRUSTED_KEYS stops start-up instead of the first submission.
        self.trusted_key_entries  # noqa: B018
        return self

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> Settings:
        if self.worker_lease_s < 2 * self.heartbeat_interval_s:
            raise ValueError(
                f"BEACON_WORKER_LEASE_SECONDS ({self.worker_lease_s}) must be at least twice "
                f"BEACON_HEARTBEAT_SECONDS ({self.heartbeat_interval_s}), or live workers lose their messages"
            )
        return self

    # --- derived ----------------------------------------------------------------------------------
    @property
    def release(self) -> bool:
        return self.mode == "release"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'beacon.db').resolve()}"

    @cached_property
    def trusted_key_entries(self) -> list[dict[str, Any]]:
        """The raw trusted-key entries from ``TRUSTED_KEYS`` (JSON or a path) and ``TRUSTED_KEYS_FILE``."""
        from beacon.keys import parse_trusted_key_entries, read_trusted_key_entries

        entries: list[dict[str, Any]] = []
        try:  # bad JSON, keys, statuses or validity windows stop start-up here
            if self.trusted_keys:
                entries.extend(read_trusted_key_entries(self.trusted_keys))
        except ValueError as exc:
            raise ValueError(f"TRUSTED_KEYS: {exc}") from exc
        if self.trusted_keys_file:
            text = _read_file("TRUSTED_KEYS_FILE", self.trusted_keys_file)
            try:
                entries.extend(parse_trusted_key_entries(text))
            except ValueError as exc:
                raise ValueError(f"TRUSTED_KEYS_FILE: {exc}") from exc
        return entries

    def backend_for(self, region: str) -> str:
        return self.region_backends.get(region, self.backend)


def environment_variables() -> frozenset[str]:
    """Every environment variable :class:`Settings` reads (all aliases)."""
    names: set[str] = set()
    for info in Settings.model_fields.values():
        if isinstance(info.validation_alias, AliasChoices):
            names.update(str(choice) for choice in info.validation_alias.choices)
    return frozenset(names)


def without_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less every variable that configures Beacon: for runners and tests that must be isolated."""
    names = environment_variables()
    return {k: v for k, v in environ.items() if k not in names and not k.startswith("BEACON_")}


def _read_file(variable: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{variable}: cannot read {path}: {exc.strerror}") from exc


def _env_name(settings_cls: type[BaseSettings], field: str) -> str:
    info = settings_cls.model_fields.get(field)
    if info is None:  # errors are located by the field's first alias (an environment variable name)
        info = next(
            (
                candidate
                for candidate in settings_cls.model_fields.values()
                if isinstance(candidate.validation_alias, AliasChoices)
                and field in [str(choice) for choice in candidate.validation_alias.choices]
            ),
            None,
        )
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices) and alias.choices:
        names = [str(choice) for choice in alias.choices]
        present = {name.upper() for name in os.environ}
        # Name the variable that was actually set (GIN_MODE, not BEACON_MODE, if that is the one).
        return next((name for name in names if name.upper() in present), names[0])
    return field.upper()


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise ConfigError naming the variable on bad values."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ())]
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{_env_name(Settings, loc[0])}: {message}" if loc else message)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
