"""The itinerary's records: a party's day plan and the nudges sent about it.

Values are immutable; the pure modules (planning, progress, engine, budget)
return new ones. Times are aware datetimes in venue time, durations seconds.
Enumerations use the numbers of the public proto so that records and messages
agree without a mapping table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from venue.itinerary.v1 import itinerary_pb2 as pb

MUST_DO = int(pb.WISH_PRIORITY_MUST_DO)
NICE_TO_DO = int(pb.WISH_PRIORITY_NICE_TO_DO)

MEAL_RESERVATION = int(pb.PLAN_BOOKING_KIND_MEAL_RESERVATION)
SHOW = int(pb.PLAN_BOOKING_KIND_SHOW)
RETURN_TIME = int(pb.PLAN_BOOKING_KIND_RETURN_TIME)
VIRTUAL_QUEUE = int(pb.PLAN_BOOKING_KIND_VIRTUAL_QUEUE)
QUEUE_BOOKING_KINDS = frozenset({RETURN_TIME, VIRTUAL_QUEUE})

UPCOMING = int(pb.STOP_STATE_UPCOMING)
IN_PROGRESS = int(pb.STOP_STATE_IN_PROGRESS)
DONE = int(pb.STOP_STATE_DONE)
SKIPPED = int(pb.STOP_STATE_SKIPPED)
MISSED = int(pb.STOP_STATE_MISSED)
OPEN_STATES = frozenset({UPCOMING, IN_PROGRESS})

SNACK_BREAK = int(pb.NUDGE_KIND_SNACK_BREAK)
SKIP_OR_MOVE = int(pb.NUDGE_KIND_SKIP_OR_MOVE)
BETTER_ROUTE = int(pb.NUDGE_KIND_BETTER_ROUTE)
GO_NOW = int(pb.NUDGE_KIND_GO_NOW)
LEAVE_NOW = int(pb.NUDGE_KIND_LEAVE_NOW)
RIDE_DOWN_REPLAN = int(pb.NUDGE_KIND_RIDE_DOWN_REPLAN)
BOARDING_GROUP_CALLED = int(pb.NUDGE_KIND_BOARDING_GROUP_CALLED)
NUDGE_KINDS = (
    SNACK_BREAK,
    SKIP_OR_MOVE,
    BETTER_ROUTE,
    GO_NOW,
    LEAVE_NOW,
    RIDE_DOWN_REPLAN,
    BOARDING_GROUP_CALLED,
)
# Messages the guest asked for (by joining a virtual queue): outside the
# attention budget, quiet periods and the personalized-nudges consent.
SERVICE_KINDS = frozenset({BOARDING_GROUP_CALLED})

LOW = int(pb.NUDGE_URGENCY_LOW)
NORMAL = int(pb.NUDGE_URGENCY_NORMAL)
TIME_CRITICAL = int(pb.NUDGE_URGENCY_TIME_CRITICAL)

SENT = int(pb.NUDGE_STATUS_SENT)
SEEN = int(pb.NUDGE_STATUS_SEEN)
ACCEPTED = int(pb.NUDGE_STATUS_ACCEPTED)
DISMISSED = int(pb.NUDGE_STATUS_DISMISSED)
EXPIRED = int(pb.NUDGE_STATUS_EXPIRED)
WITHDRAWN = int(pb.NUDGE_STATUS_WITHDRAWN)

ACK_SEEN = int(pb.NUDGE_ACK_KIND_SEEN)
ACK_ACCEPTED = int(pb.NUDGE_ACK_KIND_ACCEPTED)
ACK_DISMISSED = int(pb.NUDGE_ACK_KIND_DISMISSED)


@dataclass(frozen=True, slots=True)
class Place:
    zone_id: str = ""
    node_id: str = ""

    def __bool__(self) -> bool:
        return bool(self.zone_id or self.node_id)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval [start, end) of venue time."""

    start: datetime
    end: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class PlanSettings:
    start_place: Place = Place()
    arrive_at: datetime | None = None
    leave_at: datetime | None = None
    walking_speed_mps: float = 0.0
    accessible: bool = False
    avoid_crowds: bool = False


