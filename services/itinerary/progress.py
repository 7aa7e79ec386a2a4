"""Progress against the plan, from what devices report: pure.

- Taps (access): a standby or return-merge tap at an attraction on the plan
  means the party joined its line (IN_PROGRESS); a boarding tap means it rode
  (DONE). Gate taps say when the party entered and left.
- Location (consenting guests only): where the party is; arriving in the zone
  of a stop without a line (a show, a meal, a shop) starts it, leaving ends it.
- Charges at a stop's merchant (a meal) finish it.
- Fixed-time stops whose window has passed unused are MISSED.

The schedule offset says how far the party is behind (+) or ahead (-) of the
plan's prediction for its next stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum

from services.itinerary.facts import VenueFacts
from services.itinerary.model import (
    DONE,
    IN_PROGRESS,
    MISSED,
    UPCOMING,
    Place,
    Plan,
    Progress,
    Stop,
)

MAX_TAP_IDS = 200
# Leaving a stop's zone sooner than this after arriving is passing through.
MIN_VISIT = timedelta(minutes=4)


class TapKind(Enum):
    ENTRY = "entry"
    EXIT = "exit"
    STANDBY = "standby"
    MERGE = "merge"
    BOARDING = "boarding"


@dataclass(frozen=True, slots=True)
class Tap:
    tap_id: str
    kind: TapKind
    guest_id: str
    at: datetime
    attraction_id: str = ""
    place: Place = field(default_factory=Place)


def stop_guests(plan: Plan, stop: Stop) -> tuple[str, ...]:
    """Members a stop is for; empty means the whole party."""
    if stop.booking_id:
        booking = plan.booking(stop.booking_id)
        return booking.guest_ids if booking else ()
    wish = plan.wish(stop.wish_id)
    return wish.guest_ids if wish else ()


def _for_guest(plan: Plan, stop: Stop, guest_id: str) -> bool:
    guests = stop_guests(plan, stop)
    return not guests or guest_id in guests


def _with_stop(plan: Plan, stop: Stop) -> Plan:
    return replace(plan, stops=tuple(stop if s.stop_id == stop.stop_id else s for s in plan.stops))


def _arrived(plan: Plan, at: datetime) -> Plan:
    """Any sign of the party inside (malls have no gates) means it entered."""
    if plan.entered_at is None or (plan.left_at is not None and plan.left_at >= plan.entered_at):
        if plan.left_at is not None and at <= plan.left_at:
            return plan
        return replace(plan, entered_at=at)
    return plan


def apply_tap(plan: Plan, tap: Tap, facts: VenueFacts) -> Plan | None:
    """The plan after a tap by a member, or None when it changes nothing."""
    if tap.tap_id in plan.tap_ids:
        return None
    updated = replace(plan, tap_ids=(*plan.tap_ids, tap.tap_id)[-MAX_TAP_IDS:])
    if tap.place and (updated.place_at is None or tap.at >= updated.place_at):
        updated = replace(updated, place=tap.place, place_at=tap.at)
    if tap.kind is TapKind.EXIT:
        return replace(updated, left_at=tap.at)
    updated = _arrived(updated, tap.at)
    if tap.kind is TapKind.ENTRY:
        return updated
    return _ride_tap(updated, tap, facts)


def _ride_tap(plan: Plan, tap: Tap, facts: VenueFacts) -> Plan:
    at_ride = [
        s
        for s in plan.stops
        if s.open and s.poi_id == tap.attraction_id and _for_guest(plan, s, tap.guest_id)
    ]
    if tap.kind is TapKind.MERGE:
        # A merge tap uses a booking: prefer the booking's stop.
        at_ride.sort(key=lambda s: (not s.booking_id, s.state != IN_PROGRESS))
    else:
        at_ride.sort(key=lambda s: (s.state != IN_PROGRESS, bool(s.booking_id)))
    stop = at_ride[0] if at_ride else None
    # Joining one line abandons any other line the party was in.
    for other in plan.stops:
        if other.state == IN_PROGRESS and other.poi_id != tap.attraction_id:
            fact = facts.poi(other.poi_id)
            if fact is not None and fact.is_attraction:
                plan = _with_stop(plan, replace(other, state=UPCOMING, joined_at=None))
    if stop is None:
        return plan
    if tap.kind is TapKind.BOARDING:
        fact = facts.poi(stop.poi_id)
        ride = timedelta(seconds=fact.ride_s if fact else 0.0)
        done = replace(
            stop,
            state=DONE,
            joined_at=stop.joined_at or tap.at,
            actual_start_at=tap.at,
            actual_end_at=tap.at + ride,
        )
        return _with_stop(plan, done)
    if stop.state == UPCOMING:
        return _with_stop(plan, replace(stop, state=IN_PROGRESS, joined_at=tap.at))
    return plan


def apply_place(plan: Plan, place: Place, at: datetime, facts: VenueFacts) -> Plan | None:
    """The plan after a member was placed (location), or None if nothing changed."""
    if plan.place_at is not None and at < plan.place_at:
        return None
    updated = replace(plan, place=place, place_at=at) if place else plan
    if place:
        updated = _arrived(updated, at)
    here = facts.poi_of_zone.get(place.zone_id, "") if place else ""
    for stop in updated.stops:
        fact = facts.poi(stop.poi_id)
        if fact is None or fact.is_attraction:
            continue  # lines are followed by taps, which are exact
        if stop.state == UPCOMING and stop.poi_id == here:
            updated = _with_stop(updated, replace(stop, state=IN_PROGRESS, joined_at=at))
        elif stop.state == IN_PROGRESS and stop.poi_id != here and stop.joined_at is not None:
            if at - stop.joined_at >= MIN_VISIT:
                finished = replace(
                    stop, state=DONE, actual_start_at=stop.joined_at, actual_end_at=at
                )
            else:
                finished = replace(stop, state=UPCOMING, joined_at=None)
            updated = _with_stop(updated, finished)
    return None if updated == plan else updated


def apply_charge(plan: Plan, merchant_id: str, at: datetime) -> Plan | None:
    """A purchase at a stop's merchant (a meal, a snack) means the stop happened."""
    for stop in plan.stops:
        if stop.open and stop.poi_id == merchant_id:
            started = stop.joined_at or at
            return _with_stop(
                plan,
                replace(
                    stop, state=DONE, joined_at=started, actual_start_at=started, actual_end_at=at
                ),
            )
    return None


