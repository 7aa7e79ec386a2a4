"""Entitlement rules, free of I/O: what a valid ticket, return time, pass, room
key or staff pass is; until when each can be used; the status a reader sees;
and which callers may issue, move and revoke which kinds."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from typing import Any

from services.access.records import EntitlementRecord
from services.access.venue_index import VenueIndex
from services.platform import validation
from services.platform.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from services.platform.principal import Principal, StaffRole
from venue.access.v1 import access_pb2 as pb
from venue.common.v1 import common_pb2

ACTIVE = pb.ENTITLEMENT_STATUS_ACTIVE
USED = pb.ENTITLEMENT_STATUS_USED
REVOKED = pb.ENTITLEMENT_STATUS_REVOKED
EXPIRED = pb.ENTITLEMENT_STATUS_EXPIRED

OPS = StaffRole.Value("STAFF_ROLE_OPS")
ADMIN = StaffRole.Value("STAFF_ROLE_ADMIN")
DESK = StaffRole.Value("STAFF_ROLE_DESK")

KIND_OF_DETAILS = {
    "park_ticket": pb.ENTITLEMENT_KIND_PARK_TICKET,
    "return_time": pb.ENTITLEMENT_KIND_RETURN_TIME,
    "virtual_queue_pass": pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE,
    "hotel_room_key": pb.ENTITLEMENT_KIND_HOTEL_ROOM,
    "staff_access": pb.ENTITLEMENT_KIND_STAFF_ACCESS,
}
DETAILS_OF_KIND = {kind: name for name, kind in KIND_OF_DETAILS.items()}

# Sanity bounds: a request beyond them is a mistake, not a ticket.
MAX_TICKET_DATES = 400
MAX_ENTRIES_PER_DAY = 100
MAX_RETURN_WINDOW = timedelta(hours=12)
MAX_STAY = timedelta(days=60)
MAX_STAFF_VALIDITY = timedelta(days=400)
MAX_STAFF_POINTS = 500

# Who issues (and moves) each kind: the desk sells tickets and room keys, the
# queue service books return times and passes, administrators grant staff access
# (and may correct anything).
_ISSUERS: dict[int, tuple[frozenset[int], frozenset[str]]] = {
    pb.ENTITLEMENT_KIND_PARK_TICKET: (frozenset({DESK, ADMIN}), frozenset()),
    pb.ENTITLEMENT_KIND_RETURN_TIME: (frozenset({ADMIN}), frozenset({"queue"})),
    pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE: (frozenset({ADMIN}), frozenset({"queue"})),
    pb.ENTITLEMENT_KIND_HOTEL_ROOM: (frozenset({DESK, ADMIN}), frozenset()),
    pb.ENTITLEMENT_KIND_STAFF_ACCESS: (frozenset({ADMIN}), frozenset()),
}


def may_issue(who: Principal, kind: int) -> bool:
    roles, services = _ISSUERS[kind]
    return who.is_staff(*roles) or (bool(services) and who.is_service(*services))


def may_revoke(who: Principal, kind: int) -> bool:
    if who.is_staff(DESK, OPS, ADMIN):
        return True
    # The queue service cancels the bookings it made.
    return who.is_service("queue") and kind in (
        pb.ENTITLEMENT_KIND_RETURN_TIME,
        pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE,
    )


def require_issuer(who: Principal, kind: int, action: str) -> None:
    if not may_issue(who, kind):
        name = pb.EntitlementKind.Name(kind)  # type: ignore[arg-type]
        raise PermissionDenied(f"not allowed to {action} {name} entitlements")


# --- parsing requests ------------------------------------------------------------


def venue_date(value: common_pb2.VenueDate, field: str) -> date:
    if not 2000 <= value.year < 2100:
        raise InvalidArgument(field, "year between 2000 and 2099")
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidArgument(field, "not a calendar date") from None


def time_range(
    value: common_pb2.TimeRange, field: str, longest: timedelta, *, required: bool = True
) -> tuple[datetime, datetime] | None:
    has_start = value.HasField("start")
    has_end = value.HasField("end")
    if not has_start and not has_end:
        if required:
            raise InvalidArgument(field, "required: start and end")
        return None
    start = validation.timestamp(value.start, f"{field}.start")
    end = validation.timestamp(value.end, f"{field}.end")
    assert start is not None and end is not None
    if end <= start:
        raise InvalidArgument(f"{field}.end", "must be after start")
    if end - start > longest:
        raise InvalidArgument(field, f"longer than {_span(longest)}")
    return start, end


def _span(delta: timedelta) -> str:
    if delta >= timedelta(days=1):
        return f"{delta.days} days"
    return f"{int(delta.total_seconds() // 3600)} hours"


def _attraction(venue: VenueIndex, attraction_id: str, field: str, virtual: bool) -> str:
    attraction_id = validation.ref(attraction_id, field)
    offers = venue.attraction(attraction_id)
    if offers is None:
        raise InvalidArgument(field, "no attraction with this id in the venue")
    return_time, virtual_queue = offers
    if virtual and not virtual_queue:
        raise InvalidArgument(field, "this attraction has no virtual queue")
    if not virtual and not return_time:
        raise InvalidArgument(field, "this attraction offers no return times")
    return attraction_id


def draft_from_request(
    which: str | None, request: pb.CreateEntitlementRequest, venue: VenueIndex
) -> dict[str, Any]:
    """The columns of a new entitlement from the request's details."""
    if which is None:
        raise InvalidArgument("details", "required: one of the entitlement kinds")
    if which == "park_ticket":
        fields = _park_ticket(request.park_ticket, venue)
    elif which == "return_time":
        fields = _return_time(request.return_time, venue)
    elif which == "virtual_queue_pass":
        fields = _virtual_queue(request.virtual_queue_pass, venue)
    elif which == "hotel_room_key":
        fields = _room_key(request.hotel_room_key, venue)
    else:
        fields = _staff_access(request.staff_access, venue)
    return {"kind": KIND_OF_DETAILS[which], **fields}


