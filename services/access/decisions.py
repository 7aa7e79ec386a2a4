"""The tap rules, free of I/O: given an access point, the band's wearer, what the
guest holds and the time of the tap, ALLOW or DENY with a reason a gate can show.

`precheck` decides what needs no guest state (unknown or deactivated band, a
closed access point, the height rule, standby and boarding); `decide` does the
rest from a `GuestState` read in the store. Every window is half-open,
[start, end): a return window with the venue's grace is
[start - early, end + late), a hotel stay [check-in, check-out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from services.access.venue_index import Grace, PointInfo
from venue.access.v1 import access_pb2 as pb
from venue.identity.v1 import identity_pb2 as identity_pb

CHILD = identity_pb.PARTY_ROLE_CHILD
ACTIVE = pb.ENTITLEMENT_STATUS_ACTIVE
USED = pb.ENTITLEMENT_STATUS_USED

TICKET = pb.ENTITLEMENT_KIND_PARK_TICKET
RETURN_TIME = pb.ENTITLEMENT_KIND_RETURN_TIME
VIRTUAL_QUEUE = pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE
HOTEL_ROOM = pb.ENTITLEMENT_KIND_HOTEL_ROOM
STAFF = pb.ENTITLEMENT_KIND_STAFF_ACCESS

ENTRY = pb.ACCESS_POINT_KIND_PARK_ENTRY
EXIT = pb.ACCESS_POINT_KIND_PARK_EXIT
STANDBY = pb.ACCESS_POINT_KIND_RIDE_STANDBY_ENTRANCE
MERGE = pb.ACCESS_POINT_KIND_RIDE_RETURN_MERGE
BOARDING = pb.ACCESS_POINT_KIND_RIDE_BOARDING
HOTEL_DOOR = pb.ACCESS_POINT_KIND_HOTEL_DOOR
STAFF_DOOR = pb.ACCESS_POINT_KIND_STAFF_DOOR

# The entitlement kinds each kind of access point reads from the store.
KINDS_READ: dict[int, tuple[int, ...]] = {
    ENTRY: (TICKET, STAFF),
    EXIT: (),
    MERGE: (RETURN_TIME, VIRTUAL_QUEUE),
    HOTEL_DOOR: (HOTEL_ROOM,),
    STAFF_DOOR: (STAFF,),
}


def needs_state(point_kind: int) -> bool:
    """Whether the decision at this kind of access point reads the guest's state."""
    return point_kind in KINDS_READ


@dataclass(frozen=True, slots=True)
class Wearer:
    """Who wears the band, as identity says."""

    band_id: str
    guest_id: str
    party_id: str
    active: bool
    role: int
    height_cm: int


@dataclass(frozen=True, slots=True)
class Held:
    """One of the guest's entitlements, as the tap rules see it."""

    entitlement_id: str
    kind: int
    status: int
    park_id: str = ""
    valid_dates: frozenset[date] = frozenset()
    days_allowed: int = 0
    entries_per_day: int = 0
    days_used: int = 0
    last_day: date | None = None
    entries_last_day: int = 0
    attraction_id: str = ""
    room_id: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    access_point_ids: frozenset[str] = frozenset()

    @property
    def day_cap(self) -> int:
        """Days a ticket may be used on."""
        return self.days_allowed or len(self.valid_dates)


@dataclass(frozen=True, slots=True)
class GuestState:
    version: int  # 0: the guest holds nothing yet
    inside: bool
    presence_day: date | None
    held: tuple[Held, ...]

    def is_inside(self, day: date) -> bool:
        return self.inside and self.presence_day == day


@dataclass(frozen=True, slots=True)
class Use:
    """What an allowed tap does to the entitlement it used."""

    entitlement_id: str
    status: int
    days_used: int | None = None
    last_day: date | None = None
    entries_last_day: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reason: int  # DenyReason; 0 when allowed
    message: str
    entitlement_id: str = ""
    entitlement_kind: int = 0
    window: tuple[datetime, datetime] | None = None
    # Presence after the tap (gates); None leaves it as it was.
    inside: bool | None = None
    use: Use | None = None
    # Read the guest's state: it must be unchanged when the tap is recorded.
    read_state: bool = False


def deny(
    reason: int,
    message: str,
    *,
    entitlement_id: str = "",
    entitlement_kind: int = 0,
    window: tuple[datetime, datetime] | None = None,
    read_state: bool = False,
) -> Decision:
    return Decision(
        False,
        reason,
        message,
        entitlement_id=entitlement_id,
        entitlement_kind=entitlement_kind,
        window=window,
        read_state=read_state,
    )


Clock = Callable[[datetime], str]

# The decisions that need no guest state, made once (Decision is immutable).
_RIDE = Decision(True, 0, "Enjoy the ride!")
_WELCOME = Decision(True, 0, "Welcome!")


