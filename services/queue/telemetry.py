"""Queue's metrics (docs/observability.md, named in services/platform/semconv):
every attraction's posted wait and its forecast wait a few horizons ahead, as
gauges in minutes.

Both are read from what the twin last published on its own event loop (the
tip board's posted wait, the forecast it last projected), never computed in
the exporter's thread: the twin is not thread-safe, and a collection must not
cost a projection per attraction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from services.platform import semconv
from services.queue.forecast import SLOT, SlotForecast
from services.queue.schedule import CLOSED

# How far ahead the forecast gauge looks (minutes), as `venue.horizon` labels.
HORIZONS = {"15m": 15, "30m": 30, "60m": 60, "120m": 120}

ATTRACTION = semconv.ATTRACTION
HORIZON = semconv.HORIZON
POSTED, FORECAST = semconv.QUEUE_POSTED_WAIT, semconv.QUEUE_FORECAST_WAIT


def set_attraction(attraction: str) -> None:
    """Name the attraction on the current span (the operator's search key)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(ATTRACTION, attraction)


def posted_observations(posted: Mapping[str, float | None]) -> list[Observation]:
    """Posted waits in minutes; an attraction with none (closed) is left out."""
    return [
        Observation(seconds / 60.0, {ATTRACTION: attraction})
        for attraction, seconds in list(posted.items())
        if seconds is not None and math.isfinite(seconds)
    ]


def forecast_horizons(slots: list[SlotForecast], t: float) -> dict[str, float]:
    """Minutes of forecast wait for a guest joining `horizon` after `t`, read
    from the slot holding that instant (none where it is closed or past the
    forecast's end)."""
    found: dict[str, float] = {}
    for label, minutes in HORIZONS.items():
        at = t + minutes * 60.0
        for slot in slots:
            if slot.start <= at < slot.start + SLOT:
                if slot.status != CLOSED and math.isfinite(slot.wait):
                    found[label] = slot.wait / 60.0
                break
    return found


def forecast_observations(forecasts: Mapping[str, dict[str, float]]) -> list[Observation]:
    return [
        Observation(minutes, {ATTRACTION: attraction, HORIZON: label})
        for attraction, by_horizon in list(forecasts.items())
        for label, minutes in list(by_horizon.items())
    ]


def observe_waits(
    posted: Mapping[str, float | None],
    forecasts: Mapping[str, dict[str, float]],
    meter: metrics.Meter | None = None,
) -> None:
    """Register the two gauges over the twin's published figures (on the
    process's meter provider unless given another meter)."""
    meter = meter or metrics.get_meter("venue.queue")

    def posted_now(_: CallbackOptions) -> Iterable[Observation]:
        return posted_observations(posted)

    def forecast_now(_: CallbackOptions) -> Iterable[Observation]:
        return forecast_observations(forecasts)

    for metric, callback in ((POSTED, posted_now), (FORECAST, forecast_now)):
        meter.create_observable_gauge(
            metric.name,
            callbacks=[callback],
            unit=metric.unit,
            description=metric.description,
        )