def _window(start_end: tuple[datetime, datetime] | None) -> dict[str, Any]:
    if start_end is None:
        return {}
    return {"window_start": start_end[0], "window_end": start_end[1]}


def _return_time(rt: pb.ReturnTime, venue: VenueIndex) -> dict[str, Any]:
    return {
        "attraction_id": _attraction(
            venue, rt.attraction_id, "return_time.attraction_id", virtual=False
        ),
        **_window(time_range(rt.window, "return_time.window", MAX_RETURN_WINDOW)),
        "booking_id": validation.text(
            rt.booking_id, "return_time.booking_id", max_len=100, required=False
        ),
    }


def _virtual_queue(vq: pb.VirtualQueuePass, venue: VenueIndex) -> dict[str, Any]:
    attraction_id = _attraction(
        venue, vq.attraction_id, "virtual_queue_pass.attraction_id", virtual=True
    )
    if not 0 <= vq.boarding_group <= 100_000:
        raise InvalidArgument("virtual_queue_pass.boarding_group", "between 0 and 100000")
    return {
        "attraction_id": attraction_id,
        "boarding_group": vq.boarding_group,
        "booking_id": validation.text(
            vq.booking_id, "virtual_queue_pass.booking_id", max_len=100, required=False
        ),
        **_window(
            time_range(vq.window, "virtual_queue_pass.window", MAX_RETURN_WINDOW, required=False)
        ),
    }


def _room_key(key: pb.HotelRoomKey, venue: VenueIndex) -> dict[str, Any]:
    hotel_id = validation.ref(key.hotel_id, "hotel_room_key.hotel_id")
    rooms = venue.hotel_rooms.get(hotel_id)
    if rooms is None:
        raise InvalidArgument("hotel_room_key.hotel_id", "no hotel with this id in the venue")
    room_id = validation.ref(key.room_id, "hotel_room_key.room_id")
    if room_id not in rooms:
        raise InvalidArgument("hotel_room_key.room_id", "no such room in this hotel")
    return {
        "hotel_id": hotel_id,
        "room_id": room_id,
        **_window(time_range(key.stay, "hotel_room_key.stay", MAX_STAY)),
    }


