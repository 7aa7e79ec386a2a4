"""A small hand-made venue and plan builders for the itinerary's pure tests."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.itinerary.budget import Budget
from services.itinerary.facts import AccessPointFact, PoiFact, VenueFacts
from services.itinerary.live import OPEN, Forecast, LineState, LiveVenue
from services.itinerary.model import (
    MUST_DO,
    NICE_TO_DO,
    UPCOMING,
    Booking,
    Place,
    Plan,
    PlanSettings,
    Stop,
    Window,
    Wish,
)

TZ = ZoneInfo("America/New_York")
DAY = date(2026, 7, 4)
MIN = 60.0


def at(hh: int, mm: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, tzinfo=TZ)


def _ride(poi_id: str, name: str, ride_min: float = 5) -> PoiFact:
    return PoiFact(
        poi_id,
        name,
        "attraction",
        f"land.{poi_id}",
        f"n.{poi_id}",
        frozenset(),
        is_attraction=True,
        ride_s=ride_min * MIN,
        queue_zone_id=f"queue.{poi_id}",
        opens_min=9 * 60,
        closes_min=21 * 60,
    )


POIS = {
    "coaster": _ride("coaster", "Comet Coaster", 3),
    "boats": _ride("boats", "Canal Boats", 8),
    "teacups": _ride("teacups", "Teacups", 2),
    "spinner": _ride("spinner", "Spinner", 2),
    "show": PoiFact("show", "Big Show", "show", "show.big", "n.show", frozenset(), show_s=30 * MIN),
    "diner": PoiFact(
        "diner", "Diner", "food", "food.diner", "n.diner", frozenset({"meal", "cold_drink"})
    ),
    "cart": PoiFact(
        "cart", "Soda Cart", "drink", "food.cart", "n.cart", frozenset({"cold_drink", "snack"})
    ),
    "gate": PoiFact("gate", "Main Gate", "entrance", "plaza", "n.gate", frozenset()),
}

FACTS = VenueFacts(
    venue_id="test-park",
    tz=TZ,
    opens_min=9 * 60,
    closes_min=21 * 60,
    budget=Budget(3, timedelta(minutes=15)),
    late_grace=timedelta(minutes=15),
    pois=POIS,
    access_points={
        "ap.coaster.standby": AccessPointFact(
            "ap.coaster.standby", "ride_standby", "coaster", Place("queue.coaster", "n.q")
        ),
    },
    zones={
        "plaza": ("plaza", 1000, ""),
        "walk.main": ("walkway", 100, ""),
        "walk.side": ("walkway", 100, ""),
        **{f"land.{p}": ("land", 1000, "") for p in POIS},
        **{f"queue.{p}": ("queue", 500, f"land.{p}") for p in POIS},
        "show.big": ("show", 500, ""),
        "food.diner": ("food", 100, ""),
        "food.cart": ("food", 30, ""),
    },
    poi_of_zone={
        **{f"queue.{p}": p for p in ("coaster", "boats", "teacups", "spinner")},
        "show.big": "show",
        "food.diner": "diner",
        "food.cart": "cart",
    },
    entrance=Place("plaza", "n.gate"),
    nodes={"n.gate": "plaza", **{p.node_id: p.zone_id for p in POIS.values()}},
)

PLAN_ID = "5f8a7c1e-1111-4d6e-9a53-2b7c1d9e0f00"
PARTY_ID = "0b0e6f5c-2222-4f11-8d0e-7e1d2c3b4a59"


def stop(
    poi: str,
    arrive: datetime,
    *,
    walk_min: float = 5,
    wait_min: float = 20,
    state: int = UPCOMING,
    must: bool = True,
    window: Window | None = None,
    booking_id: str = "",
    zones: tuple[str, ...] = (),
) -> Stop:
    start = arrive + timedelta(minutes=wait_min)
    fact = POIS[poi]
    end = start + timedelta(seconds=fact.visit_s)
    wish_id = "" if booking_id else str(uuid.uuid5(uuid.UUID(PLAN_ID), "w" + poi))
    return Stop(
        stop_id=str(uuid.uuid5(uuid.UUID(PLAN_ID), "s" + (booking_id or poi))),
        poi_id=poi,
        state=state,
        wish_id=wish_id,
        booking_id=booking_id,
        must_do=must,
        window=window,
        arrive_at=arrive,
        walk_s=walk_min * MIN,
        wait_s=wait_min * MIN,
        start_at=start,
        end_at=end,
        route_zones=zones,
    )


NINE = at(9)
GATE = Place("plaza", "n.gate")


def plan_of(
    *stops: Stop,
    bookings: tuple[Booking, ...] = (),
    entered: datetime | None = NINE,
    planned: datetime | None = NINE,
    place: Place = GATE,
) -> Plan:
    wishes = tuple(
        Wish(s.wish_id, s.poi_id, MUST_DO if s.must_do else NICE_TO_DO) for s in stops if s.wish_id
    )
    return Plan(
        plan_id=PLAN_ID,
        party_id=PARTY_ID,
        date=DAY,
        version=3,
        settings=PlanSettings(start_place=Place("plaza", "n.gate")),
        wishes=wishes,
        bookings=bookings,
        stops=tuple(stops),
        skipped=(),
        last_replan_reason=1,
        planned_at=planned,
        created_at=at(8),
        updated_at=at(9),
        place=place,
        place_at=entered,
        entered_at=entered,
    )


def live_of(
    waits: dict[str, float] | None = None,
    forecasts: dict[str, float] | None = None,
    status: dict[str, int] | None = None,
    since: datetime = NINE,
) -> LiveVenue:
    """Lines open with posted waits (minutes) and flat forecasts (minutes) all day."""
    venue = LiveVenue()
    for poi, minutes in (waits or {}).items():
        venue.lines[poi] = LineState(OPEN, minutes * MIN, since, None, since)
    for poi, code in (status or {}).items():
        line = venue.lines.setdefault(poi, LineState())
        line.status = code
        line.status_since = since
        if code != OPEN:
            line.posted_wait_s = None
    for poi, minutes in (forecasts or {}).items():
        starts = [at(9) + timedelta(minutes=15 * i) for i in range(48)]
        venue.forecasts[poi] = Forecast(starts, [minutes * MIN] * 48, [OPEN] * 48, at(9))
    return venue


def moved(plan: Plan, **changes: object) -> Plan:
    return replace(plan, **changes)  # type: ignore[arg-type]