@dataclass(frozen=True, slots=True)
class Wish:
    wish_id: str
    poi_id: str
    priority: int
    window: Window | None = None
    duration_s: float | None = None
    guest_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Booking:
    booking_id: str
    kind: int
    poi_id: str
    # Unset for a virtual-queue booking whose group has not been called.
    window: Window | None = None
    external_ref: str = ""
    guest_ids: tuple[str, ...] = ()
    called_at: datetime | None = None

    @property
    def from_queue(self) -> bool:
        return self.kind in QUEUE_BOOKING_KINDS


@dataclass(frozen=True, slots=True)
class Stop:
    stop_id: str
    poi_id: str
    state: int = UPCOMING
    wish_id: str = ""
    booking_id: str = ""
    must_do: bool = False
    # A fixed-time stop (a booking, or a wish with a start window).
    window: Window | None = None
    # The plan's prediction; unset while the plan waits for the optimizer.
    arrive_at: datetime | None = None
    walk_s: float = 0.0
    wait_s: float = 0.0
    start_at: datetime | None = None
    end_at: datetime | None = None
    # Zones the planned walk to this stop crosses, in order (congestion checks).
    route_zones: tuple[str, ...] = ()
    # What happened: joined the line (standby or merge tap), boarded / started.
    joined_at: datetime | None = None
    actual_start_at: datetime | None = None
    actual_end_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def predicted(self) -> bool:
        return self.arrive_at is not None and self.start_at is not None


@dataclass(frozen=True, slots=True)
class SkippedWish:
    wish_id: str
    reason: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    plan_id: str
    party_id: str
    date: date
    version: int
    settings: PlanSettings
    wishes: tuple[Wish, ...]
    bookings: tuple[Booking, ...]
    stops: tuple[Stop, ...]
    skipped: tuple[SkippedWish, ...]
    last_replan_reason: int
    planned_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # Where the party was last seen (a tap, or location for consenting guests).
    place: Place = Place()
    place_at: datetime | None = None
    # Gate taps: the party is in the venue between entered_at and left_at.
    entered_at: datetime | None = None
    left_at: datetime | None = None
    # Wishes the guest chose to drop (an accepted SKIP nudge) or move later.
    guest_skipped: frozenset[str] = frozenset()
    not_before: tuple[tuple[str, datetime], ...] = ()
    # Taps already applied, so a replayed tap changes nothing.
    tap_ids: tuple[str, ...] = ()
    # When the schedule was last re-timed because the party fell behind.
    behind_replan_at: datetime | None = None
    # The stop the party was heading to before the last replan.
    previous_next_stop_id: str = ""
    # Queue bookings the guest removed from the plan (kept at the queue).
    dropped_refs: frozenset[str] = frozenset()

    def wish(self, wish_id: str) -> Wish | None:
        return next((w for w in self.wishes if w.wish_id == wish_id), None)

    def booking(self, booking_id: str) -> Booking | None:
        return next((b for b in self.bookings if b.booking_id == booking_id), None)

    def stop(self, stop_id: str) -> Stop | None:
        return next((s for s in self.stops if s.stop_id == stop_id), None)

    def open_stops(self) -> Iterator[Stop]:
        return (s for s in self.stops if s.open)

    def next_stop(self) -> Stop | None:
        """The stop the party is at or should head to."""
        in_line = next((s for s in self.stops if s.state == IN_PROGRESS), None)
        return in_line or next((s for s in self.stops if s.state == UPCOMING), None)

    @property
    def optimized(self) -> bool:
        return self.planned_at is not None

    def in_venue(self, now: datetime) -> bool:
        if self.entered_at is None:
            return False
        return self.left_at is None or self.left_at < self.entered_at

    def not_before_of(self, wish_id: str) -> datetime | None:
        return dict(self.not_before).get(wish_id)

    def bump(self, at: datetime) -> Plan:
        return replace(self, version=self.version + 1, updated_at=at)


