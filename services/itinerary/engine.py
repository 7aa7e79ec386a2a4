"""The nudge engine's rules: pure. Given the plan, the party's progress and
place, the venue's lines and forecasts and the time, each rule proposes
candidates, each with a reason the guest can read ("Why am I seeing this?"), an
action the app can take and the minutes it saves. The attention budget
(budget.py) then decides what each guest receives.

The engine also says which facts it would need from routing (walking times,
nearby snacks, a crowd-free route) so the caller asks only for those, when an
open nudge no longer holds (withdrawn), when to look again if nothing happens
(a reservation approaching), and when the plan itself should be re-optimized.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.itinerary import live
from services.itinerary.facts import VenueFacts
from services.itinerary.live import LineState
from services.itinerary.model import (
    BETTER_ROUTE,
    BOARDING_GROUP_CALLED,
    GO_NOW,
    LEAVE_NOW,
    LOW,
    NORMAL,
    RIDE_DOWN_REPLAN,
    SKIP_OR_MOVE,
    SKIPPED,
    SNACK_BREAK,
    TIME_CRITICAL,
    UPCOMING,
    VIRTUAL_QUEUE,
    Booking,
    Candidate,
    MoveStop,
    Nudge,
    OpenPlan,
    OpenRoute,
    Plan,
    SkipStop,
    Stop,
)
from services.itinerary.progress import in_line
from venue.itinerary.v1 import itinerary_pb2 as pb

MINUTE = 60.0

# Ahead of the plan by this much: time for a snack.
AHEAD_FOR_SNACK_S = 20 * MINUTE
SNACK_MAX_WALK_S = 5 * MINUTE
SNACK_MAX_WAIT_S = 5 * MINUTE
# A snack break is not measured in minutes saved; it ranks below anything that
# saves real time, and one dismissal silences it (budget.MIN_SCORE_S).
SNACK_VALUE_S = 5 * MINUTE
SNACK_TAGS = (("cold_drink",), ("snack",))
# Behind the plan by this much: suggest a stop to skip or move.
BEHIND_FOR_SKIP_S = 15 * MINUTE
SKIP_LOOKAHEAD = 4
# Moving beats skipping when it keeps most of the saving and the wish.
MOVE_PREFERENCE = 0.8
# Leave for a fixed-time stop this long before the walk must start.
LEAVE_LEAD_S = 5 * MINUTE
LEAVE_BUFFER_S = 3 * MINUTE
# What keeping a booking is worth when nothing better is known: a meal or a show
# missed costs the party about this much to make up.
BOOKING_VALUE_S = 30 * MINUTE
MIN_BOOKED_RIDE_VALUE_S = 10 * MINUTE
# A zone this full (count / capacity) slows walkers.
CONGESTED_DENSITY = 0.8
# An outage costs a party heading to the ride its walk plus about this much.
OUTAGE_COST_S = 15 * MINUTE
OUTAGE_NOTICE_S = 5 * MINUTE
# Re-optimize when this far behind, at most this often.
BEHIND_REPLAN_S = 20 * MINUTE
REPLAN_COOLDOWN = timedelta(minutes=15)
# Look again at a party in the venue at least this often, events or not.
RECHECK = timedelta(minutes=10)
MIN_RECHECK = timedelta(minutes=1)
# Waits looked at for a wait-jump replan: stops due within this horizon.
JUMP_HORIZON = timedelta(minutes=90)

ATTRACTION_DOWN = int(pb.REPLAN_REASON_ATTRACTION_DOWN)
WAIT_CHANGED = int(pb.REPLAN_REASON_WAIT_CHANGED)
BEHIND_SCHEDULE = int(pb.REPLAN_REASON_BEHIND_SCHEDULE)
NOT_OPERATING = int(pb.SKIP_REASON_NOT_OPERATING)

Forecaster = Callable[[str, datetime], float | None]


@dataclass(frozen=True, slots=True)
class SnackOption:
    poi_id: str
    walk_s: float
    wait_s: float | None = None
    node_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RouteOption:
    destination_poi_id: str
    # The usual (shortest) way, with the delay its crowds cause.
    usual_s: float
    # The crowd-aware way routing found.
    better_s: float
    node_ids: tuple[str, ...]
    congested_zones: tuple[str, ...] = ()


@dataclass(frozen=True)
class Situation:
    now: datetime
    plan: Plan
    facts: VenueFacts
    lines: Mapping[str, LineState]
    forecast: Forecaster
    # Walking seconds from the party's place to points of interest (routing).
    walks: Mapping[str, float] = field(default_factory=dict)
    offset_s: float | None = None
    snacks: tuple[SnackOption, ...] = ()
    route: RouteOption | None = None

    def walk_to(self, stop: Stop) -> float | None:
        if stop.poi_id in self.walks:
            return self.walks[stop.poi_id]
        return stop.walk_s if stop.predicted else None

    def line(self, poi_id: str) -> LineState | None:
        return self.lines.get(poi_id)

    def name(self, poi_id: str) -> str:
        return self.facts.name(poi_id)

    def clock(self, at: datetime) -> str:
        return self.facts.local_time(at)


def _min(seconds: float) -> int:
    return max(1, round(seconds / MINUTE))


def _upcoming(plan: Plan) -> list[Stop]:
    return [s for s in plan.stops if s.state == UPCOMING]


def _is_ride(s: Situation, stop: Stop) -> bool:
    fact = s.facts.poi(stop.poi_id)
    return fact is not None and fact.is_attraction


# --- the rules ----------------------------------------------------------------


def go_now(s: Situation) -> list[Candidate]:
    """A must-do ride's wait fell well below its forecast: go now."""
    plan = s.plan
    if in_line(plan):
        return []
    nxt = plan.next_stop()
    found: list[Candidate] = []
    for stop in _upcoming(plan):
        if not stop.must_do or not _is_ride(s, stop) or stop.booking_id:
            continue
        line = s.line(stop.poi_id)
        if line is None or line.status != live.OPEN or line.posted_wait_s is None:
            continue
        expected_now = s.forecast(stop.poi_id, s.now)
        if expected_now is None or not live.is_drop(line.posted_wait_s, expected_now):
            continue
        walk = s.walk_to(stop)
        if walk is None:
            continue
        expected_later = stop.wait_s if stop.predicted else expected_now
        if stop is nxt:
            # Heading there anyway: only worth a word if the plan has them wait
            # somewhere first (a fixed start later than now plus the walk).
            continue
        saved = max(expected_later, expected_now) - line.posted_wait_s - walk
        name = s.name(stop.poi_id)
        planned = f" at {s.clock(stop.arrive_at)}" if stop.arrive_at else " later"
        found.append(
            Candidate(
                kind=GO_NOW,
                dedup_key=f"go_now:{stop.stop_id}",
                subject=stop.stop_id,
                title=f"{name}: {_min(line.posted_wait_s)} min wait now",
                body=(
                    f"Its line is much shorter than usual for this time. It is a "
                    f"{_min(walk)}-minute walk from you."
                ),
                reason=(
                    f"{name} is a must-do on your plan{planned}, where we expect about "
                    f"{_min(expected_later)} min in line. Right now the wait is "
                    f"{_min(line.posted_wait_s)} min against {_min(expected_now)} min "
                    f"forecast for this time."
                ),
                action=OpenRoute(stop.poi_id, (), walk),
                time_saved_s=saved,
                urgency=NORMAL,
                expires_at=s.now + timedelta(minutes=20),
            )
        )
    return found


