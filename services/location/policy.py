"""Who may call each location RPC. Finer checks (a guest sees only their own
party) are the servicer's."""

from __future__ import annotations

from services.platform.principal import ALL_DEVICES, ALL_STAFF, DeviceKind, StaffRole, allow

OPS = StaffRole.Value("STAFF_ROLE_OPS")
ADMIN = StaffRole.Value("STAFF_ROLE_ADMIN")
READER = DeviceKind.Value("DEVICE_KIND_READER")

SUITE = ["access", "queue", "routing", "itinerary", "photo"]
# Services that follow where guests are and how full zones are.
FOLLOWERS = ["queue", "routing", "itinerary"]

POLICY = {
    # Zones and counts are not personal: anyone signed in may read them.
    "ListZones": allow(guests=True, devices=ALL_DEVICES, staff=ALL_STAFF, services=SUITE),
    "GetZoneOccupancy": allow(guests=True, devices=ALL_DEVICES, staff=ALL_STAFF, services=SUITE),
    "ListZoneOccupancy": allow(guests=True, devices=ALL_DEVICES, staff=ALL_STAFF, services=SUITE),
    "ListReaders": allow(staff=[OPS, ADMIN], services=SUITE),
    "IngestPings": allow(devices=[READER]),
    # A guest's place is personal: their own party, guest help, the itinerary.
    "GetGuestLocation": allow(guests=True, staff=[OPS], services=["itinerary"]),
    "GetPartyLocations": allow(guests=True, staff=[OPS], services=["itinerary"]),
    "GetOccupancyHistory": allow(staff=[OPS, ADMIN], services=FOLLOWERS),
    "WatchLocationEvents": allow(staff=[OPS], services=FOLLOWERS),
}
