"""Telemetry of the two hot paths, at a cost a tap can afford.

- **Database time.** The asyncpg instrumentation makes a span for every
  statement; on Tap and Charge that doubled the CPU a call costs. Their writes
  are group-committed (group_commit.py): one transaction carries the taps of
  many calls, so a statement span per call would describe a statement that
  does not exist. Group flushes run with instrumentation suppressed (in their
  own task), and so do the rare statements a call makes on its own (a replayed
  key's stored reply, a decision again under the row lock); each group's round
  trip is one CLIENT span, a child of the first caller's span and linked to the
  others'. The call's own server span carries what an operator needs: the time
  spent in the database (`venue.db.ms`) and how many times a lost race made it
  decide again (`venue.db.retries`), next to the access point, decision and
  guest it already names. No context manager on the way: a generator-based
  one and the suppression's context switch cost a tap more than the rest of
  its telemetry.
- **Counters.** A synchronous OpenTelemetry counter costs tens of
  microseconds per `add` (attribute hashing, exemplar sampling, one lock per
  view). `Tally` counts in a dict on the hot path and reports the totals
  through an observable counter when the metric reader collects: the same
  metric (name, unit, attributes, cumulative sums), without the per-call cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from services.platform import semconv


def database_time(span: trace.Span, started: float, retries: int) -> None:
    """The call's time in the database (and its lost races) on its server span."""
    if span.is_recording():
        ms = round((time.perf_counter() - started) * 1000, 3)
        span.set_attributes(
            {"venue.db.ms": ms, "venue.db.retries": retries} if retries else {"venue.db.ms": ms}
        )


@dataclass(slots=True)
class _Count:
    attributes: dict[str, str]
    n: int = 0


class Tally:
    """A cumulative counter whose hot path is a dict increment."""

    def __init__(self, meter: metrics.Meter, metric: semconv.Metric) -> None:
        assert metric.kind == "counter", metric.name
        self._counts: dict[object, _Count] = {}
        meter.create_observable_counter(
            metric.name, callbacks=[self._observe], unit=metric.unit, description=metric.description
        )

    def add(self, key: object, attributes: Callable[[], dict[str, str]]) -> None:
        """One more for `key`; `attributes` names it the first time it is seen."""
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = _Count(attributes())
        count.n += 1

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(c.n, c.attributes) for c in list(self._counts.values())]
