"""Photo's metrics, named as docs/observability.md lists them (dashboards
query these names and attribute keys)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from venue.photo.v1 import photo_pb2 as pb

_OUTCOMES: dict[int, dict[str, str]] = {
    pb.CAPTURE_OUTCOME_ACCEPTED: {"venue.outcome": "accepted"},
    pb.CAPTURE_OUTCOME_DUPLICATE: {"venue.outcome": "duplicate"},
    pb.CAPTURE_OUTCOME_REJECTED: {"venue.outcome": "rejected"},
}


class PhotoMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or metrics.get_meter("venue.photo")
        self._captures = meter.create_counter(
            "venue.photo.captures", unit="{capture}", description="Capture records by outcome"
        )
        self.decisions = meter.create_counter(
            "venue.photo.link_decisions",
            unit="{decision}",
            description="Ride photo linking decisions",
        )
        self._pending: Callable[[], int] = lambda: 0
        meter.create_observable_gauge(
            "venue.photo.pending",
            callbacks=[self._observe_pending],
            description="Ride photos waiting for the boarding taps of their dispatch",
        )

    def captured(self, outcome: int) -> None:
        """One capture record acknowledged with this CaptureOutcome."""
        self._captures.add(1, _OUTCOMES.get(outcome, _OUTCOMES[pb.CAPTURE_OUTCOME_REJECTED]))

    def count_pending(self, source: Callable[[], int]) -> None:
        """Where the pending gauge reads its figure from (the linker)."""
        self._pending = source

    def _observe_pending(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._pending())]
