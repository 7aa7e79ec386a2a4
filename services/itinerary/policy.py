"""Who may call each itinerary RPC. Finer checks (the caller's own party, an
adult of the party, the guest a nudge was sent to) are the servicer's."""

from __future__ import annotations

from services.platform.principal import StaffRole, allow

OPS = StaffRole.Value("STAFF_ROLE_OPS")
# Services that may read plans and follow the stream (the world's report reads
# them through OPS staff; photo and queue may want a party's plan).
READERS = ["access", "location", "queue", "routing", "photo"]

POLICY = {
    "CreatePlan": allow(guests=True),
    "GetPlan": allow(guests=True, staff=[OPS], services=READERS),
    "UpdateWishList": allow(guests=True),
    "UpdatePlanSettings": allow(guests=True),
    "AddBooking": allow(guests=True),
    "RemoveBooking": allow(guests=True),
    "Replan": allow(guests=True),
    "SubscribeNudges": allow(guests=True),
    "AcknowledgeNudge": allow(guests=True),
    "GetNudgePreferences": allow(guests=True),
    "SetNudgePreferences": allow(guests=True),
    "ListNudges": allow(guests=True, staff=[OPS]),
    "GetNudgeStats": allow(staff=[OPS]),
    "WatchItineraryEvents": allow(staff=[OPS], services=READERS),
}