def _booking_value(s: Situation, stop: Stop, booking: Booking | None) -> float:
    if booking is not None and booking.from_queue:
        standby = s.forecast(stop.poi_id, stop.window.start if stop.window else s.now)
        return max(standby or 0.0, MIN_BOOKED_RIDE_VALUE_S)
    return BOOKING_VALUE_S


def leave_by(s: Situation, stop: Stop) -> datetime | None:
    """When the party must start walking to a fixed-time stop."""
    if stop.window is None:
        return None
    walk = s.walk_to(stop)
    if walk is None:
        return None
    return stop.window.start - timedelta(seconds=walk + LEAVE_BUFFER_S)


def _deadline(s: Situation, stop: Stop) -> datetime | None:
    """The last moment arriving still counts."""
    if stop.window is None:
        return None
    booking = s.plan.booking(stop.booking_id) if stop.booking_id else None
    if booking is not None and booking.from_queue:
        return stop.window.end + s.facts.late_grace
    return stop.window.start + timedelta(minutes=10)


def leave_now(s: Situation) -> list[Candidate]:
    """A return window, meal or show starts soon and the walk takes N minutes."""
    found: list[Candidate] = []
    for stop in _upcoming(s.plan):
        by = leave_by(s, stop)
        deadline = _deadline(s, stop)
        walk = s.walk_to(stop)
        if by is None or deadline is None or walk is None or stop.window is None:
            continue
        if walk < MINUTE:
            continue  # already there
        if s.now < by - timedelta(seconds=LEAVE_LEAD_S):
            continue
        if s.now + timedelta(seconds=walk) > deadline:
            continue  # too late to make it: the plan marks it missed
        booking = s.plan.booking(stop.booking_id) if stop.booking_id else None
        if booking is not None and booking.kind == VIRTUAL_QUEUE:
            continue  # the boarding message covers it
        name = s.name(stop.poi_id)
        what = _what(booking, stop)
        late = s.now > by
        found.append(
            Candidate(
                kind=LEAVE_NOW,
                dedup_key=f"leave_now:{stop.stop_id}",
                subject=stop.stop_id,
                title=(f"Leave now for {name}" if not late else f"Running late for {name}: go now"),
                body=(
                    f"Your {what} starts at {s.clock(stop.window.start)} and it is a "
                    f"{_min(walk)}-minute walk."
                ),
                reason=(
                    f"You have a {what} at {name} at {s.clock(stop.window.start)}. From where "
                    f"you are the walk takes about {_min(walk)} min, so leaving by "
                    f"{s.clock(by)} gets you there on time."
                ),
                action=OpenRoute(stop.poi_id, (), walk),
                time_saved_s=_booking_value(s, stop, booking),
                urgency=TIME_CRITICAL,
                expires_at=min(deadline, stop.window.end),
            )
        )
    return found


