"""Group commit: many concurrent callers, one transaction per batch, one outcome per caller.

A caller submits an item and waits. If no batch is being written, one starts with everything
waiting (up to ``max_batch``); items that arrive meanwhile form the next batch. There is no timer:
at low load a batch is a single item and nothing waits; under load the fixed costs of a transaction
(round trips, the commit's flush) are shared. ``flush`` returns one outcome per item — a value, or an
exception for that item alone; if ``flush`` itself raises, every item of the batch gets that error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R | BaseException]]],
        *,
        max_batch: int = 200,
        name: str = "batcher",
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._flush = flush
        self.max_batch = max_batch
        self.name = name
        self._on_batch = on_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """The item's outcome once its batch is committed (raises the item's or the batch's error)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=self.name)
        # shield: a caller that goes away must not cancel a transaction other callers share
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            started = loop.time()
            try:
                outcomes = await self._flush([item for item, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            if self._on_batch is not None:
                self._on_batch(len(batch), loop.time() - started)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def aclose(self) -> None:
        """Wait for the batch in progress (and what queued behind it)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
