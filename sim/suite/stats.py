"""What the world measured of its own calls: latencies, outcomes and failures."""

from __future__ import annotations

import time
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np


@dataclass
class MethodStats:
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    ok: int = 0
    retries: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(np.frombuffer(self.latencies_ms, dtype=float), q))


@dataclass
class CallStats:
    methods: dict[str, MethodStats] = field(default_factory=lambda: defaultdict(MethodStats))
    # Answers that are decisions, not errors: tap decisions and charge results.
    outcomes: Counter[str] = field(default_factory=Counter)
    # Device messages sent per wall second (taps, pings, charges, captures, app calls).
    events: Counter[int] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    failure_log: list[str] = field(default_factory=list)

    def method(self, name: str) -> MethodStats:
        return self.methods[name]

    def count_events(self, n: int = 1) -> None:
        self.events[int(time.monotonic() - self.started)] += n

    def failed(self, name: str, code: str, detail: str) -> None:
        self.methods[name].failures[code] += 1
        if len(self.failure_log) < 200:
            self.failure_log.append(f"{name}: {code}: {detail[:200]}")

    @property
    def total_failures(self) -> int:
        return sum(sum(m.failures.values()) for m in self.methods.values())

    @property
    def total_calls(self) -> int:
        return sum(m.ok + sum(m.failures.values()) for m in self.methods.values())

    def events_per_second(self, window: int = 5) -> float:
        now = int(time.monotonic() - self.started)
        return sum(self.events[s] for s in range(now - window, now)) / window
