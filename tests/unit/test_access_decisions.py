"""The tap rules on their own: every reason, windows at their exact edges,
anti-passback, tickets' days and entries, room keys at check-out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.access import decisions
from services.access.decisions import GuestState, Held, Wearer
from services.access.venue_index import Grace, PointInfo
from venue.access.v1 import access_pb2 as pb

GRACE = Grace(timedelta(minutes=5), timedelta(minutes=15))
DAY = date(2031, 7, 4)
T0 = datetime(2031, 7, 4, 14, 0, tzinfo=UTC)
ADULT = Wearer("band-1", "guest-1", "party-1", True, 1, 0)
CHILD = Wearer("band-2", "guest-2", "party-1", True, 2, 0)


def point(kind: int, **extra: object) -> PointInfo:
    fields: dict[str, object] = {
        "access_point_id": "ap.x",
        "name": "X",
        "kind": kind,
        "attraction_id": "ride",
        "park_id": "park",
        "hotel_id": "",
        "room_id": "",
        "zone_id": "z",
        "node_id": "n",
        "min_height_cm": 0,
        "devices": frozenset(),
    }
    fields.update(extra)
    return PointInfo(**fields)  # type: ignore[arg-type]


ENTRY = point(decisions.ENTRY)
EXIT = point(decisions.EXIT)
MERGE = point(decisions.MERGE)
BOARDING = point(decisions.BOARDING, min_height_cm=102)
ROOM = point(decisions.HOTEL_DOOR, room_id="room-101")
STAFF_DOOR = point(decisions.STAFF_DOOR)


def state(*held: Held, inside: bool = False, day: date | None = None) -> GuestState:
    return GuestState(1, inside, day, held)


def decide(at_point: PointInfo, st_: GuestState, at: datetime = T0) -> decisions.Decision:
    return decisions.decide(at_point, ADULT, st_, at, DAY, GRACE, lambda t: t.strftime("%H:%M"))


def ticket(**fields: object) -> Held:
    base: dict[str, object] = {
        "entitlement_id": "t1",
        "kind": decisions.TICKET,
        "status": decisions.ACTIVE,
        "valid_dates": frozenset({DAY}),
    }
    base.update(fields)
    return Held(**base)  # type: ignore[arg-type]


def return_time(start: datetime | None, kind: int = decisions.RETURN_TIME, **f: object) -> Held:
    base: dict[str, object] = {
        "entitlement_id": "r1",
        "kind": kind,
        "status": decisions.ACTIVE,
        "attraction_id": "ride",
        "window_start": start,
        "window_end": None if start is None else start + timedelta(hours=1),
    }
    base.update(f)
    return Held(**base)  # type: ignore[arg-type]


# --- no state needed ------------------------------------------------------------


def test_unknown_and_deactivated_bands_and_closed_points() -> None:
    unknown = decisions.precheck(BOARDING, True, None)
    assert unknown is not None and unknown.reason == pb.DENY_REASON_UNKNOWN_BAND
    lost = decisions.precheck(BOARDING, True, Wearer("b", "g", "p", False, 1, 150))
    assert lost is not None and lost.reason == pb.DENY_REASON_BAND_DEACTIVATED
    closed = decisions.precheck(ENTRY, False, ADULT)
    assert closed is not None and closed.reason == pb.DENY_REASON_ACCESS_POINT_CLOSED


def test_height_rule_at_ride_points() -> None:
    short = Wearer("b", "g", "p", True, 2, 101)
    tall = Wearer("b", "g", "p", True, 2, 102)
    denied = decisions.precheck(BOARDING, True, short)
    assert denied is not None and denied.reason == pb.DENY_REASON_HEIGHT_REQUIREMENT_NOT_MET
    allowed = decisions.precheck(BOARDING, True, tall)
    assert allowed is not None and allowed.allow
    # A child never measured is sent to be measured; an adult passes.
    unmeasured = decisions.precheck(BOARDING, True, CHILD)
    assert unmeasured is not None and not unmeasured.allow
    adult = decisions.precheck(BOARDING, True, ADULT)
    assert adult is not None and adult.allow
    # The height rule applies at the merge point before any return time is read.
    merge = decisions.precheck(point(decisions.MERGE, min_height_cm=102), True, short)
    assert merge is not None and merge.reason == pb.DENY_REASON_HEIGHT_REQUIREMENT_NOT_MET


def test_state_dependent_points_defer_to_decide() -> None:
    for p in (ENTRY, EXIT, MERGE, ROOM, STAFF_DOOR):
        assert decisions.precheck(p, True, ADULT) is None


# --- gates -------------------------------------------------------------------------


def test_entry_needs_a_ticket_for_today() -> None:
    assert decide(ENTRY, state()).reason == pb.DENY_REASON_NO_VALID_TICKET
    other_day = ticket(valid_dates=frozenset({DAY + timedelta(days=1)}))
    assert decide(ENTRY, state(other_day)).reason == pb.DENY_REASON_NO_VALID_TICKET
    other_park = ticket(park_id="elsewhere")
    assert decide(ENTRY, state(other_park)).reason == pb.DENY_REASON_NO_VALID_TICKET
    ok = decide(ENTRY, state(ticket()))
    assert ok.allow and ok.inside is True and ok.use is not None
    assert ok.use.days_used == 1 and ok.use.last_day == DAY and ok.use.entries_last_day == 1


def test_anti_passback() -> None:
    inside = state(ticket(), inside=True, day=DAY)
    assert decide(ENTRY, inside).reason == pb.DENY_REASON_ALREADY_INSIDE
    # Inside yesterday (left without tapping out) does not block today.
    assert decide(ENTRY, state(ticket(), inside=True, day=DAY - timedelta(days=1))).allow
    out = decide(EXIT, inside)
    assert out.allow and out.inside is False
    assert decide(EXIT, state(ticket())).reason == pb.DENY_REASON_NOT_INSIDE


def test_ticket_days_and_entries() -> None:
    two_dates = frozenset({DAY - timedelta(days=1), DAY})
    one_day_used = ticket(
        valid_dates=two_dates, days_allowed=1, days_used=1, last_day=DAY - timedelta(days=1)
    )
    assert decide(ENTRY, state(one_day_used)).reason == pb.DENY_REASON_ENTRIES_EXHAUSTED
    # Re-entry the same day spends no day; the daily cap applies.
    today = ticket(days_used=1, last_day=DAY, entries_last_day=1, entries_per_day=2)
    again = decide(ENTRY, state(today))
    assert again.allow and again.use is not None and again.use.days_used == 1
    assert again.use.entries_last_day == 2 and again.use.status == decisions.USED
    full = ticket(days_used=1, last_day=DAY, entries_last_day=2, entries_per_day=2)
    assert decide(ENTRY, state(full)).reason == pb.DENY_REASON_ENTRIES_EXHAUSTED
    used = ticket(status=decisions.USED, days_used=1, last_day=DAY, entries_last_day=2)
    assert decide(ENTRY, state(used)).reason == pb.DENY_REASON_ENTRIES_EXHAUSTED


def test_staff_access_admits_at_gates_and_staff_doors() -> None:
    staff = Held(
        "s1",
        decisions.STAFF,
        decisions.ACTIVE,
        window_start=T0 - timedelta(hours=1),
        window_end=T0 + timedelta(hours=1),
    )
    assert decide(ENTRY, state(staff)).allow
    assert decide(STAFF_DOOR, state(staff)).allow
    assert decide(STAFF_DOOR, state()).reason == pb.DENY_REASON_STAFF_ONLY
    elsewhere = Held(
        "s2",
        decisions.STAFF,
        decisions.ACTIVE,
        window_start=T0 - timedelta(hours=1),
        window_end=T0 + timedelta(hours=1),
        access_point_ids=frozenset({"ap.other"}),
    )
    assert decide(STAFF_DOOR, state(elsewhere)).reason == pb.DENY_REASON_STAFF_ONLY
    expired = Held(
        "s3", decisions.STAFF, decisions.ACTIVE, window_start=T0 - timedelta(hours=2), window_end=T0
    )
    assert decide(STAFF_DOOR, state(expired)).reason == pb.DENY_REASON_STAFF_ONLY


# --- return times -------------------------------------------------------------------


def test_return_window_exact_edges() -> None:
    start = T0
    end = T0 + timedelta(hours=1)
    st_ = state(return_time(start))
    tick = timedelta(microseconds=1)
    first = start - GRACE.early
    last = end + GRACE.late - tick
    assert decide(MERGE, st_, first).allow
    assert decide(MERGE, st_, last).allow
    early = decide(MERGE, st_, first - tick)
    assert early.reason == pb.DENY_REASON_OUTSIDE_RETURN_WINDOW
    assert early.window == (start, end) and "13:55" in early.message
    late = decide(MERGE, st_, end + GRACE.late)
    assert late.reason == pb.DENY_REASON_OUTSIDE_RETURN_WINDOW


def test_merge_reasons() -> None:
    assert decide(MERGE, state()).reason == pb.DENY_REASON_NO_RETURN_TIME
    other_ride = return_time(T0, attraction_id="other")
    assert decide(MERGE, state(other_ride)).reason == pb.DENY_REASON_NO_RETURN_TIME
    waiting = return_time(None, decisions.VIRTUAL_QUEUE)
    assert decide(MERGE, state(waiting)).reason == pb.DENY_REASON_VIRTUAL_QUEUE_NOT_CALLED
    called = return_time(T0, decisions.VIRTUAL_QUEUE)
    allowed = decide(MERGE, state(called))
    assert allowed.allow and allowed.use is not None and allowed.use.status == decisions.USED
    used = return_time(T0, status=decisions.USED)
    assert decide(MERGE, state(used)).reason == pb.DENY_REASON_ALREADY_USED


@given(
    offset=st.integers(min_value=-3 * 3600 * 10**6, max_value=3 * 3600 * 10**6),
    length=st.integers(min_value=60, max_value=4 * 3600),
)
def test_merge_admits_exactly_inside_the_graced_window(offset: int, length: int) -> None:
    h = return_time(T0, window_end=T0 + timedelta(seconds=length))
    at = T0 + timedelta(microseconds=offset)
    inside = T0 - GRACE.early <= at < T0 + timedelta(seconds=length) + GRACE.late
    assert decide(MERGE, state(h), at).allow is inside


# --- hotel doors ---------------------------------------------------------------------


def test_room_key_from_check_in_until_check_out() -> None:
    check_in, check_out = T0, T0 + timedelta(days=2)
    key = Held(
        "k1",
        decisions.HOTEL_ROOM,
        decisions.ACTIVE,
        room_id="room-101",
        window_start=check_in,
        window_end=check_out,
    )
    st_ = state(key)
    assert decide(ROOM, st_, check_in).allow
    assert decide(ROOM, st_, check_out - timedelta(microseconds=1)).allow
    at_check_out = decide(ROOM, st_, check_out)
    assert at_check_out.reason == pb.DENY_REASON_NO_VALID_ROOM_KEY
    assert not decide(ROOM, st_, check_in - timedelta(seconds=1)).allow
    other_room = point(decisions.HOTEL_DOOR, room_id="room-102")
    assert not decide(other_room, st_).allow
    revoked = Held(
        "k2",
        decisions.HOTEL_ROOM,
        pb.ENTITLEMENT_STATUS_REVOKED,
        room_id="room-101",
        window_start=check_in,
        window_end=check_out,
    )
    assert not decide(ROOM, state(revoked), check_in).allow
