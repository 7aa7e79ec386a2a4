"""Calls as a real device or app makes them: a bearer token, a deadline on every
attempt, retries with exponential backoff and jitter on the errors worth retrying,
the same idempotency key on every retry, and a cap on calls in flight.

Each kind of caller (the ticket desk, the venue's devices, the guests' apps, the ops
team) has a Caller of its own with its own cap, as each has its own network in a
real venue: a slow app call must never hold up a gate or the desk. They share one
CallStats.

A call that still fails is counted (CallStats.failed) and answered with None: the
device carries on, as a turnstile that lost its network would.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from sim.suite.stats import CallStats

R = TypeVar("R")

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class Caller:
    def __init__(
        self,
        stats: CallStats,
        max_in_flight: int,
        deadline_s: float = 10.0,
        attempts: int = 6,
        *,
        kind: str = "calls",
    ) -> None:
        self.stats = stats
        self.kind = kind
        self.limit = max_in_flight
        self.gate = asyncio.Semaphore(max_in_flight)
        self.deadline_s = deadline_s
        self.attempts = attempts
        self.in_flight = 0
        # Calls ready to go but held back by the cap: where a starved caller shows.
        self.waiting = 0
        self.peak_waiting = 0
        self._rng = random.Random(0)

    async def __call__(
        self,
        name: str,
        method: Callable[..., Awaitable[R]],
        request: Any,
        token: str | None = None,
        *,
        deadline_s: float | None = None,
        retry: bool = True,
        answers: frozenset[grpc.StatusCode] = frozenset(),
    ) -> R | None:
        """`method(request)` with retries; None when it failed for good (counted).

        `retry` must only be True for requests that are safe to repeat: reads, and
        writes carrying an idempotency key. `answers` are codes that are the
        service's answer rather than a failure (a nudge that no longer applies):
        counted among the outcomes, answered with None."""
        metadata = bearer(token) if token else None
        stats = self.stats.method(name)
        delay = 0.2
        for attempt in range(1, self.attempts + 1):
            self.waiting += 1
            self.peak_waiting = max(self.peak_waiting, self.waiting)
            try:
                await self.gate.acquire()
            finally:
                self.waiting -= 1
            try:
                self.in_flight += 1
                began = time.perf_counter()
                try:
                    reply = await method(
                        request, metadata=metadata, timeout=deadline_s or self.deadline_s
                    )
                except grpc.aio.AioRpcError as err:
                    code = err.code()
                    if code in answers:
                        self.stats.outcomes[f"{name}.{code.name}"] += 1
                        stats.latencies_ms.append((time.perf_counter() - began) * 1000.0)
                        return None
                    if retry and code in RETRYABLE and attempt < self.attempts:
                        stats.retries += 1
                    else:
                        self.stats.failed(name, code.name, err.details() or "")
                        return None
                else:
                    stats.ok += 1
                    stats.latencies_ms.append((time.perf_counter() - began) * 1000.0)
                    return reply
                finally:
                    self.in_flight -= 1
            finally:
                self.gate.release()
            await asyncio.sleep(delay * (0.5 + self._rng.random()))
            delay = min(delay * 2, 5.0)
        return None  # pragma: no cover - the loop returns


class Lane:
    """Calls of one party (or one device) made one after another, in order: a
    guest's entry tap is decided before their first ride tap, as in life."""

    __slots__ = ("_errors", "_jobs", "_running", "_spawn")

    def __init__(
        self, spawn: Callable[[Awaitable[None]], Any], errors: list[BaseException]
    ) -> None:
        self._jobs: deque[Callable[[], Awaitable[None]]] = deque()
        self._running = False
        self._spawn = spawn
        self._errors = errors

    def submit(self, job: Callable[[], Awaitable[None]]) -> None:
        self._jobs.append(job)
        if not self._running:
            self._running = True
            self._spawn(self._drain())

    async def _drain(self) -> None:
        try:
            while self._jobs:
                job = self._jobs.popleft()
                try:
                    await job()
                except Exception as err:  # a bug in the world, shown in the report
                    self._errors.append(err)
        finally:
            self._running = False

    @property
    def busy(self) -> bool:
        return self._running


class Tasks:
    """Background tasks the world started, kept until done, awaited at the end."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.errors: list[BaseException] = []

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(list(self._tasks), timeout=max(0.1, deadline - time.monotonic()))

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
