"""Who may call each photo RPC. Data checks (a guest sees only their own party,
a device only its own camera or kiosk) are the servicer's."""

from __future__ import annotations

from services.platform.principal import ALL_STAFF, DeviceKind, StaffRole, allow

OPS = StaffRole.Value("STAFF_ROLE_OPS")
CAMERA = DeviceKind.Value("DEVICE_KIND_CAMERA")
PHOTOGRAPHER = DeviceKind.Value("DEVICE_KIND_PHOTOGRAPHER")
KIOSK = DeviceKind.Value("DEVICE_KIND_KIOSK")

POLICY = {
    "IngestCaptures": allow(devices=[CAMERA, PHOTOGRAPHER]),
    "PhotographerTap": allow(devices=[PHOTOGRAPHER]),
    "ListKioskPhotos": allow(devices=[KIOSK], staff=[OPS]),
    "ClaimPhoto": allow(devices=[KIOSK]),
    "ListPhotos": allow(guests=True, staff=[OPS]),
    "GetPhoto": allow(guests=True, staff=[OPS]),
    "ListSuggestions": allow(guests=True),
    "RespondToSuggestion": allow(guests=True),
    "UnlinkPhoto": allow(guests=True, staff=[OPS]),
    "PurchasePhoto": allow(guests=True),
    "PurchasePhotoPackage": allow(guests=True),
    "GetPhotoPrices": allow(guests=True, staff=ALL_STAFF, devices=[KIOSK]),
    "GetPhotoStats": allow(staff=[OPS]),
    "WatchPhotoEvents": allow(services=["itinerary"], staff=[OPS]),
}