def _staff_access(staff: pb.StaffAccess, venue: VenueIndex) -> dict[str, Any]:
    valid = time_range(staff.valid, "staff_access.valid", MAX_STAFF_VALIDITY)
    if len(staff.access_point_ids) > MAX_STAFF_POINTS:
        raise InvalidArgument("staff_access.access_point_ids", f"at most {MAX_STAFF_POINTS}")
    points: list[str] = []
    for i, given in enumerate(staff.access_point_ids):
        field = f"staff_access.access_point_ids[{i}]"
        ap = validation.ref(given, field)
        if venue.point(ap) is None:
            raise InvalidArgument(field, "no access point with this id in the venue")
        if ap not in points:
            points.append(ap)
    return {**_window(valid), "access_point_ids": tuple(points)}


def _park_ticket(ticket: pb.ParkTicket, venue: VenueIndex) -> dict[str, Any]:
    if not venue.has_gates:
        raise FailedPrecondition(
            "this venue has no gates: park tickets are not used", reason="NO_GATES"
        )
    park_id = validation.ref(ticket.park_id, "park_ticket.park_id", required=False)
    if park_id and park_id != venue.venue_id:
        raise InvalidArgument("park_ticket.park_id", "not a park of this venue")
    if not ticket.valid_dates:
        raise InvalidArgument("park_ticket.valid_dates", "required: at least one date")
    if len(ticket.valid_dates) > MAX_TICKET_DATES:
        raise InvalidArgument("park_ticket.valid_dates", f"at most {MAX_TICKET_DATES} dates")
    dates = sorted(
        {venue_date(d, f"park_ticket.valid_dates[{i}]") for i, d in enumerate(ticket.valid_dates)}
    )
    if not 0 <= ticket.days_allowed <= len(dates):
        raise InvalidArgument(
            "park_ticket.days_allowed", "between 0 (every date) and the number of dates"
        )
    if ticket.days_used:
        raise InvalidArgument("park_ticket.days_used", "output only: leave unset")
    if not 0 <= ticket.entries_per_day <= MAX_ENTRIES_PER_DAY:
        raise InvalidArgument(
            "park_ticket.entries_per_day", f"between 0 (unlimited) and {MAX_ENTRIES_PER_DAY}"
        )
    return {
        "park_id": park_id,
        "valid_dates": tuple(dates),
        "days_allowed": ticket.days_allowed,
        "entries_per_day": ticket.entries_per_day,
    }


def movable_window(kind: int, value: common_pb2.TimeRange) -> tuple[datetime, datetime]:
    """The new window of an UpdateEntitlement for an entitlement of this kind."""
    if kind in (pb.ENTITLEMENT_KIND_RETURN_TIME, pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE):
        longest = MAX_RETURN_WINDOW
    elif kind == pb.ENTITLEMENT_KIND_HOTEL_ROOM:
        longest = MAX_STAY
    else:
        raise FailedPrecondition(
            "only return times, virtual-queue passes and room keys have a window to move",
            reason="NOT_MOVABLE",
            subject="entitlement_id",
        )
    window = time_range(value, "window", longest)
    assert window is not None
    return window


# --- validity -------------------------------------------------------------------


def valid_until(record: EntitlementRecord, venue: VenueIndex) -> datetime | None:
    """The first instant at which the entitlement can no longer be used."""
    if record.kind == pb.ENTITLEMENT_KIND_PARK_TICKET:
        return venue.day_end(max(record.valid_dates)) if record.valid_dates else None
    if record.kind in (pb.ENTITLEMENT_KIND_RETURN_TIME, pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE):
        if record.window_end is None:
            return None
        return record.window_end + venue.grace.late
    return record.window_end


def with_validity(record: EntitlementRecord, venue: VenueIndex) -> EntitlementRecord:
    return dataclasses.replace(record, valid_until=valid_until(record, venue))


def shown_status(record: EntitlementRecord, now: datetime) -> int:
    """The status a reader sees: an active entitlement past its validity is
    EXPIRED, or USED when a ticket was used on some day."""
    if record.status != ACTIVE or record.valid_until is None or record.valid_until > now:
        return record.status
    if record.kind == pb.ENTITLEMENT_KIND_PARK_TICKET and record.days_used > 0:
        return USED
    return EXPIRED


def is_current(record: EntitlementRecord, now: datetime) -> bool:
    return shown_status(record, now) == ACTIVE