@dataclass(frozen=True, slots=True)
class Progress:
    stops_done: int
    stops_remaining: int
    next_stop_id: str
    # Positive: behind the plan by this many seconds; negative: ahead. None:
    # unknown (the plan is not optimized yet, or the party has not arrived).
    offset_s: float | None
    place: Place
    as_of: datetime


# --- nudges -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenRoute:
    destination_poi_id: str
    node_ids: tuple[str, ...] = ()
    walking_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Book:
    attraction_id: str
    window: Window | None = None
    virtual_queue: bool = False


@dataclass(frozen=True, slots=True)
class SkipStop:
    stop_id: str


@dataclass(frozen=True, slots=True)
class MoveStop:
    stop_id: str
    before_stop_id: str = ""


@dataclass(frozen=True, slots=True)
class OpenPlan:
    plan_version: int


Action = OpenRoute | Book | SkipStop | MoveStop | OpenPlan


@dataclass(frozen=True, slots=True)
class Candidate:
    """A message a rule would like to send, before the attention budget."""

    kind: int
    # Two candidates with the same key are the same message; a guest gets a
    # key at most once a day.
    dedup_key: str
    # What it is about (a stop, a booking): one message per subject at a time.
    subject: str
    title: str
    body: str
    reason: str
    action: Action
    time_saved_s: float
    urgency: int
    expires_at: datetime
    # Members it concerns; empty means the whole party.
    guest_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Nudge:
    nudge_id: str
    guest_id: str
    party_id: str
    plan_id: str
    kind: int
    dedup_key: str
    subject: str
    title: str
    body: str
    reason: str
    action: Action
    time_saved_s: float
    urgency: int
    status: int
    created_at: datetime
    expires_at: datetime
    seen_at: datetime | None = None
    acted_at: datetime | None = None

    def status_at(self, now: datetime) -> int:
        """Sent or seen nudges past their expiry read as expired (ignored)."""
        if self.status in (SENT, SEEN) and now >= self.expires_at:
            return EXPIRED
        return self.status

    def is_open(self, now: datetime) -> bool:
        return self.status_at(now) in (SENT, SEEN)

    @property
    def budgeted(self) -> bool:
        return self.kind not in SERVICE_KINDS


@dataclass(frozen=True, slots=True)
class Preferences:
    guest_id: str
    quiet_periods: tuple[Window, ...] = ()
    muted_kinds: frozenset[int] = frozenset()
    # 0: the venue's budget.
    max_per_hour: int = 0

    def quiet_at(self, at: datetime) -> bool:
        return any(w.contains(at) for w in self.quiet_periods)


@dataclass(slots=True)
class KindFeedback:
    accepted: int = 0
    dismissed: int = 0


@dataclass(slots=True)
class GuestNudgeState:
    """What the budget needs to know of one guest's day so far."""

    guest_id: str
    day: date
    # Creation times of nudges that count toward the budget, oldest first.
    budgeted_at: list[datetime] = field(default_factory=list)
    sent_keys: set[str] = field(default_factory=set)
    feedback: dict[int, KindFeedback] = field(default_factory=dict)
    open_nudges: dict[str, Nudge] = field(default_factory=dict)

    def record_sent(self, nudge: Nudge) -> None:
        self.sent_keys.add(nudge.dedup_key)
        if nudge.budgeted:
            self.budgeted_at.append(nudge.created_at)
            self.budgeted_at.sort()
        self.open_nudges[nudge.nudge_id] = nudge

    def record_ack(self, kind: int, ack: int) -> None:
        fb = self.feedback.setdefault(kind, KindFeedback())
        if ack == ACK_ACCEPTED:
            fb.accepted += 1
        elif ack == ACK_DISMISSED:
            fb.dismissed += 1

    def sent_within(self, start: datetime, end: datetime) -> int:
        """Budgeted nudges created in (start, end]."""
        return sum(1 for at in self.budgeted_at if start < at <= end)

    def last_budgeted(self) -> datetime | None:
        return self.budgeted_at[-1] if self.budgeted_at else None


HOUR = timedelta(hours=1)
