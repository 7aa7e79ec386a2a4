"""Group commit: writes that arrive while earlier ones are on their way to the
database are sent together, in one round trip and one transaction.

A lone write (a quiet gate) goes at once, so it waits for nothing; under load
the writes that queue up behind the ones in flight leave together as soon as a
slot is free. Every caller's result comes back only after the commit of the
group that carried it: durable before the reply, as alone.

The flushes run in a task of their own with a fresh context (not the context
of whichever request happened to start them), under suppressed
instrumentation: no statement span per caller for a statement that carries
many. A named group gets one CLIENT span per round trip instead (database
semantic conventions, `db.operation.batch.size`): a child of the first
caller's span and linked to every other caller's, the OpenTelemetry pattern
for work done for several traces at once, so each trace still shows its
database work.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode

_tracer = trace.get_tracer("venue.access.db")

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
        span: tuple[str, dict[str, str]] | None = None,
    ) -> None:
        self._flush = flush
        self._span = span
        self._max_group = max_group
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[W, asyncio.Future[R], SpanContext]] = []
        self._in_flight = 0
        self.groups = 0
        self.writes = 0

    async def submit(self, write: W) -> R:
        """The write's result, once its group has committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((write, future, trace.get_current_span().get_span_context()))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                group = self._pending[: self._max_group]
                del self._pending[: self._max_group]
                await self._send(group)
        finally:
            self._in_flight -= 1

    def _start_span(self, group: list[tuple[W, asyncio.Future[R], SpanContext]]) -> trace.Span:
        if self._span is None:
            return trace.INVALID_SPAN
        name, attributes = self._span
        callers = [ctx for _, _, ctx in group if ctx.is_valid]
        parent = trace.set_span_in_context(NonRecordingSpan(callers[0])) if callers else None
        return _tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={**attributes, "db.operation.batch.size": len(group)},
            links=[Link(ctx) for ctx in callers[1:]],
        )

    async def _send(self, group: list[tuple[W, asyncio.Future[R], SpanContext]]) -> None:
        self.groups += 1
        self.writes += len(group)
        span = self._start_span(group)
        try:
            with suppress_instrumentation():
                results = await self._flush([write for write, _, _ in group])
        except asyncio.CancelledError:
            span.end()
            for _, future, _ in group:
                future.cancel()
            raise
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()
            for _, future, _ in group:
                if not future.done():
                    future.set_exception(exc)
            return
        span.end()
        for (_, future, _), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)
