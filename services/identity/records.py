"""What the identity store hands back: plain records, free of SQL and protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Consent:
    location_tracking: bool = False
    personalized_nudges: bool = False
    photo_linking: bool = False


@dataclass(frozen=True)
class GuestRecord:
    guest_id: str
    party_id: str
    role: int
    display_name: str
    email: str
    height_cm: int
    consent: Consent
    created_at: datetime
    erased: bool = False


@dataclass(frozen=True)
class NewMember:
    """One member of a party the desk registers at once, already checked."""

    display_name: str
    height_cm: int
    consent: Consent
    role: int
    # "" when the member gets no band yet.
    band_uid: str


@dataclass(frozen=True)
class PartyRecord:
    party_id: str
    name: str
    created_at: datetime
    members: list[GuestRecord] = field(default_factory=list)


@dataclass(frozen=True)
class BandRecord:
    band_id: str
    band_uid: str
    guest_id: str
    party_id: str
    status: int
    deactivation_reason: int
    linked_at: datetime
    deactivated_at: datetime | None


@dataclass(frozen=True)
class ResolvedBand:
    band_id: str
    guest_id: str
    party_id: str
    active: bool
    role: int
    height_cm: int
    consent: Consent


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    kind: int
    name: str
    zone_id: str
    node_id: str
    venue_ref: str
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class StaffRecord:
    staff_id: str
    display_name: str
    role: int
    active: bool
    created_at: datetime
