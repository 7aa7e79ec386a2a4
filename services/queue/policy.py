"""Who may call each queue RPC. Finer checks (a guest acts only for their own
party) are the servicer's."""

from __future__ import annotations

from services.platform.principal import ALL_STAFF, StaffRole, allow

OPS = StaffRole.Value("STAFF_ROLE_OPS")
ADMIN = StaffRole.Value("STAFF_ROLE_ADMIN")
DESK = StaffRole.Value("STAFF_ROLE_DESK")

# Services that read waits and forecasts (routes, plans, reports).
READERS = ["routing", "itinerary", "photo", "access", "location"]

POLICY = {
    "GetWaitTimes": allow(guests=True, staff=ALL_STAFF, services=READERS),
    "GetAttractionState": allow(guests=True, staff=ALL_STAFF, services=READERS),
    "SetAttractionStatus": allow(staff=[OPS]),
    "GetForecast": allow(guests=True, staff=ALL_STAFF, services=READERS),
    "GetWaitHistory": allow(staff=[OPS, ADMIN], services=READERS),
    "ListReturnTimeSlots": allow(guests=True, staff=[OPS, DESK], services=["itinerary"]),
    "JoinVirtualQueue": allow(guests=True, staff=[OPS, DESK]),
    "BookReturnTime": allow(guests=True, staff=[OPS, DESK]),
    "CancelBooking": allow(guests=True, staff=[OPS, DESK]),
    "Rebook": allow(guests=True, staff=[OPS, DESK]),
    "GetBooking": allow(guests=True, staff=ALL_STAFF, services=["itinerary"]),
    "ListBookings": allow(guests=True, staff=ALL_STAFF, services=["itinerary"]),
    # Not apps: booking events name parties (guests hear of a call through
    # itinerary's nudges).
    "WatchQueueEvents": allow(staff=[OPS], services=["routing", "itinerary", "photo"]),
}
