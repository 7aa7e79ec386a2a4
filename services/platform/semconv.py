"""The suite's telemetry vocabulary: venue span attributes and metric
instruments, named once.

Operators search traces by these attribute keys and the Grafana dashboards
query these metrics by their Prometheus names, so a service that invents its
own spelling silently drops out of a dashboard. Every service takes its names
from here, and tests/unit/test_dashboards.py checks each dashboard query
against this table (docs/observability.md lists it for people).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opentelemetry import metrics

# Span and metric attributes. Ids are pseudonymous: never a name, an e-mail
# address or a band UID.
CALLER_KIND = "venue.caller.kind"
CALLER_ID = "venue.caller.id"
GUEST = "venue.guest.id"
PARTY = "venue.party.id"
ATTRACTION = "venue.attraction"
ACCESS_POINT = "venue.access_point"
ACCESS_POINT_KIND = "venue.access_point.kind"
ZONE = "venue.zone"
DECISION = "venue.decision"
DENY_REASON = "venue.deny_reason"
DECLINE_REASON = "venue.decline_reason"
MERCHANT = "venue.merchant"
OUTCOME = "venue.outcome"
REASON = "venue.reason"
NUDGE_KIND = "venue.nudge_kind"
HORIZON = "venue.horizon"
CONSUMER = "venue.consumer"
CAMERA = "venue.camera"
ERROR_REASON = "venue.error.reason"

Kind = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    unit: str
    attributes: tuple[str, ...]
    description: str

    @property
    def prometheus(self) -> str:
        """The series name after the collector's Prometheus exporter: dots to
        underscores, the unit spelled out, `_total` on counters."""
        base = self.name.replace(".", "_")
        suffix = _UNIT_SUFFIX.get(self.unit, "")
        if suffix and not base.endswith("_" + suffix):
            base = f"{base}_{suffix}"
        return base + "_total" if self.kind == "counter" else base

    @property
    def series(self) -> tuple[str, ...]:
        if self.kind == "histogram":
            return tuple(self.prometheus + end for end in ("_bucket", "_count", "_sum"))
        return (self.prometheus,)

    @property
    def labels(self) -> frozenset[str]:
        extra = {"le"} if self.kind == "histogram" else set()
        # resource_to_telemetry_conversion puts the resource on every series.
        return frozenset({a.replace(".", "_") for a in self.attributes} | extra | RESOURCE_LABELS)


_UNIT_SUFFIX = {"ms": "milliseconds", "s": "seconds", "min": "minutes", "1": "ratio"}
RESOURCE_LABELS = frozenset({"service_name", "service_instance_id", "job", "instance"})

RPC_SERVER_DURATION = Metric(
    "rpc.server.duration",
    "histogram",
    "ms",
    ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code"),
    "Duration of inbound RPCs",
)
EVENTS_HANDLED = Metric(
    "venue.events.handled", "counter", "{event}", (CONSUMER,), "Events handled per consumer"
)
EVENTS_LAG = Metric(
    "venue.events.consumer.lag",
    "histogram",
    "s",
    (CONSUMER,),
    "How far behind its producer a consumer handles an event (wall seconds)",
)
ACCESS_TAPS = Metric(
    "venue.access.taps",
    "counter",
    "{tap}",
    (ACCESS_POINT, ACCESS_POINT_KIND, ATTRACTION, DECISION, DENY_REASON),
    "Tap decisions per access point, kind and outcome",
)
ACCESS_PAYMENTS = Metric(
    "venue.access.payments",
    "counter",
    "{charge}",
    (MERCHANT, OUTCOME, DECLINE_REASON),
    "Charges approved and declined",
)
QUEUE_POSTED_WAIT = Metric(
    "venue.queue.posted_wait", "gauge", "min", (ATTRACTION,), "Posted standby wait"
)
QUEUE_FORECAST_WAIT = Metric(
    "venue.queue.forecast_wait",
    "gauge",
    "min",
    (ATTRACTION, HORIZON),
    "Forecast standby wait at a horizon (15m, 30m, 60m, 120m)",
)
ZONE_OCCUPANCY = Metric(
    "venue.location.zone.occupancy", "gauge", "{guest}", (ZONE,), "Guests in a zone"
)
ZONE_DENSITY = Metric(
    "venue.location.zone.density", "gauge", "1", (ZONE,), "Occupancy against zone capacity"
)
LOCATION_PINGS = Metric(
    "venue.location.pings",
    "counter",
    "{ping}",
    (OUTCOME, REASON),
    "Pings ingested (accepted) and dropped, with why",
)
ITINERARY_NUDGES = Metric(
    "venue.itinerary.nudges",
    "counter",
    "{nudge}",
    (NUDGE_KIND, OUTCOME),
    "Nudges by kind and outcome (sent, suppressed, seen, accepted, dismissed)",
)
PHOTO_CAPTURES = Metric(
    "venue.photo.captures",
    "counter",
    "{capture}",
    (OUTCOME,),
    "Captures by outcome (linked, held, claimed, suggested, deleted)",
)
PHOTO_PENDING = Metric("venue.photo.pending", "gauge", "{photo}", (), "Photos awaiting a link")

METRICS: tuple[Metric, ...] = (
    RPC_SERVER_DURATION,
    EVENTS_HANDLED,
    EVENTS_LAG,
    ACCESS_TAPS,
    ACCESS_PAYMENTS,
    QUEUE_POSTED_WAIT,
    QUEUE_FORECAST_WAIT,
    ZONE_OCCUPANCY,
    ZONE_DENSITY,
    LOCATION_PINGS,
    ITINERARY_NUDGES,
    PHOTO_CAPTURES,
    PHOTO_PENDING,
)


def strip_enum(name: str, prefix: str) -> str:
    """`ACCESS_POINT_KIND_PARK_ENTRY` less its prefix → `park_entry`: label
    values short and lower case, as dashboards show them."""
    return (name[len(prefix) :] if name.startswith(prefix) else name).lower()


def counter(meter: metrics.Meter, metric: Metric) -> metrics.Counter:
    assert metric.kind == "counter", metric.name
    return meter.create_counter(metric.name, unit=metric.unit, description=metric.description)


def histogram(meter: metrics.Meter, metric: Metric) -> metrics.Histogram:
    assert metric.kind == "histogram", metric.name
    return meter.create_histogram(metric.name, unit=metric.unit, description=metric.description)


def gauge(meter: metrics.Meter, metric: Metric) -> metrics._Gauge:
    assert metric.kind == "gauge", metric.name
    return meter.create_gauge(metric.name, unit=metric.unit, description=metric.description)