def _what(booking: Booking | None, stop: Stop) -> str:
    if booking is None:
        return "show" if stop.window is not None else "visit"
    return _WHAT.get(booking.kind, "booking")


_WHAT: dict[int, str] = {
    int(pb.PLAN_BOOKING_KIND_MEAL_RESERVATION): "reservation",
    int(pb.PLAN_BOOKING_KIND_SHOW): "show",
    int(pb.PLAN_BOOKING_KIND_RETURN_TIME): "return time",
    int(pb.PLAN_BOOKING_KIND_VIRTUAL_QUEUE): "boarding window",
}


def snack_break(s: Situation) -> list[Candidate]:
    """Ahead of the plan: a nearby cold drink or snack with a short line."""
    if s.offset_s is None or -s.offset_s < AHEAD_FOR_SNACK_S or in_line(s.plan):
        return []
    nxt = s.plan.next_stop()
    if nxt is None:
        return []
    options = [
        o
        for o in s.snacks
        if o.walk_s <= SNACK_MAX_WALK_S and (o.wait_s is None or o.wait_s <= SNACK_MAX_WAIT_S)
    ]
    if not options:
        return []
    best = min(options, key=lambda o: (o.walk_s + (o.wait_s or 0.0), o.poi_id))
    name = s.name(best.poi_id)
    spare = _min(-s.offset_s)
    line = "no line" if not best.wait_s else f"about {_min(best.wait_s)} min in line"
    return [
        Candidate(
            kind=SNACK_BREAK,
            dedup_key=f"snack:{nxt.stop_id}",
            subject=f"snack:{nxt.stop_id}",
            title=f"Ahead of plan: time for a treat at {name}",
            body=f"{_min(best.walk_s)} min away, {line}, before {s.name(nxt.poi_id)}.",
            reason=(
                f"You are about {spare} min ahead of your plan, and {name} is open close "
                f"by with a short line."
            ),
            action=OpenRoute(best.poi_id, best.node_ids, best.walk_s),
            time_saved_s=SNACK_VALUE_S,
            urgency=LOW,
            expires_at=s.now + timedelta(minutes=20),
        )
    ]