def precheck(point: PointInfo, is_open: bool, wearer: Wearer | None) -> Decision | None:
    """The decision when it needs no guest state, else None."""
    if not is_open:
        return deny(pb.DENY_REASON_ACCESS_POINT_CLOSED, "Closed - please use another entrance")
    if wearer is None:
        return deny(pb.DENY_REASON_UNKNOWN_BAND, "Band not recognised - please see a cast member")
    if not wearer.active:
        return deny(
            pb.DENY_REASON_BAND_DEACTIVATED, "This band is no longer active - see a cast member"
        )
    if point.kind in (STANDBY, MERGE, BOARDING):
        short = height_denial(point.min_height_cm, wearer)
        if short is not None:
            return short
    if point.kind in (STANDBY, BOARDING):
        return _RIDE
    if not needs_state(point.kind):
        # Photo kiosks: their taps are the photo service's claims.
        return _WELCOME
    return None


def height_denial(min_height_cm: int, wearer: Wearer) -> Decision | None:
    """A child never measured is sent to be measured; an adult never measured is
    taken to be tall enough (adults rarely give a height)."""
    if min_height_cm <= 0:
        return None
    if wearer.height_cm > 0:
        if wearer.height_cm >= min_height_cm:
            return None
        return deny(
            pb.DENY_REASON_HEIGHT_REQUIREMENT_NOT_MET,
            f"Riders must be at least {min_height_cm} cm tall",
        )
    if wearer.role == CHILD:
        return deny(
            pb.DENY_REASON_HEIGHT_REQUIREMENT_NOT_MET,
            f"Height check needed ({min_height_cm} cm) - please see a cast member",
        )
    return None


def decide(
    point: PointInfo,
    wearer: Wearer,
    state: GuestState,
    at: datetime,
    day: date,
    grace: Grace,
    clock: Clock,
) -> Decision:
    """The decision at an access point that reads the guest's state (after a
    `precheck` that returned None)."""
    if point.kind == ENTRY:
        return _entry(point, state, at, day)
    if point.kind == EXIT:
        if state.is_inside(day):
            return Decision(True, 0, "Thank you for visiting!", inside=False, read_state=True)
        return deny(
            pb.DENY_REASON_NOT_INSIDE,
            "No entry recorded today - please see a cast member",
            read_state=True,
        )
    if point.kind == MERGE:
        return _merge(point, state.held, at, grace, clock)
    if point.kind == HOTEL_DOOR:
        return _hotel_door(point, state.held, at)
    if point.kind == STAFF_DOOR:
        staff = _staff_pass(point, state.held, at)
        if staff is not None:
            return Decision(
                True,
                0,
                "Welcome",
                entitlement_id=staff.entitlement_id,
                entitlement_kind=STAFF,
                read_state=True,
            )
        return deny(pb.DENY_REASON_STAFF_ONLY, "Staff only", read_state=True)
    raise ValueError(f"access point kind {point.kind} reads no state")


def _within(start: datetime | None, end: datetime | None, at: datetime) -> bool:
    return start is not None and end is not None and start <= at < end


def _staff_pass(point: PointInfo, held: Sequence[Held], at: datetime) -> Held | None:
    for h in held:
        if (
            h.kind == STAFF
            and h.status == ACTIVE
            and _within(h.window_start, h.window_end, at)
            and (not h.access_point_ids or point.access_point_id in h.access_point_ids)
        ):
            return h
    return None


def _ticket_use(ticket: Held, day: date) -> Use | None:
    """How an entry today would use this ticket, or None if it cannot."""
    if ticket.last_day == day:
        if ticket.entries_per_day and ticket.entries_last_day >= ticket.entries_per_day:
            return None
        entries = ticket.entries_last_day + 1
        days = ticket.days_used
    else:
        if ticket.days_used >= ticket.day_cap:
            return None
        entries = 1
        days = ticket.days_used + 1
    finished = (
        days >= ticket.day_cap
        and bool(ticket.entries_per_day)
        and (entries >= ticket.entries_per_day)
    )
    return Use(
        ticket.entitlement_id,
        USED if finished else ACTIVE,
        days_used=days,
        last_day=day,
        entries_last_day=entries,
    )


