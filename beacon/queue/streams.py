"""Service-mode queues: one Redis Stream per region, read through a consumer group.

Keys (``P`` = ``BEACON_REDIS_PREFIX``; the ``{region}`` hash tag keeps a region's keys in one
Redis Cluster slot so the scripts below stay atomic there too)::

    P:{EU}:q          the stream: every entry is waiting or pending (acknowledged entries are deleted)
    P:{EU}:delayed    ZSET of retries, scored by due time; promoted into the stream when due
    P:control         pub/sub channel for cancel/drain signals

Delivery is FIFO per region (stream order). A consumer renews the lease of its in-flight entries on
every heartbeat (``XCLAIM … JUSTID`` resets their idle time without counting a delivery, and only for
entries it still owns); ``XAUTOCLAIM`` hands entries idle for longer than the lease to a live
consumer. A slow execution therefore keeps its message as long as its worker is alive, and a dead
worker's messages move on one lease later — no fixed lock TTL (failure modes 31 and 33).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import orjson
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from beacon.queue.base import (
    ControlEvent,
    Delivery,
    QueueStats,
    QueueUnavailable,
    message_age,
    retry_payload,
)

GROUP = "workers"

P = ParamSpec("P")
T = TypeVar("T")

_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'p', member)
  redis.call('ZREM', KEYS[1], member)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, nxt[2] or ''}
"""