def skip_or_move(s: Situation) -> list[Candidate]:
    """Behind the plan: which stop to skip, or to move later."""
    if s.offset_s is None or s.offset_s < BEHIND_FOR_SKIP_S:
        return []
    plan = s.plan
    leave = plan.settings.leave_at or s.facts.closing(plan.date)
    best: Candidate | None = None
    for stop in _upcoming(plan)[:SKIP_LOOKAHEAD]:
        if stop.must_do or stop.window is not None or not stop.wish_id or not stop.predicted:
            continue
        assert stop.start_at is not None and stop.end_at is not None
        name = s.name(stop.poi_id)
        behind = _min(s.offset_s)
        skip_saves = stop.walk_s + stop.wait_s + (stop.end_at - stop.start_at).total_seconds()
        later = s.forecast(stop.poi_id, leave - timedelta(hours=1)) if _is_ride(s, stop) else None
        move_saves = stop.wait_s - later if later is not None else 0.0
        if move_saves >= MOVE_PREFERENCE * skip_saves or (
            move_saves >= 10 * MINUTE and move_saves >= stop.wait_s * 0.5
        ):
            cand = Candidate(
                kind=SKIP_OR_MOVE,
                dedup_key=f"move:{stop.stop_id}",
                subject=stop.stop_id,
                title=f"Running {behind} min behind: do {name} later?",
                body=(
                    f"Its line should be about {_min(later or 0)} min late in the day instead "
                    f"of {_min(stop.wait_s)} min."
                ),
                reason=(
                    f"You are about {behind} min behind your plan. {name} is a nice-to-do, and "
                    f"its wait is forecast to fall later today."
                ),
                action=MoveStop(stop.stop_id, ""),
                time_saved_s=move_saves,
                urgency=NORMAL,
                expires_at=s.now + timedelta(minutes=30),
            )
        else:
            cand = Candidate(
                kind=SKIP_OR_MOVE,
                dedup_key=f"skip:{stop.stop_id}",
                subject=stop.stop_id,
                title=f"Running {behind} min behind: skip {name}?",
                body=f"Skipping it gives you back about {_min(skip_saves)} min.",
                reason=(
                    f"You are about {behind} min behind your plan. {name} is a nice-to-do with "
                    f"about {_min(stop.wait_s)} min in line; skipping it keeps your must-dos "
                    f"on time."
                ),
                action=SkipStop(stop.stop_id),
                time_saved_s=skip_saves,
                urgency=NORMAL,
                expires_at=s.now + timedelta(minutes=30),
            )
        if best is None or cand.time_saved_s > best.time_saved_s:
            best = cand
    return [best] if best is not None else []


def better_route(s: Situation) -> list[Candidate]:
    """Crowds on the planned walk: a better way."""
    route = s.route
    nxt = s.plan.next_stop()
    if route is None or nxt is None or nxt.state != UPCOMING:
        return []
    if route.destination_poi_id != nxt.poi_id:
        return []
    saved = route.usual_s - route.better_s
    if saved <= 0:
        return []
    name = s.name(nxt.poi_id)
    return [
        Candidate(
            kind=BETTER_ROUTE,
            dedup_key=f"route:{nxt.stop_id}",
            subject=f"route:{nxt.stop_id}",
            title=f"Crowds ahead: a quicker way to {name}",
            body=f"This way takes about {_min(route.better_s)} min instead of "
            f"{_min(route.usual_s)}.",
            reason=(
                f"Your usual way to {name} crosses crowded areas right now, costing about "
                f"{_min(saved)} min; this route avoids them."
            ),
            action=OpenRoute(nxt.poi_id, route.node_ids, route.better_s),
            time_saved_s=saved,
            urgency=NORMAL,
            expires_at=s.now + timedelta(minutes=10),
        )
    ]


