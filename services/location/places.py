"""What a guest's place looks like to someone asking: the status rules."""

from __future__ import annotations

from dataclasses import dataclass

from services.location.placement import GuestArrays
from venue.location.v1 import location_pb2 as pb

# Unheard this long (venue time), a guest not placed is taken to be gone.
GONE_AFTER_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Place:
    status: int
    zone: int = -1
    reader: int = -1
    at_ms: int = 0


def place_of(guests: GuestArrays, slot: int, consenting: bool, now_ms: int) -> Place:
    """A guest's place as shown to their party, ops and services.

    Tracking off: nothing but that. Placed from reads their consent covers:
    KNOWN. Never heard, last heard in an exit zone, or unheard for an hour:
    NOT_IN_VENUE. Otherwise (heard lately, placed nowhere now): UNKNOWN.
    """
    if not consenting:
        return Place(pb.LOCATION_STATUS_TRACKING_OFF)
    g = guests
    zone = int(g.zone[slot])
    best_at = int(g.best_at[slot])
    if zone >= 0 and g.consent_since[slot] <= best_at:
        return Place(pb.LOCATION_STATUS_KNOWN, zone, int(g.best_reader[slot]), best_at)
    last = int(g.last_heard[slot])
    if last == 0 or bool(g.exited[slot]) or now_ms - last > GONE_AFTER_MS:
        return Place(pb.LOCATION_STATUS_NOT_IN_VENUE)
    return Place(pb.LOCATION_STATUS_UNKNOWN)