def mark_missed(plan: Plan, now: datetime, facts: VenueFacts) -> Plan | None:
    """Fixed-time stops whose window is over, unstarted, become MISSED."""
    changed = plan
    for stop in plan.stops:
        if stop.state != UPCOMING or stop.window is None:
            continue
        end = stop.window.end
        if stop.booking_id:
            booking = plan.booking(stop.booking_id)
            if booking is not None and booking.from_queue:
                end = end + facts.late_grace
        if now >= end:
            changed = _with_stop(changed, replace(stop, state=MISSED))
    return None if changed is plan else changed


def last_finish(plan: Plan) -> datetime | None:
    ends = [s.actual_end_at for s in plan.stops if s.state == DONE and s.actual_end_at]
    return max(ends) if ends else None


def planned_entry(plan: Plan) -> datetime | None:
    if plan.settings.arrive_at is not None:
        return plan.settings.arrive_at
    first = next((s for s in plan.stops if s.arrive_at is not None), None)
    if first is None or first.arrive_at is None:
        return None
    return first.arrive_at - timedelta(seconds=first.walk_s)


def offset_s(plan: Plan, now: datetime, walk_to_next_s: float | None) -> float | None:
    """Seconds behind (+) or ahead (-) of the plan; None when unknown."""
    if not plan.optimized:
        return None
    nxt = plan.next_stop()
    if nxt is None or nxt.arrive_at is None:
        return 0.0
    if not plan.in_venue(now):
        if plan.entered_at is not None:
            return None  # left the venue: not tracking
        entry = planned_entry(plan)
        return max(0.0, (now - entry).total_seconds()) if entry else None
    if nxt.state == IN_PROGRESS and nxt.joined_at is not None:
        late = (nxt.joined_at - nxt.arrive_at).total_seconds()
        if nxt.start_at is not None and now > nxt.start_at:
            late = max(late, (now - nxt.start_at).total_seconds())
        return late
    free_at = max(now, last_finish(plan) or now)
    walk = walk_to_next_s if walk_to_next_s is not None else nxt.walk_s
    return (free_at + timedelta(seconds=walk) - nxt.arrive_at).total_seconds()


def in_line(plan: Plan) -> bool:
    """Whether the party is in an attraction's line (or at a stop) now."""
    return any(s.state == IN_PROGRESS for s in plan.stops)


def summary(plan: Plan, now: datetime, walk_to_next_s: float | None = None) -> Progress:
    done = sum(1 for s in plan.stops if s.state == DONE)
    remaining = sum(1 for s in plan.stops if s.open)
    nxt = plan.next_stop()
    return Progress(
        stops_done=done,
        stops_remaining=remaining,
        next_stop_id=nxt.stop_id if nxt else "",
        offset_s=offset_s(plan, now, walk_to_next_s),
        place=plan.place,
        as_of=now,
    )