_RETRY = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
"""

# Renew only entries this consumer still owns: a plain XCLAIM would steal back a message that was
# already reclaimed by another worker. Returns the ids another consumer holds now (lease lost);
# ids that are gone altogether (acknowledged, or lost in a FLUSHALL) are neither renewed nor lost.
_RENEW = """
local lost = {}
for i = 3, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if entry[1] then
    if entry[1][2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      table.insert(lost, ARGV[i])
    end
  end
end
return lost
"""

# Hand messages back at once: make them look idle for a whole lease so XAUTOCLAIM takes them now.
_RELEASE = """
for i = 4, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if entry[1] and entry[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
  end
end
return 1
"""


def _unavailable(func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Report a Redis that cannot be reached as :class:`QueueUnavailable`, the queue's one outage error."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await func(*args, **kwargs)
        except (
            redis_errors.ConnectionError,
            redis_errors.TimeoutError,
            redis_errors.BusyLoadingError,
        ) as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc
        except OSError as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc

    return wrapper


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_payload(raw: Any) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _text(raw)


class RedisStreamsQueue:
    """Region queues on Redis Streams with one consumer group per region stream."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "beacon",
        lease_s: float = 10.0,
        client: aioredis.Redis | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.lease_s = lease_s
        self.redis: aioredis.Redis = client or aioredis.Redis.from_url(
            url,
            socket_connect_timeout=2.0,
            socket_timeout=15.0,
            health_check_interval=15,
        )
        self._promote = self.redis.register_script(_PROMOTE)
        self._retry = self.redis.register_script(_RETRY)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self._groups: set[str] = set()
        self._next_due: dict[str, float] = {}
        self._reclaim_cursor: dict[str, str] = {}

    # --- keys ------------------------------------------------------------------------------------
    def stream_key(self, region: str) -> str:
        return f"{self.prefix}:{{{region}}}:q"

    def delayed_key(self, region: str) -> str:
        return f"{self.prefix}:{{{region}}}:delayed"

    @property
    def control_channel(self) -> str:
        return f"{self.prefix}:control"

    async def _ensure_group(self, region: str) -> None:
        if region in self._groups:
            return
        try:
            # "0": a stream that existed before its group (relay first, FLUSHALL) is read from the start.
            await self.redis.xgroup_create(self.stream_key(region), GROUP, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(region)

    async def _with_group(self, region: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation``; if the group vanished (FLUSHALL, Redis restart), recreate it once."""
        await self._ensure_group(region)
        try:
            return await operation()
        except redis_errors.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups.discard(region)
            self._reclaim_cursor.pop(region, None)
            await self._ensure_group(region)
            return await operation()

    def _deliveries(self, region: str, entries: Sequence[Any], deliveries: int = 1) -> list[Delivery]:
        out = []
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending (Redis < 7 reports it this way)
                continue
            raw = fields.get(b"p") if isinstance(fields, dict) else None
            out.append(Delivery(_text(entry_id), region, _decode_payload(raw), deliveries))
        return out

    # --- work ------------------------------------------------------------------------------------
    @_unavailable
    async def publish(self, region: str, payloads: Sequence[Any]) -> list[str]:
        if not payloads:
            return []
        await self._ensure_group(region)
        key = self.stream_key(region)
        async with self.redis.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.xadd(key, {"p": orjson.dumps(payload)})
            ids = await pipe.execute()
        return [_text(message_id) for message_id in ids]

    async def _promote_due(self, region: str, now: float) -> None:
        if self._next_due.get(region, 0.0) > now:
            return
        count, next_score = await self._promote(
            keys=[self.delayed_key(region), self.stream_key(region)], args=[now, 500]
        )
        if int(count) >= 500:
            self._next_due[region] = 0.0  # more are due: promote again on the next call
        else:
            self._next_due[region] = float(next_score) if next_score else now + self.lease_s

    @_unavailable
    async def consume(self, region: str, consumer: str, *, count: int, block_s: float) -> list[Delivery]:
        key = self.stream_key(region)
        deadline = time.monotonic() + block_s
        while True:
            now = time.time()
            await self._promote_due(region, now)
            remaining = max(0.0, deadline - time.monotonic())
            # Block no longer than until the next retry is due, so it is promoted on time.
            wait_s = min(remaining, max(0.0, self._next_due.get(region, now + remaining) - now))

            async def read(wait_ms: int = int(wait_s * 1000)) -> Any:
                return await self.redis.xreadgroup(
                    GROUP, consumer, {key: ">"}, count=count, block=wait_ms or None
                )

            response = await self._with_group(region, read)
            if response:
                return self._deliveries(region, response[0][1])
            if time.monotonic() >= deadline:
                return []

    @_unavailable
    async def reclaim(self, region: str, consumer: str, *, count: int) -> list[Delivery]:
        key = self.stream_key(region)
        cursor = self._reclaim_cursor.get(region, "0-0")

        async def claim() -> Any:
            return await self.redis.xautoclaim(
                key, GROUP, consumer, min_idle_time=int(self.lease_s * 1000), start_id=cursor, count=count
            )

        response = await self._with_group(region, claim)
        next_cursor, entries = _text(response[0]), response[1]
        self._reclaim_cursor[region] = next_cursor
        claimed = self._deliveries(region, entries)
        if not claimed:
            return []
        # How often each was handed out (XAUTOCLAIM counted this delivery too).
        ids = [delivery.id for delivery in claimed]
        pending = await self.redis.xpending_range(
            key,
            GROUP,
            min=min(ids, key=_id_order),
            max=max(ids, key=_id_order),
            count=len(ids) * 4,
            consumername=consumer,
        )
        counts = {_text(item["message_id"]): int(item["times_delivered"]) for item in pending}
        return [
            Delivery(delivery.id, region, delivery.payload, counts.get(delivery.id, 2))
            for delivery in claimed
        ]

    @_unavailable
    async def renew(self, region: str, consumer: str, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        try:
            lost = await self._renew(keys=[self.stream_key(region)], args=[GROUP, consumer, *ids])
        except redis_errors.ResponseError as exc:
            if "NOGROUP" in str(exc):
                return []  # the queue was flushed: nothing to renew, and nobody else holds them
            raise
        return [_text(message_id) for message_id in lost]

    @_unavailable
    async def release(self, region: str, consumer: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            idle_ms = int(self.lease_s * 1000) + 1
            await self._release(keys=[self.stream_key(region)], args=[GROUP, consumer, idle_ms, *ids])
        except redis_errors.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise

    @_unavailable
    async def ack(self, region: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        key = self.stream_key(region)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(key, GROUP, *ids)
            pipe.xdel(key, *ids)
            await pipe.execute()

    @_unavailable
    async def retry(self, delivery: Delivery, *, delay_s: float, reason: str) -> None:
        due = time.time() + max(0.0, delay_s)
        await self._retry(
            keys=[self.stream_key(delivery.region), self.delayed_key(delivery.region)],
            args=[GROUP, delivery.id, due, orjson.dumps(retry_payload(delivery.payload, reason))],
        )
        self._next_due[delivery.region] = min(self._next_due.get(delivery.region, due), due)

    # --- operators and the sweeper ---------------------------------------------------------------
    @_unavailable
    async def live_payloads(self, region: str) -> list[Any]:
        key = self.stream_key(region)
        payloads: list[Any] = []
        start = "-"
        while True:
            entries = await self.redis.xrange(key, min=start, count=1000)
            if not entries:
                break
            payloads.extend(_decode_payload(fields.get(b"p")) for _, fields in entries)
            start = "(" + _text(entries[-1][0])
        for member in await self.redis.zrange(self.delayed_key(region), 0, -1):
            payloads.append(_decode_payload(member))
        return payloads

    @_unavailable
    async def stats(self, region: str) -> QueueStats:
        key = self.stream_key(region)
        await self._ensure_group(region)
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(key)
            pipe.xpending(key, GROUP)
            pipe.zcard(self.delayed_key(region))
            pipe.xinfo_groups(key)
            pipe.xinfo_consumers(key, GROUP)
            length, pending, delayed, groups, consumers = await pipe.execute(raise_on_error=False)
        for result in (length, pending, groups, consumers):
            if isinstance(result, Exception):
                if "NOGROUP" in str(result):
                    self._groups.discard(region)
                    return QueueStats(region, 0, 0, int(delayed or 0), None, None, [])
                raise result
        pending_count = int(pending["pending"])
        oldest_pending = message_age(_text(pending["min"]), now) if pending_count else None
        last_delivered = next(
            (_text(group["last-delivered-id"]) for group in groups if _text(group["name"]) == GROUP), "0-0"
        )
        first_ready = await self.redis.xrange(key, min="(" + last_delivered, count=1)
        oldest_ready = message_age(_text(first_ready[0][0]), now) if first_ready else None
        return QueueStats(
            region=region,
            depth=max(0, int(length) - pending_count),
            pending=pending_count,
            delayed=int(delayed),
            oldest_ready_age_s=oldest_ready,
            oldest_pending_age_s=oldest_pending,
            consumers=[
                {
                    "name": _text(consumer["name"]),
                    "pending": int(consumer["pending"]),
                    "idle_s": int(consumer["idle"]) / 1000,
                }
                for consumer in consumers
            ],
        )

    # --- control channel -------------------------------------------------------------------------
    @_unavailable
    async def signal(self, event: ControlEvent) -> None:
        await self.redis.publish(self.control_channel, orjson.dumps(event.as_dict()))

    async def control_events(self) -> AsyncIterator[ControlEvent]:
        """Subscribe, resubscribing after outages; events sent while Redis was away are lost (best effort)."""
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.control_channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        data = orjson.loads(message["data"])
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(data, dict):
                        yield ControlEvent.from_dict(data)
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError):
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):  # the connection may already be gone
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (redis_errors.RedisError, OSError):
            return False

    async def aclose(self) -> None:
        await self.redis.aclose()


def _id_order(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)
