"""Group commit: writes that arrive while earlier ones are on their way to the
database are sent together, in one round trip and one transaction.

A lone write (a quiet gate) goes at once, so it waits for nothing; under load
the writes that queue up behind the ones in flight leave together as soon as a
slot is free. Every caller's result comes back only after the commit of the
group that carried it: durable before the reply, as alone.

The flushes run in a task of their own with a fresh context (not the context
of whichever request happened to start them), under suppressed
instrumentation: each request keeps its own span, and a group is not a
statement span per caller.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from opentelemetry.instrumentation.utils import suppress_instrumentation

W = TypeVar("W")
R = TypeVar("R")


class GroupCommit(Generic[W, R]):
    """Groups writes (or reads: the hot paths' state reads share round trips
    the same way, each read answered from one statement's snapshot)."""

    def __init__(
        self,
        flush: Callable[[Sequence[W]], Awaitable[Sequence[R]]],
        max_group: int = 64,
        max_in_flight: int = 2,
    ) -> None:
        self._flush = flush
        self._max_group = max_group
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[W, asyncio.Future[R]]] = []
        self._in_flight = 0
        self.groups = 0
        self.writes = 0

    async def submit(self, write: W) -> R:
        """The write's result, once its group has committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((write, future))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
        return await future

    async def _drain(self) -> None:
        try:
            with suppress_instrumentation():
                while self._pending:
                    group = self._pending[: self._max_group]
                    del self._pending[: self._max_group]
                    await self._send(group)
        finally:
            self._in_flight -= 1

    async def _send(self, group: list[tuple[W, asyncio.Future[R]]]) -> None:
        self.groups += 1
        self.writes += len(group)
        try:
            results = await self._flush([write for write, _ in group])
        except asyncio.CancelledError:
            for _, future in group:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)
