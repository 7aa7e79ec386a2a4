"""Photo's metrics, named once in services/platform/semconv.py (the dashboards
query these names and attribute keys).

`venue.photo.captures` counts what becomes of captures, by `venue.outcome`:
`rejected` (a capture record refused at ingest), `linked` (a ride photo
matched to its vehicle), `held` (ambiguous: kept for the kiosk and "is this
you?"), `unmatched` (no rider's tap near it), `claimed` (at the exit kiosk),
`suggested` (a party said "that's us") and `deleted` (past retention,
nobody's). A ride photo held first and linked later counts under both.
`venue.photo.pending` is the number of ride photos waiting for the boarding
taps of their dispatch.
"""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.metrics import Meter

from services.platform import semconv

OUTCOMES = ("rejected", "linked", "held", "unmatched", "claimed", "suggested", "deleted")


class PhotoMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or metrics.get_meter("venue.photo")
        self._captures = semconv.counter(meter, semconv.PHOTO_CAPTURES)
        self._pending = semconv.gauge(meter, semconv.PHOTO_PENDING)
        self._attrs = {o: {semconv.OUTCOME: o} for o in OUTCOMES}

    def captures(self, outcome: str, count: int = 1) -> None:
        if count > 0:
            self._captures.add(count, self._attrs[outcome])

    def pending(self, count: int) -> None:
        self._pending.set(count)
