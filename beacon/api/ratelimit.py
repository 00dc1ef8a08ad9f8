"""Rate limiting per client and route: GCRA, in Redis (shared by every API process) or in memory.

The limits come from the admin config (``rate_limits.default_per_minute`` and
``rate_limits.submit_per_minute``) and change without a restart; a limit of 0 refuses every request
of its policy (setting the submit limit to 0 halts submissions). Health probes and ``/metrics`` are
exempt. A client is its bearer token's fingerprint when the token is valid, otherwise its address.

Headers (draft-ietf-httpapi-ratelimit-headers, structured-field form, plus the legacy trio):
``RateLimit-Policy: "default";q=600;w=60``, ``RateLimit: "default";r=599;t=1``,
``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (seconds), and on 429
``Retry-After``. GCRA allows a burst of the whole quota and then one request per ``w/q`` seconds.

If Redis fails, the in-process limiter takes over for a few seconds (limits stay enforced per
process rather than failing open or failing every request).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request
from redis.asyncio import Redis

from beacon.api.auth import resolve_role, token_fingerprint
from beacon.api.deps import get_runtime
from beacon.api.problems import Problem
from beacon.api.routing import route_template
from beacon.config import Settings
from beacon.metrics import RATE_LIMITED, RATE_LIMITER_ERRORS

log = logging.getLogger("beacon.ratelimit")

WINDOW_S = 60.0
EXEMPT_PREFIXES = ("/health", "/metrics")
SUBMIT_ROUTES: set[tuple[str, str]] = {("POST", "/api/v1/jobs")}
"""(method, route template) pairs counted against the submit policy; other routes add theirs here."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    """Seconds until the quota is whole again."""
    retry_after_s: float
    """Seconds until the next request would be admitted (0 when allowed)."""

    def headers(self, policy: str) -> dict[str, str]:
        reset = max(0, math.ceil(self.reset_s))
        out = {
            "RateLimit-Policy": f'"{policy}";q={self.limit};w={int(WINDOW_S)}',
            "RateLimit": f'"{policy}";r={self.remaining};t={reset}',
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(reset),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return out


def _zero_quota() -> Decision:
    return Decision(False, 0, 0, WINDOW_S, WINDOW_S)


def gcra(tat: float | None, now: float, limit: int) -> tuple[Decision, float | None]:
    """One GCRA step: the decision and the new theoretical arrival time (None: unchanged)."""
    if limit <= 0:
        return _zero_quota(), None
    interval = WINDOW_S / limit
    tat = max(tat or now, now)
    new_tat = tat + interval
    allow_at = new_tat - WINDOW_S
    if now < allow_at:
        return Decision(False, limit, 0, tat - now, allow_at - now), None
    remaining = math.floor((WINDOW_S - (new_tat - now)) / interval + 1e-9)
    return Decision(True, limit, max(0, remaining), new_tat - now, 0.0), new_tat


class Limiter(Protocol):
    async def hit(self, key: str, limit: int) -> Decision: ...

    async def aclose(self) -> None: ...


class MemoryLimiter:
    """GCRA in a bounded dict (least recently used keys are dropped first)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._tat: OrderedDict[str, float] = OrderedDict()
        self._max_keys = max_keys

    async def hit(self, key: str, limit: int) -> Decision:
        return self.hit_now(key, limit, time.time())

    async def aclose(self) -> None:
        return None

    def hit_now(self, key: str, limit: int, now: float) -> Decision:
        decision, new_tat = gcra(self._tat.get(key), now, limit)
        if new_tat is not None:
            self._tat[key] = new_tat
            self._tat.move_to_end(key)
            while len(self._tat) > self._max_keys:
                self._tat.popitem(last=False)
        return decision


# The same GCRA step on the Redis server's clock, atomically. Floats go back as strings: Redis
# truncates Lua numbers to integers in replies.
_GCRA_LUA = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if now < allow_at then
  return {0, 0, string.format('%.6f', tat - now), string.format('%.6f', allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1)
local remaining = math.floor((window - (new_tat - now)) / interval + 1e-9)
return {1, remaining, string.format('%.6f', new_tat - now), '0'}
"""


class RedisLimiter:
    """GCRA in Redis, shared by every API process; falls back to memory while Redis is failing."""

    def __init__(self, url: str, prefix: str, *, timeout_s: float = 0.5, fallback_s: float = 5.0) -> None:
        self.redis: Redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.prefix = f"{prefix}:ratelimit:"
        self._script = self.redis.register_script(_GCRA_LUA)
        self._fallback = MemoryLimiter()
        self._fallback_s = fallback_s
        self._failing_until = 0.0

    async def hit(self, key: str, limit: int) -> Decision:
        if limit <= 0:
            return _zero_quota()
        if time.monotonic() < self._failing_until:
            return await self._fallback.hit(key, limit)
        try:
            allowed, remaining, reset, retry = await self._script(
                keys=[self.prefix + key], args=[limit, WINDOW_S]
            )
        except Exception as exc:
            RATE_LIMITER_ERRORS.inc()
            self._failing_until = time.monotonic() + self._fallback_s
            log.warning(
                "rate limiter: Redis failed (%s); limiting in memory for %.0fs",
                type(exc).__name__,
                self._fallback_s,
            )
            return await self._fallback.hit(key, limit)
        return Decision(bool(int(allowed)), limit, int(remaining), float(reset), float(retry))

    async def aclose(self) -> None:
        await self.redis.aclose()


def open_limiter(settings: Settings) -> Limiter:
    """The limiter these settings describe: Redis (shared by API replicas) when ``REDIS_URL`` is set."""
    if settings.redis_url:
        return RedisLimiter(settings.redis_url, settings.redis_prefix)
    return MemoryLimiter()


def client_identity(request: Request, settings: Settings) -> str:
    """Who the limits apply to: a valid token's fingerprint, else the client address.

    The address is the peer's, or, from a configured proxy, the right-most untrusted hop of
    X-Forwarded-For (beacon.api.middleware): a client cannot buy fresh quotas with a forged header.
    """
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        # Only configured tokens count: random bearer strings must not buy fresh quotas.
        if scheme.lower() == "bearer" and token and resolve_role(settings, token) is not None:
            return "t:" + token_fingerprint(token)
    client = request.client  # behind BEACON_TRUSTED_PROXIES, the edge has put the forwarded client here
    return "ip:" + (client.host if client else "unknown")


async def enforce_rate_limit(request: Request) -> None:
    """App-wide dependency: count the request against its policy, 429 when over the limit."""
    template = route_template(request.scope)
    if template is None or template.startswith(EXEMPT_PREFIXES):
        return
    runtime = await get_runtime(request)
    config = (await runtime.admin_config.current()).config
    if (request.method, template) in SUBMIT_ROUTES:
        policy, limit = "submit", config.rate_limits.submit_per_minute
    else:
        policy, limit = "default", config.rate_limits.default_per_minute
    identity = client_identity(request, runtime.settings)
    limiter: Limiter = request.app.state.rate_limiter
    decision = await limiter.hit(f"{policy}:{identity}:{request.method} {template}", limit)
    headers = decision.headers(policy)
    request.state.rate_limit_headers = headers
    if not decision.allowed:
        RATE_LIMITED.labels(policy).inc()
        detail = (
            f"the {policy} limit is 0 requests per minute: an operator halted these requests"
            if decision.limit == 0
            else f"more than {decision.limit} requests per minute on this route; retry after {headers['Retry-After']}s"
        )
        raise Problem(429, "rate_limited", "Too many requests", detail, headers=headers, policy=policy)
