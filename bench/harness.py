"""Load generation: closed-loop throughput, sequential latency, and open-loop
latency at an offered rate (calls start on a schedule, not after the previous
one returns, and latency counts from the scheduled start, so a slow server
cannot hide its queueing)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

Call = Callable[[int], Awaitable[Any]]


@dataclass
class Throughput:
    calls: int
    seconds: float
    in_flight: int
    errors: int
    # Calls made in all, warm-up included (what the CPU figures divide by).
    all_calls: int = 0

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "per_second": round(self.per_second, 1)}


@dataclass
class Latency:
    calls: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    offered_per_second: float = 0.0
    achieved_per_second: float = 0.0
    all_calls: int = 0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def summarize(samples: list[float], errors: int, **extra: Any) -> Latency:
    ordered = sorted(samples)
    return Latency(
        calls=len(samples),
        errors=errors,
        p50_ms=percentile(ordered, 0.50) * 1000,
        p90_ms=percentile(ordered, 0.90) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
        max_ms=(ordered[-1] if ordered else float("nan")) * 1000,
        mean_ms=(statistics.fmean(ordered) if ordered else float("nan")) * 1000,
        **extra,
    )


def calls_of(figures: Throughput | Latency) -> int:
    """Calls a measurement made, warm-up included (for CPU per call)."""
    return figures.all_calls or figures.calls


async def closed_loop(
    call: Call, in_flight: int, seconds: float, warmup: float = 1.0
) -> Throughput:
    """`in_flight` workers, each starting its next call when the last returns."""
    counter = 0
    errors = 0
    measuring = False
    done = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal counter, errors, done
        while True:
            counter += 1
            try:
                await call(counter)
            except Exception:
                errors += 1
            if measuring:
                done += 1
            if stop_at and time.perf_counter() >= stop_at:
                return

    stop_at = time.perf_counter() + warmup + seconds
    tasks = [asyncio.create_task(worker()) for _ in range(in_flight)]
    await asyncio.sleep(warmup)
    measuring = True
    started = time.perf_counter()
    errors = 0
    await asyncio.gather(*tasks)
    return Throughput(done, time.perf_counter() - started, in_flight, errors, all_calls=counter)


async def sequential(call: Call, count: int, warmup: int = 200) -> Latency:
    for i in range(warmup):
        await call(i)
    samples: list[float] = []
    errors = 0
    for i in range(count):
        started = time.perf_counter()
        try:
            await call(i)
            samples.append(time.perf_counter() - started)
        except Exception:
            errors += 1
    return summarize(samples, errors, all_calls=warmup + count)


async def open_loop(call: Call, rate: float, seconds: float, warmup: float = 1.0) -> Latency:
    """Start calls at `rate` per second whatever the replies do."""
    samples: list[float] = []
    errors = 0
    interval = 1.0 / rate
    total = int((seconds + warmup) * rate)
    warm = int(warmup * rate)
    tasks: list[asyncio.Task[None]] = []
    begin = time.perf_counter()

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        try:
            await call(i)
        except Exception:
            if i >= warm:
                errors += 1
            return
        if i >= warm:
            samples.append(time.perf_counter() - scheduled)

    for i in range(total):
        scheduled = begin + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - begin - warmup
    return summarize(
        samples,
        errors,
        offered_per_second=rate,
        achieved_per_second=len(samples) / elapsed if elapsed > 0 else 0.0,
        all_calls=total,
    )