def _down(s: Situation) -> dict[str, LineState]:
    return {
        poi: line
        for poi, line in s.lines.items()
        if line.status in (live.DOWN, live.CLOSED) and line.status_since is not None
    }


def ride_down(s: Situation) -> list[Candidate]:
    """A ride on the plan went down: here is the new plan (once it accounts for it)."""
    plan = s.plan
    if plan.planned_at is None:
        return []
    down = _down(s)
    if not down:
        return []
    found: list[Candidate] = []
    affected = [
        (stop.poi_id, stop.stop_id)
        for stop in plan.stops
        if stop.poi_id in down and stop.state in (UPCOMING, SKIPPED) and stop.wish_id
    ]
    for poi, stop_id in affected:
        line = down[poi]
        assert line.status_since is not None
        if plan.planned_at < line.status_since:
            continue  # the replan that accounts for it is on its way
        if s.now - line.status_since > timedelta(minutes=30):
            continue
        stop = plan.stop(stop_id)
        assert stop is not None
        name = s.name(poi)
        heading = stop_id == plan.previous_next_stop_id
        walk = s.walks.get(poi, stop.walk_s)
        saved = walk + OUTAGE_COST_S if heading else OUTAGE_NOTICE_S
        if stop.must_do and not heading:
            saved = 2 * OUTAGE_NOTICE_S
        state = (
            "closed for the rest of the day" if line.status == live.CLOSED else ("temporarily down")
        )
        went = "down" if line.status == live.DOWN else "out of service"
        if stop.state == SKIPPED:
            change = f"{name} is off your plan for now."
        elif stop.start_at is not None:
            change = f"{name} is now planned at {s.clock(stop.start_at)}."
        else:
            change = "Your plan has been reordered."
        found.append(
            Candidate(
                kind=RIDE_DOWN_REPLAN,
                dedup_key=f"ride_down:{poi}:{line.status_since.isoformat()}",
                subject=stop_id,
                title=f"{name} is {state}: your plan changed",
                body=change,
                reason=(
                    f"{name} is on your plan and went {went} at "
                    f"{s.clock(line.status_since)}. We re-planned your day around it."
                ),
                action=OpenPlan(plan.version),
                time_saved_s=saved,
                urgency=TIME_CRITICAL if heading else NORMAL,
                expires_at=s.now + timedelta(minutes=30),
            )
        )
    return found


def boarding_candidate(
    booking: Booking, facts: VenueFacts, now: datetime, walk_s: float | None, stop_id: str = ""
) -> Candidate | None:
    """A virtual-queue group was called: board now (a service message)."""
    if booking.kind != VIRTUAL_QUEUE or booking.window is None:
        return None
    if now >= booking.window.end + facts.late_grace:
        return None
    name = facts.name(booking.poi_id)
    until = facts.local_time(booking.window.end)
    walk = f" It is a {_min(walk_s)}-minute walk." if walk_s else ""
    called = facts.local_time(booking.called_at or now)
    return Candidate(
        kind=BOARDING_GROUP_CALLED,
        dedup_key=f"board:{booking.external_ref or booking.booking_id}",
        subject=stop_id or f"booking:{booking.booking_id}",
        title=f"Your group for {name} is boarding",
        body=f"Come to the return entrance by {until}.{walk}",
        reason=(f"You joined the virtual queue for {name}; your group was called at {called}."),
        action=OpenRoute(booking.poi_id, (), walk_s or 0.0),
        time_saved_s=0.0,
        urgency=TIME_CRITICAL,
        expires_at=booking.window.end + facts.late_grace,
        guest_ids=booking.guest_ids,
    )


