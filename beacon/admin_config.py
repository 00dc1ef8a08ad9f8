"""The runtime admin configuration: validated, versioned, persisted, cheap to read.

``GET/PUT /admin/config`` and ``POST /admin/config/revert`` operate on it; intake, the rate
limiter and the portal-facing routes read it through ``runtime.admin_config`` (the process's
:class:`AdminConfigStore`, built by ``beacon.boot``). Every change is a new row in ``admin_config_versions`` (who, when, what) plus an ``audit_log`` row, written in one
transaction. Version 0 is the safe default built from the settings; it is never stored, so
reverting to it always works.

Readers get a per-process cache that is replaced on every local change and re-read from the
database at most every ``refresh_s`` seconds, so other API processes see a change within ~1 s.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import IntegrityError

from beacon import audit
from beacon.clock import iso_time
from beacon.config import Settings, canonical_region
from beacon.keys import b64decode
from beacon.models import field_errors
from beacon.store import Database, now
from beacon.store.tables import admin_config_versions

log = logging.getLogger("beacon.admin_config")

MAX_RATE_PER_MINUTE = 10_000_000
_KID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


class _Section(BaseModel):
    # strict: an update is client input like any request body (true is not 1, "5" is not 5)
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, strict=True)


_SECRET_WORDS = frozenset(
    {
        "token", "secret", "password", "passwd", "pwd", "key", "apikey", "appkey", "auth",
        "authorization", "credential", "credentials", "signature", "sig", "session", "sessionid",
    }
)  # fmt: skip
"""Words that make a query parameter a credential: ``?token=``, ``?api_key=``, ``?X-Amz-Signature=``."""


def secret_query_parameters(url: str) -> list[str]:
    """The names of the query parameters of ``url`` that carry a credential (a word of the name is one)."""
    names = [name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)]
    return [name for name in names if _SECRET_WORDS & set(re.split(r"[-_.]", name.lower()))]


def _http_url(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain credentials (they would be shown to every operator)")
    if secret := secret_query_parameters(text):
        raise ValueError(
            f"must not carry a credential in its query ({', '.join(secret)}): it would be shown to every operator"
        )
    return text.rstrip("/")


HttpUrlText = Annotated[str, BeforeValidator(_http_url), Field(max_length=2048)]


def _region(value: Any) -> Any:
    return canonical_region(value) if isinstance(value, str) else value


class TransparencyLogConfig(_Section):
    enabled: bool = True
    endpoint: HttpUrlText = "https://transparency.projectbeacon.dev"


class Features(_Section):
    bias_dashboard: bool = True
    provider_map: bool = True
    ws_live_updates: bool = True


class ConstraintDefaults(_Section):
    default_region: Annotated[Literal["US", "EU", "ASIA"], BeforeValidator(_region)] = "US"
    """The region of a job that names none."""
    max_cost: float = Field(5.0, ge=0, le=1e9)
    """The largest ``constraints.max_cost`` a job may ask for."""
    max_duration: int = Field(900, ge=1, le=86_400)
    """The largest ``constraints.timeout`` a job may ask for, in seconds."""


class SecurityConfig(_Section):
    require_signature: Literal[True] = True
    """Always true: this runner has no unsigned submission path (kept for the original's shape)."""
    allowed_submitter_keys: list[str] = Field(default_factory=list, max_length=1000)
    """When not empty, only these keys (kid or base64 public key) may submit, on top of TRUSTED_KEYS."""

    @field_validator("allowed_submitter_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ValueError(f"item {index}: expected a kid or a base64 public key")
            item = item.strip()
            if not item:
                continue  # the original dropped empty entries; so do we
            if len(item) > 128:
                raise ValueError(f"item {index}: longer than 128 characters")
            if _KID.fullmatch(item) is None:
                try:  # not a kid, so it must be a base64 public key
                    if len(b64decode(item)) != 32:
                        raise ValueError
                except ValueError:
                    raise ValueError(f"item {index}: neither a kid nor a base64 Ed25519 public key") from None
            if item not in out:
                out.append(item)
        return out


class DisplayConfig(_Section):
    maintenance_mode: bool = False
    banner: str = Field("", max_length=500)


class RateLimits(_Section):
    default_per_minute: int = Field(600, ge=0, le=MAX_RATE_PER_MINUTE)
    """Requests per minute per client and route (health and metrics are exempt)."""
    submit_per_minute: int = Field(600, ge=0, le=MAX_RATE_PER_MINUTE)
    """Job submissions per minute per client; 0 halts submissions (the plan's emergency step)."""


class AdminConfig(_Section):
    ipfs_gateway: HttpUrlText = "https://ipfs.io"
    transparency_log: TransparencyLogConfig = Field(default_factory=TransparencyLogConfig)
    features: Features = Field(default_factory=Features)
    constraints: ConstraintDefaults = Field(default_factory=ConstraintDefaults)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    display: DisplayConfig = Field(default_factory=DisplayConfig)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    submissions_paused: bool = False
    """True refuses new submissions with 503 (the queue keeps draining)."""


def safe_default(settings: Settings) -> AdminConfig:
    """Version 0: the configuration a fresh runner starts with, derived from the settings."""
    gateway = urlsplit(settings.ipfs_gateway)
    if gateway.username or gateway.password:  # never carry credentials into a shown config
        gateway = gateway._replace(
            netloc=(gateway.hostname or "") + (f":{gateway.port}" if gateway.port else "")
        )
    if secret := secret_query_parameters(settings.ipfs_gateway):  # nor a ?token= in its query
        kept = [(k, v) for k, v in parse_qsl(gateway.query, keep_blank_values=True) if k not in secret]
        gateway = gateway._replace(query=urlencode(kept))
    return AdminConfig(
        ipfs_gateway=urlunsplit(gateway),
        rate_limits=RateLimits(
            default_per_minute=min(settings.rate_limit_per_minute, MAX_RATE_PER_MINUTE),
            submit_per_minute=min(settings.submit_rate_limit_per_minute, MAX_RATE_PER_MINUTE),
        ),
    )


def deep_merge(base: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``change`` applied: objects merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in change.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = deep_merge(current, value)
        else:
            out[key] = value
    return out


class ConfigUpdateError(ValueError):
    """A change does not validate; ``errors`` are ``[{path, message, type}]``."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


def apply_change(current: AdminConfig, change: Mapping[str, Any]) -> AdminConfig:
    """A partial update applied to ``current``; ConfigUpdateError with field paths if invalid."""
    if not isinstance(change, Mapping):
        raise ConfigUpdateError([{"path": "$", "message": "expected a JSON object", "type": "dict_type"}])
    try:
        return AdminConfig.model_validate(deep_merge(current.model_dump(mode="json"), change))
    except ValidationError as exc:
        raise ConfigUpdateError(field_errors(exc)) from None


class VersionConflict(Exception):
    """``If-Match`` named another version than the current one."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the current version is {current}")
        self.current = current


class NothingToRevert(Exception):
    """There is no earlier version to return to."""


@dataclass(frozen=True)
class ConfigVersion:
    version: int
    config: AdminConfig
    actor: str
    reason: str
    created_at: float | None
    change: dict[str, Any] | None = None

    def as_api(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "reason": self.reason,
            "updated_by": self.actor,
            "updated_at": iso_time(self.created_at),
            "config": self.config.model_dump(mode="json"),
        }


RevertTarget = Literal["previous", "safe_default"] | int
_Built = tuple[AdminConfig, str, dict[str, Any]]
"""What a change produces: the new config, the reason recorded, and the change recorded."""


class AdminConfigStore:
    """Versions of the admin config in the database, with a short-lived in-process cache."""

    def __init__(self, db: Database, settings: Settings, *, refresh_s: float = 1.0) -> None:
        self.db = db
        self.settings = settings
        self.safe_default = safe_default(settings)
        """Version 0 (frozen, so shared): derived once, not on every read of a stored version."""
        self._safe_default_json = self.safe_default.model_dump(mode="json")
        self.refresh_s = refresh_s
        self._cached: ConfigVersion | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    def default_version(self) -> ConfigVersion:
        return ConfigVersion(0, self.safe_default, "system", "safe-default", None)

    async def current(self) -> ConfigVersion:
        """The current version (cached for up to ``refresh_s``)."""
        cached = self._cached
        if cached is not None and time.monotonic() - self._fetched_at < self.refresh_s:
            return cached
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._fetched_at < self.refresh_s:
                return self._cached
            async with self.db.connect() as conn:
                version = await self._latest(conn)
            self._remember(version)
            return version

    def _remember(self, version: ConfigVersion) -> None:
        self._cached = version
        self._fetched_at = time.monotonic()

    def _row_to_version(self, row: Any) -> ConfigVersion:
        stored = row.config if isinstance(row.config, dict) else {}
        try:
            config = AdminConfig.model_validate(deep_merge(self._safe_default_json, stored))
        except ValidationError as exc:
            # A stored version that no longer validates (schema changed) must not take the API down.
            log.error(
                "stored admin config version %s is invalid, using the safe default: %s", row.version, exc
            )
            config = self.safe_default
        return ConfigVersion(row.version, config, row.actor, row.reason, row.created_at, row.change)

    async def _latest(self, conn: Any) -> ConfigVersion:
        row = (
            await conn.execute(
                sa.select(admin_config_versions).order_by(admin_config_versions.c.version.desc()).limit(1)
            )
        ).first()
        return self._row_to_version(row) if row is not None else self.default_version()

    async def _version(self, conn: Any, version: int) -> ConfigVersion | None:
        if version == 0:
            return self.default_version()
        row = (
            await conn.execute(
                sa.select(admin_config_versions).where(admin_config_versions.c.version == version)
            )
        ).first()
        return self._row_to_version(row) if row is not None else None

    async def update(
        self,
        change: Mapping[str, Any],
        *,
        actor: str,
        request_id: str | None = None,
        if_match: int | None = None,
    ) -> ConfigVersion:
        """Apply a partial update as a new version. ConfigUpdateError / VersionConflict on refusal."""

        async def build(current: ConfigVersion) -> _Built:
            if if_match is not None and if_match != current.version:
                raise VersionConflict(current.version)
            return apply_change(current.config, change), "update", dict(change)

        return await self._write(build, actor=actor, request_id=request_id)

    async def revert(
        self, target: RevertTarget = "previous", *, actor: str, request_id: str | None = None
    ) -> ConfigVersion:
        """Make an earlier version (or the safe default) current again, as a new version."""

        async def build(current: ConfigVersion) -> _Built:
            if target == "safe_default":
                return self.safe_default, "revert-safe", {"revert_to": 0, "from": current.version}
            number = current.version - 1 if target == "previous" else int(target)
            if number < 0 or number >= current.version:
                raise NothingToRevert(
                    "no earlier version to revert to"
                    if target == "previous"
                    else f"version {number} is not an earlier version (current is {current.version})"
                )
            async with self.db.connect() as conn:
                earlier = await self._version(conn, number)
            if earlier is None:
                raise NothingToRevert(f"version {number} does not exist")
            return earlier.config, "revert", {"revert_to": number, "from": current.version}

        return await self._write(build, actor=actor, request_id=request_id)

    async def _write(
        self, build: Callable[[ConfigVersion], Awaitable[_Built]], *, actor: str, request_id: str | None
    ) -> ConfigVersion:
        for attempt in range(5):
            async with self.db.connect() as conn:
                current = await self._latest(conn)
            config, reason, change = await build(current)
            created_at = now()
            number = current.version + 1
            try:
                async with self.db.begin() as conn:
                    await conn.execute(
                        admin_config_versions.insert().values(
                            version=number,
                            config=config.model_dump(mode="json"),
                            actor=actor,
                            change=change,
                            reason=reason,
                            created_at=created_at,
                        )
                    )
                    await audit.record(
                        conn,
                        at=created_at,
                        actor=actor,
                        action=f"admin_config.{reason}",
                        target=f"admin_config/{number}",
                        detail={"version": number, "change": change},
                        request_id=request_id,
                    )
            except IntegrityError:
                # Another writer took this version number first: rebuild on top of theirs.
                log.info(
                    "admin config version %s taken concurrently (attempt %s), retrying", number, attempt + 1
                )
                await asyncio.sleep(0.01 * (attempt + 1))
                continue
            version = ConfigVersion(number, config, actor, reason, created_at, change)
            self._remember(version)
            log.info(
                "admin config changed",
                extra={"version": number, "reason": reason, "actor": actor, "request_id": request_id},
            )
            return version
        raise RuntimeError("admin config: could not write a new version after 5 attempts")

    async def history(self, *, limit: int = 50, before: int | None = None) -> list[ConfigVersion]:
        """Stored versions, newest first (version 0, the safe default, is implicit)."""
        query = sa.select(admin_config_versions).order_by(admin_config_versions.c.version.desc()).limit(limit)
        if before is not None:
            query = query.where(admin_config_versions.c.version < before)
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [self._row_to_version(row) for row in rows]