def _entry(point: PointInfo, state: GuestState, at: datetime, day: date) -> Decision:
    if state.is_inside(day):
        return deny(
            pb.DENY_REASON_ALREADY_INSIDE,
            "Already checked in - please see a cast member",
            read_state=True,
        )
    staff = _staff_pass(point, state.held, at)
    if staff is not None:
        return Decision(
            True,
            0,
            "Welcome",
            entitlement_id=staff.entitlement_id,
            entitlement_kind=STAFF,
            inside=True,
            read_state=True,
        )
    valid_today = [
        h
        for h in state.held
        if h.kind == TICKET
        and h.status in (ACTIVE, USED)
        and h.park_id in ("", point.park_id)
        and day in h.valid_dates
    ]
    # A ticket already used today re-admits without spending another day.
    valid_today.sort(key=lambda h: (h.last_day != day, len(h.valid_dates)))
    for ticket in valid_today:
        if ticket.status != ACTIVE:
            continue
        use = _ticket_use(ticket, day)
        if use is not None:
            return Decision(
                True,
                0,
                "Welcome!",
                entitlement_id=ticket.entitlement_id,
                entitlement_kind=TICKET,
                inside=True,
                use=use,
                read_state=True,
            )
    if valid_today:
        return deny(
            pb.DENY_REASON_ENTRIES_EXHAUSTED,
            "Ticket fully used - please see Guest Services",
            read_state=True,
        )
    return deny(
        pb.DENY_REASON_NO_VALID_TICKET,
        "No ticket for today - please see Guest Services",
        read_state=True,
    )


def return_window(h: Held, grace: Grace) -> tuple[datetime, datetime] | None:
    """The window in which a return time or called pass admits, grace included."""
    if h.window_start is None or h.window_end is None:
        return None
    return h.window_start - grace.early, h.window_end + grace.late


def _merge(
    point: PointInfo, held: Sequence[Held], at: datetime, grace: Grace, clock: Clock
) -> Decision:
    mine = [
        h
        for h in held
        if h.kind in (RETURN_TIME, VIRTUAL_QUEUE) and h.attraction_id == point.attraction_id
    ]
    active = [h for h in mine if h.status == ACTIVE]
    usable: list[tuple[tuple[datetime, datetime], Held]] = []
    for h in active:
        window = return_window(h, grace)
        if window is not None and window[0] <= at < window[1]:
            usable.append((window, h))
    if usable:
        window, h = min(usable, key=lambda pair: pair[0][0])
        assert h.window_start is not None and h.window_end is not None
        return Decision(
            True,
            0,
            "Welcome - enjoy the ride!",
            entitlement_id=h.entitlement_id,
            entitlement_kind=h.kind,
            window=(h.window_start, h.window_end),
            use=Use(h.entitlement_id, USED),
            read_state=True,
        )
    upcoming: list[tuple[tuple[datetime, datetime], Held]] = []
    past: list[tuple[tuple[datetime, datetime], Held]] = []
    for h in active:
        window = return_window(h, grace)
        if window is None:
            continue
        (upcoming if at < window[0] else past).append((window, h))
    if upcoming:
        window, h = min(upcoming, key=lambda pair: pair[0][0])
        assert h.window_start is not None and h.window_end is not None
        return deny(
            pb.DENY_REASON_OUTSIDE_RETURN_WINDOW,
            f"Come back at {clock(window[0])}",
            entitlement_id=h.entitlement_id,
            entitlement_kind=h.kind,
            window=(h.window_start, h.window_end),
            read_state=True,
        )
    waiting = [h for h in active if h.kind == VIRTUAL_QUEUE and h.window_start is None]
    if waiting:
        h = waiting[0]
        return deny(
            pb.DENY_REASON_VIRTUAL_QUEUE_NOT_CALLED,
            "Your boarding group has not been called yet",
            entitlement_id=h.entitlement_id,
            entitlement_kind=h.kind,
            read_state=True,
        )
    if past:
        window, h = max(past, key=lambda pair: pair[0][1])
        assert h.window_start is not None and h.window_end is not None
        return deny(
            pb.DENY_REASON_OUTSIDE_RETURN_WINDOW,
            f"Your return time ended at {clock(window[1])}",
            entitlement_id=h.entitlement_id,
            entitlement_kind=h.kind,
            window=(h.window_start, h.window_end),
            read_state=True,
        )
    used = [h for h in mine if h.status == USED]
    if used:
        return deny(
            pb.DENY_REASON_ALREADY_USED,
            "This return time was already used",
            entitlement_id=used[0].entitlement_id,
            entitlement_kind=used[0].kind,
            read_state=True,
        )
    return deny(
        pb.DENY_REASON_NO_RETURN_TIME,
        "No return time for this ride - please use the standby line",
        read_state=True,
    )


def _hotel_door(point: PointInfo, held: Sequence[Held], at: datetime) -> Decision:
    for h in held:
        if (
            h.kind == HOTEL_ROOM
            and h.status == ACTIVE
            and h.room_id == point.room_id
            and _within(h.window_start, h.window_end, at)
        ):
            return Decision(
                True,
                0,
                "Welcome back",
                entitlement_id=h.entitlement_id,
                entitlement_kind=HOTEL_ROOM,
                read_state=True,
            )
    return deny(pb.DENY_REASON_NO_VALID_ROOM_KEY, "Key not valid for this room", read_state=True)
