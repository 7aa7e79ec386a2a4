"""Who may call each routing RPC.

The venue's map and points of interest are public facts of the venue: any
authenticated caller may read them. Routes, nearest points and plans are for guests
(the app), the services that plan for them (itinerary; queue for walking times) and
staff helping guests. Nothing here is personal: plans are computed and forgotten.
"""

from __future__ import annotations

from services.platform.principal import ALL_DEVICES, ALL_STAFF, StaffRole, allow

OPS = StaffRole.Value("STAFF_ROLE_OPS")
ADMIN = StaffRole.Value("STAFF_ROLE_ADMIN")
DESK = StaffRole.Value("STAFF_ROLE_DESK")

EVERY_SERVICE = ["identity", "access", "location", "queue", "itinerary", "photo"]
_PUBLIC = allow(guests=True, staff=ALL_STAFF, devices=ALL_DEVICES, services=EVERY_SERVICE)
_ROUTES = allow(guests=True, staff=ALL_STAFF, services=["itinerary", "queue"])

POLICY = {
    "GetVenue": _PUBLIC,
    "ListPointsOfInterest": _PUBLIC,
    "GetPointOfInterest": _PUBLIC,
    "GetRoute": _ROUTES,
    "FindNearest": _ROUTES,
    "PlanItinerary": allow(guests=True, staff=[OPS, DESK, ADMIN], services=["itinerary"]),
}