def boarding_called(s: Situation) -> list[Candidate]:
    found: list[Candidate] = []
    for booking in s.plan.bookings:
        stop = next((x for x in s.plan.stops if x.booking_id == booking.booking_id), None)
        if stop is not None and not stop.open:
            continue
        cand = boarding_candidate(
            booking, s.facts, s.now, s.walks.get(booking.poi_id), stop.stop_id if stop else ""
        )
        if cand is not None:
            found.append(cand)
    return found


RULES: tuple[Callable[[Situation], list[Candidate]], ...] = (
    go_now,
    leave_now,
    snack_break,
    skip_or_move,
    better_route,
    ride_down,
)


def candidates(s: Situation) -> list[Candidate]:
    """Every rule's candidates for the party now."""
    found = boarding_called(s)
    if not s.plan.in_venue(s.now):
        return found
    for rule in RULES:
        found += rule(s)
    return found


# --- what to fetch, what to withdraw, when to look again, when to replan -------


@dataclass(frozen=True, slots=True)
class Wants:
    walk_to: frozenset[str] = frozenset()
    snacks: bool = False
    route_to: str = ""


def _worth_a_walk(
    stop: Stop, line: LineState | None, forecast: Forecaster, now: datetime, horizon: datetime
) -> bool:
    """A stop whose walking time a rule could use: fixed-time soon, down, or a
    must-do whose line is well below its forecast."""
    if stop.window is not None and stop.window.start <= horizon:
        return True
    if line is None:
        return False
    if line.status in (live.DOWN, live.CLOSED):
        return True
    if not stop.must_do or line.posted_wait_s is None:
        return False
    expected = forecast(stop.poi_id, now)
    return expected is not None and live.is_drop(line.posted_wait_s, expected)


def wants(
    plan: Plan,
    facts: VenueFacts,
    lines: Mapping[str, LineState],
    forecast: Forecaster,
    now: datetime,
    offset_s: float | None,
    density: Callable[[str], float],
) -> Wants:
    """The routing facts the rules could use now; cheap checks first, so a
    quiet moment costs no routing call."""
    if not plan.in_venue(now):
        return Wants()
    nxt = plan.next_stop()
    horizon = now + timedelta(hours=1)
    pois = {
        stop.poi_id
        for stop in _upcoming(plan)
        if _worth_a_walk(stop, lines.get(stop.poi_id), forecast, now, horizon)
    }
    pois |= {b.poi_id for b in plan.bookings if b.kind == VIRTUAL_QUEUE and b.window}
    if nxt is not None:
        pois.add(nxt.poi_id)
    free = nxt is not None and not in_line(plan)
    snacks = free and offset_s is not None and -offset_s >= AHEAD_FOR_SNACK_S
    route_to = ""
    if (
        free
        and nxt is not None
        and any(facts.walked_zone(z) and density(z) >= CONGESTED_DENSITY for z in nxt.route_zones)
    ):
        route_to = nxt.poi_id
    return Wants(frozenset(pois), snacks, route_to)


def _go_now_holds(nudge: Nudge, stop: Stop | None, s: Situation) -> bool:
    if stop is None or stop.state != UPCOMING:
        return False
    line = s.line(stop.poi_id)
    if line is None or line.status != live.OPEN or line.posted_wait_s is None:
        return False
    expected = s.forecast(stop.poi_id, s.now)
    return expected is None or line.posted_wait_s <= expected * 0.8


def _skip_holds(nudge: Nudge, stop: Stop | None, s: Situation) -> bool:
    return (
        stop is not None
        and stop.state == UPCOMING
        and (s.offset_s is None or s.offset_s >= BEHIND_FOR_SKIP_S / 3)
    )


def _route_holds(nudge: Nudge, stop: Stop | None, s: Situation) -> bool:
    nxt = s.plan.next_stop()
    action = nudge.action
    return (
        nxt is not None
        and nxt.state == UPCOMING
        and isinstance(action, OpenRoute)
        and action.destination_poi_id == nxt.poi_id
    )


