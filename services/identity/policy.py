"""Who may call each identity RPC. Finer checks (same party, own data) are in rules.py."""

from __future__ import annotations

from services.platform.principal import ALL_STAFF, DeviceKind, StaffRole, allow

OPS = StaffRole.Value("STAFF_ROLE_OPS")
ADMIN = StaffRole.Value("STAFF_ROLE_ADMIN")
DESK = StaffRole.Value("STAFF_ROLE_DESK")

# Devices that identify a guest by their band.
BAND_READERS = [
    DeviceKind.Value(name)
    for name in (
        "DEVICE_KIND_GATE",
        "DEVICE_KIND_RIDE_SCANNER",
        "DEVICE_KIND_POINT_OF_SALE",
        "DEVICE_KIND_PHOTOGRAPHER",
        "DEVICE_KIND_DOOR_LOCK",
        "DEVICE_KIND_KIOSK",
    )
]
# Services that follow identity's stream or resolve bands themselves.
CONSUMERS = ["access", "location", "queue", "itinerary", "photo"]

POLICY = {
    "CreateGuest": allow(anonymous=True, staff=[DESK, ADMIN]),
    "RegisterGuests": allow(staff=[DESK, ADMIN]),
    # Services whose copy of the stream may lag the desk look a new guest up.
    "GetGuest": allow(
        guests=True, staff=ALL_STAFF, services=["access", "itinerary", "photo", "queue"]
    ),
    "UpdateGuest": allow(guests=True, staff=ALL_STAFF),
    "GetParty": allow(guests=True, staff=ALL_STAFF, services=["access", "itinerary", "photo"]),
    "UpdateParty": allow(guests=True, staff=[DESK, ADMIN]),
    "AddChild": allow(guests=True, staff=[DESK, ADMIN]),
    "RegisterParty": allow(staff=[DESK, ADMIN]),
    "CreatePartyInvite": allow(guests=True),
    "JoinParty": allow(guests=True),
    "RemovePartyMember": allow(guests=True, staff=[DESK, ADMIN]),
    "LinkBand": allow(guests=True, staff=[DESK, ADMIN]),
    "ResolveBand": allow(devices=BAND_READERS, staff=ALL_STAFF, services=CONSUMERS),
    "ListBands": allow(guests=True, staff=ALL_STAFF),
    "DeactivateBand": allow(guests=True, staff=ALL_STAFF),
    "ReplaceBand": allow(guests=True, staff=[DESK, ADMIN]),
    "GetConsent": allow(guests=True, staff=[OPS, ADMIN]),
    "SetConsent": allow(guests=True),
    "EraseGuest": allow(guests=True, staff=[ADMIN]),
    "RegisterDevice": allow(staff=[ADMIN]),
    "GetDevice": allow(staff=[OPS, ADMIN]),
    "ListDevices": allow(staff=[OPS, ADMIN]),
    "RevokeDevice": allow(staff=[OPS, ADMIN]),
    "CreateStaff": allow(staff=[ADMIN]),
    "ListStaff": allow(staff=[ADMIN]),
    "RevokeStaff": allow(staff=[ADMIN]),
    "CreateAppLink": allow(guests=True, staff=[DESK, ADMIN]),
    "IssueToken": allow(anonymous=True),
    "GetSigningKeys": allow(anonymous=True),
    # Every service follows the stream for credential revocations (the platform's
    # revocation follower), routing included though it resolves no bands.
    "WatchIdentityEvents": allow(services=[*CONSUMERS, "routing"]),
}
