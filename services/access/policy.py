"""Who may call each access RPC. Finer checks (own party, own till, own access
point, adults only) are the servicer's."""

from __future__ import annotations

from services.platform.principal import ALL_DEVICES, DeviceKind, StaffRole, allow

OPS = StaffRole.Value("STAFF_ROLE_OPS")
ADMIN = StaffRole.Value("STAFF_ROLE_ADMIN")
DESK = StaffRole.Value("STAFF_ROLE_DESK")

GATE = DeviceKind.Value("DEVICE_KIND_GATE")
RIDE_SCANNER = DeviceKind.Value("DEVICE_KIND_RIDE_SCANNER")
DOOR_LOCK = DeviceKind.Value("DEVICE_KIND_DOOR_LOCK")
POINT_OF_SALE = DeviceKind.Value("DEVICE_KIND_POINT_OF_SALE")

# Services that read the venue's access points (to map taps, routes and lines).
POINT_READERS = ["queue", "routing", "itinerary", "location", "photo"]

POLICY = {
    # DESK: tickets and room keys; ADMIN: staff access; queue: return times and
    # virtual-queue passes (the kind each may issue is checked per request).
    "CreateEntitlement": allow(staff=[DESK, ADMIN], services=["queue"]),
    "GetEntitlement": allow(
        guests=True, staff=[DESK, OPS, ADMIN], services=["queue", "itinerary", "photo"]
    ),
    "ListEntitlements": allow(
        guests=True, staff=[DESK, OPS, ADMIN], services=["queue", "itinerary"]
    ),
    "UpdateEntitlement": allow(staff=[DESK, ADMIN], services=["queue"]),
    "RevokeEntitlement": allow(staff=[DESK, OPS, ADMIN], services=["queue"]),
    # The ticket desk (and the online shop) set up a party's visit in one step.
    "SetUpParty": allow(staff=[DESK]),
    "ListAccessPoints": allow(devices=ALL_DEVICES, staff=[OPS, ADMIN], services=POINT_READERS),
    "GetAccessPoint": allow(devices=ALL_DEVICES, staff=[OPS, ADMIN], services=POINT_READERS),
    "SetAccessPointState": allow(staff=[OPS]),
    "Tap": allow(devices=[GATE, RIDE_SCANNER, DOOR_LOCK]),
    "GetWallet": allow(guests=True, staff=[DESK]),
    "TopUp": allow(guests=True, staff=[DESK]),
    "Charge": allow(devices=[POINT_OF_SALE], services=["photo"]),
    "GetCharge": allow(
        guests=True, devices=[POINT_OF_SALE], staff=[DESK, OPS], services=["photo", "itinerary"]
    ),
    "Refund": allow(devices=[POINT_OF_SALE], staff=[DESK, OPS], services=["photo"]),
    "SetPin": allow(guests=True, staff=[DESK]),
    "SetBandSpendingLimit": allow(guests=True, staff=[DESK]),
    "GetStatement": allow(guests=True, staff=[DESK, OPS]),
    "WatchAccessEvents": allow(staff=[OPS], services=["queue", "photo", "itinerary", "location"]),
}