_HOLDS: dict[int, Callable[[Nudge, Stop | None, Situation], bool]] = {
    GO_NOW: _go_now_holds,
    LEAVE_NOW: lambda n, stop, s: stop is not None and stop.state == UPCOMING,
    SKIP_OR_MOVE: _skip_holds,
    SNACK_BREAK: lambda n, stop, s: s.offset_s is None or -s.offset_s >= AHEAD_FOR_SNACK_S / 2,
    BETTER_ROUTE: _route_holds,
    BOARDING_GROUP_CALLED: lambda n, stop, s: stop is None or stop.open,
}


def still_valid(nudge: Nudge, s: Situation) -> bool:
    """Whether an open nudge still describes the situation; if not it is
    withdrawn. Looser than the rule that made it, so a value hovering at a
    threshold does not make nudges come and go."""
    holds = _HOLDS.get(nudge.kind)
    if holds is None:
        return True
    stop = s.plan.stop(nudge.subject) if nudge.subject else None
    return holds(nudge, stop, s)


def next_check(s: Situation) -> datetime | None:
    """When to look at the party again if no event comes first: before a
    leave-now is due, else every few minutes while it is in the venue; never
    sooner than a minute from now."""
    soonest = s.now + MIN_RECHECK
    if not s.plan.in_venue(s.now):
        starts = [b.window.start for b in s.plan.bookings if b.window and b.window.start > s.now]
        if not starts:
            return None
        return max(soonest, min(starts) - timedelta(hours=1))
    times = [s.now + RECHECK]
    for stop in _upcoming(s.plan):
        by = leave_by(s, stop)
        if by is not None:
            times.append(by - timedelta(seconds=LEAVE_LEAD_S))
    return max(soonest, min(t for t in times if t > s.now))


def _down_since_planned(plan: Plan, lines: Mapping[str, LineState]) -> bool:
    """A stop's ride went down after the plan was made, or a ride the plan had
    to leave out came back."""
    assert plan.planned_at is not None
    for stop in _upcoming(plan):
        line = lines.get(stop.poi_id)
        if (
            line is not None
            and line.status_since is not None
            and line.status in (live.DOWN, live.CLOSED)
            and plan.planned_at < line.status_since
        ):
            return True
    for skipped in plan.skipped:
        wish = plan.wish(skipped.wish_id) if skipped.reason == NOT_OPERATING else None
        line = lines.get(wish.poi_id) if wish else None
        if (
            line is not None
            and line.status == live.OPEN
            and line.status_since is not None
            and plan.planned_at < line.status_since
        ):
            return True
    return False


def _wait_jumped(
    plan: Plan, lines: Mapping[str, LineState], forecast: Forecaster, now: datetime
) -> bool:
    """A standby line the party is due at soon is far longer than forecast, and
    than the plan expected."""
    for stop in _upcoming(plan):
        if stop.arrive_at is None or stop.arrive_at > now + JUMP_HORIZON or stop.booking_id:
            continue
        line = lines.get(stop.poi_id)
        if line is None or line.posted_wait_s is None or line.status != live.OPEN:
            continue
        expected = forecast(stop.poi_id, now)
        if (
            expected is not None
            and live.is_jump(line.posted_wait_s, expected)
            and line.posted_wait_s >= stop.wait_s + live.JUMP_MIN_S
        ):
            return True
    return False


def replan_reason(
    plan: Plan,
    lines: Mapping[str, LineState],
    forecast: Forecaster,
    now: datetime,
    offset_s: float | None,
) -> int | None:
    """Whether the plan should be re-optimized now, and why."""
    if plan.planned_at is None:
        return None  # the background retry owns unoptimized plans
    if _down_since_planned(plan, lines):
        return ATTRACTION_DOWN
    if now - plan.planned_at < REPLAN_COOLDOWN:
        return None
    if _wait_jumped(plan, lines, forecast, now):
        return WAIT_CHANGED
    last = plan.behind_replan_at
    if (
        offset_s is not None
        and offset_s >= BEHIND_REPLAN_S
        and plan.in_venue(now)
        and (last is None or now - last >= REPLAN_COOLDOWN)
    ):
        return BEHIND_SCHEDULE
    return None
