"""Request fields as records, every bad field named (INVALID_ARGUMENT)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from google.protobuf.duration_pb2 import Duration

from services.itinerary.facts import VenueFacts
from services.itinerary.model import (
    MEAL_RESERVATION,
    NUDGE_KINDS,
    SHOW,
    Booking,
    Place,
    PlanSettings,
    Preferences,
    Window,
    Wish,
)
from services.platform import validation
from services.platform.errors import InvalidArgument
from venue.common.v1 import common_pb2
from venue.itinerary.v1 import itinerary_pb2 as pb

MAX_WISHES = 40
MAX_QUIET_PERIODS = 10
MAX_DURATION = timedelta(hours=8)
MIN_SPEED, MAX_SPEED = 0.3, 3.0
# How far ahead a plan may be made.
MAX_DAYS_AHEAD = 400
# Kinds of points of interest a wish may name: anything but the way in and out.
NOT_WISHABLE = frozenset({"entrance", "exit"})


def venue_date(value: common_pb2.VenueDate, field: str, today: date) -> date:
    """The requested venue day: unset means today; not in the past."""
    if value.year == 0 and value.month == 0 and value.day == 0:
        return today
    try:
        day = date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidArgument(field, "not a calendar date") from None
    if day < today:
        raise InvalidArgument(field, "in the past")
    if day > today + timedelta(days=MAX_DAYS_AHEAD):
        raise InvalidArgument(field, f"more than {MAX_DAYS_AHEAD} days ahead")
    return day


def window(value: common_pb2.TimeRange, field: str, required: bool = True) -> Window | None:
    start = validation.timestamp(value.start, f"{field}.start", required=required)
    end = validation.timestamp(value.end, f"{field}.end", required=required and start is not None)
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise InvalidArgument(field, "give both start and end")
    if end <= start:
        raise InvalidArgument(f"{field}.end", "must be after start")
    return Window(start, end)


def _within_day(w: Window, field: str, facts: VenueFacts, day: date) -> None:
    first = facts.at_minute(day, 0)
    last = first + timedelta(days=1, hours=6)
    if w.start < first or w.end > last:
        raise InvalidArgument(field, "must lie within the plan's day")


def place(value: common_pb2.Place, field: str, facts: VenueFacts, required: bool) -> Place:
    zone = validation.ref(value.zone_id, f"{field}.zone_id", required=False)
    node = validation.ref(value.node_id, f"{field}.node_id", required=False)
    if not zone and not node:
        if required:
            raise InvalidArgument(field, "required: a zone or a node")
        return Place()
    if zone and zone not in facts.zones:
        raise InvalidArgument(f"{field}.zone_id", "not a zone of this venue")
    if node and node not in facts.nodes:
        raise InvalidArgument(f"{field}.node_id", "not a node of this venue")
    if node and not zone:
        zone = facts.nodes[node]
    return Place(zone, node)


def _duration(value: Duration, field: str) -> float:
    seconds = value.ToNanoseconds() / 1e9
    if seconds < 0 or seconds > MAX_DURATION.total_seconds():
        raise InvalidArgument(field, f"between 0 and {MAX_DURATION}")
    return seconds


def settings(value: pb.PlanSettings, field: str, facts: VenueFacts, day: date) -> PlanSettings:
    start = place(value.start_place, f"{field}.start_place", facts, required=False)
    arrive = validation.timestamp(value.arrive_at, f"{field}.arrive_at", required=False)
    leave = validation.timestamp(value.leave_at, f"{field}.leave_at", required=False)
    opening, closing = facts.opening(day), facts.closing(day)
    if arrive is not None and not opening - timedelta(hours=3) <= arrive <= closing:
        raise InvalidArgument(f"{field}.arrive_at", "must be on the plan's day, before closing")
    if leave is not None and not opening <= leave <= closing + timedelta(hours=3):
        raise InvalidArgument(f"{field}.leave_at", "must be on the plan's day, after opening")
    if arrive is not None and leave is not None and leave <= arrive:
        raise InvalidArgument(f"{field}.leave_at", "must be after arrive_at")
    speed = value.walking_speed_mps
    if speed != 0 and not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidArgument(
            f"{field}.walking_speed_mps", f"0 (the venue's default) or {MIN_SPEED} to {MAX_SPEED}"
        )
    return PlanSettings(
        start or facts.entrance, arrive, leave, speed, value.accessible, value.avoid_crowds
    )


def wishes(
    items: Sequence[pb.WishItem],
    field: str,
    facts: VenueFacts,
    day: date,
    existing: set[str],
    members: set[str] | None,
) -> tuple[Wish, ...]:
    if len(items) > MAX_WISHES:
        raise InvalidArgument(field, f"at most {MAX_WISHES} wishes")
    found: list[Wish] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        f = f"{field}[{i}]"
        wish_id = item.wish_id
        if wish_id:
            wish_id = validation.ident(wish_id, f"{f}.wish_id")
            if wish_id not in existing:
                raise InvalidArgument(f"{f}.wish_id", "not a wish of this plan; leave it empty")
            if wish_id in seen:
                raise InvalidArgument(f"{f}.wish_id", "listed twice")
        else:
            wish_id = str(uuid.uuid4())
        seen.add(wish_id)
        poi_id = validation.ref(item.poi_id, f"{f}.poi_id")
        fact = facts.poi(poi_id)
        if fact is None or fact.kind in NOT_WISHABLE:
            raise InvalidArgument(f"{f}.poi_id", "not a point of interest one can visit here")
        priority = validation.enum_value(item.priority, pb.WishPriority, f"{f}.priority")
        w = None
        if item.HasField("start_window"):
            w = window(item.start_window, f"{f}.start_window")
            if w is not None:
                _within_day(w, f"{f}.start_window", facts, day)
        duration = _duration(item.duration, f"{f}.duration") if item.HasField("duration") else None
        guests = _guests(item.guest_ids, f"{f}.guest_ids", members)
        found.append(Wish(wish_id, poi_id, priority, w, duration, guests))
    return tuple(found)


def _guests(values: Sequence[str], field: str, members: set[str] | None) -> tuple[str, ...]:
    found: list[str] = []
    for i, raw in enumerate(values):
        guest = validation.ident(raw, f"{field}[{i}]")
        if members is not None and guest not in members:
            raise InvalidArgument(f"{field}[{i}]", "not a member of the party")
        if guest not in found:
            found.append(guest)
    return tuple(found)


def booking(
    value: pb.PlanBooking, field: str, facts: VenueFacts, day: date, members: set[str] | None
) -> Booking:
    kind = validation.enum_value(value.kind, pb.PlanBookingKind, f"{field}.kind")
    if kind not in (MEAL_RESERVATION, SHOW):
        raise InvalidArgument(
            f"{field}.kind",
            "return times and virtual-queue passes come from the queue service; add meal "
            "reservations and shows here",
        )
    if value.booking_id:
        raise InvalidArgument(f"{field}.booking_id", "assigned by the service; leave it empty")
    poi_id = validation.ref(value.poi_id, f"{field}.poi_id")
    fact = facts.poi(poi_id)
    if fact is None or fact.kind in NOT_WISHABLE:
        raise InvalidArgument(f"{field}.poi_id", "not a point of interest one can visit here")
    w = window(value.window, f"{field}.window")
    assert w is not None
    _within_day(w, f"{field}.window", facts, day)
    ref = validation.text(value.external_ref, f"{field}.external_ref", max_len=100, required=False)
    guests = _guests(value.guest_ids, f"{field}.guest_ids", members)
    return Booking(str(uuid.uuid4()), kind, poi_id, w, ref, guests)


def preferences(value: pb.NudgePreferences, field: str, venue_max: int) -> Preferences:
    guest_id = validation.ident(value.guest_id, f"{field}.guest_id")
    if len(value.quiet_periods) > MAX_QUIET_PERIODS:
        raise InvalidArgument(f"{field}.quiet_periods", f"at most {MAX_QUIET_PERIODS}")
    quiet: list[Window] = []
    for i, period in enumerate(value.quiet_periods):
        w = window(period, f"{field}.quiet_periods[{i}]")
        assert w is not None
        if w.end - w.start > timedelta(days=2):
            raise InvalidArgument(f"{field}.quiet_periods[{i}]", "at most two days long")
        quiet.append(w)
    muted: set[int] = set()
    for i, kind in enumerate(value.muted_kinds):
        if kind not in NUDGE_KINDS:
            raise InvalidArgument(f"{field}.muted_kinds[{i}]", "not a nudge kind")
        muted.add(kind)
    if not 0 <= value.max_per_hour <= venue_max:
        raise InvalidArgument(
            f"{field}.max_per_hour", f"0 (the venue's budget) to {venue_max}, the venue's budget"
        )
    return Preferences(
        guest_id, tuple(sorted(quiet, key=lambda w: w.start)), frozenset(muted), value.max_per_hour
    )


def at_or_now(value: object, field: str, now: datetime) -> datetime:
    """An optional venue time of a guest's action: not in the future."""
    at = validation.timestamp(value, field, required=False)  # type: ignore[arg-type]
    if at is None:
        return now
    if at > now + timedelta(minutes=5):
        raise InvalidArgument(field, "in the future")
    return at
