"""A discrete-event engine: a heap of (venue time, sequence, handler, args).

The engine never looks at a clock. `run_until(t)` handles every event due by `t`
in time order (ties in the order they were scheduled), so the same schedule always
plays out the same way; the day driver (sim.day) decides how far `t` may go by
reading the shared venue clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

Handler = Callable[..., None]


class Engine:
    __slots__ = ("_heap", "_seq", "handled", "now")

    def __init__(self, start_s: float = 0.0) -> None:
        self._heap: list[tuple[float, int, Handler, tuple[Any, ...]]] = []
        self._seq = 0
        self.now = start_s
        self.handled = 0

    def at(self, t: float, handler: Handler, *args: Any) -> None:
        """Schedule `handler(*args)` at venue time `t` (never before now)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(t, self.now), self._seq, handler, args))

    def after(self, delay: float, handler: Handler, *args: Any) -> None:
        self.at(self.now + delay, handler, *args)

    @property
    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)

    def run_until(self, t: float, budget: int | None = None) -> int:
        """Handle events due by `t`; at most `budget` of them. Returns how many."""
        heap = self._heap
        done = 0
        while heap and heap[0][0] <= t and (budget is None or done < budget):
            when, _, handler, args = heapq.heappop(heap)
            self.now = when
            handler(*args)
            done += 1
        if not heap or heap[0][0] > t:
            self.now = max(self.now, t) if t != float("inf") else self.now
        self.handled += done
        return done
