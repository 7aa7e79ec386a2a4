"""Identity's records as protobuf messages."""

from __future__ import annotations

from services.identity.event_payloads import consent_pb
from services.identity.records import (
    BandRecord,
    DeviceRecord,
    GuestRecord,
    PartyRecord,
    ResolvedBand,
    StaffRecord,
)
from services.platform.validation import to_timestamp
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as pb

ACTIVE, REVOKED = pb.CREDENTIAL_STATUS_ACTIVE, pb.CREDENTIAL_STATUS_REVOKED


def guest_pb(guest: GuestRecord, personal: bool = True) -> pb.Guest:
    return pb.Guest(
        guest_id=guest.guest_id,
        party_id=guest.party_id,
        role=guest.role,  # type: ignore[arg-type]
        display_name=guest.display_name if personal else "",
        email=guest.email if personal else "",
        height_cm=guest.height_cm,
        consent=consent_pb(guest.consent),
        created_at=to_timestamp(guest.created_at),
    )


def party_pb(party: PartyRecord, personal: bool = True) -> pb.Party:
    return pb.Party(
        party_id=party.party_id,
        name=party.name,
        members=[guest_pb(m, personal) for m in party.members],
        created_at=to_timestamp(party.created_at),
    )


def band_pb(band: BandRecord) -> pb.Band:
    return pb.Band(
        band_id=band.band_id,
        band_uid=band.band_uid,
        guest_id=band.guest_id,
        party_id=band.party_id,
        status=band.status,  # type: ignore[arg-type]
        deactivation_reason=band.deactivation_reason,  # type: ignore[arg-type]
        linked_at=to_timestamp(band.linked_at),
        deactivated_at=to_timestamp(band.deactivated_at),
    )


def resolved_pb(band: ResolvedBand) -> pb.ResolveBandResponse:
    return pb.ResolveBandResponse(
        band_id=band.band_id,
        guest_id=band.guest_id,
        party_id=band.party_id,
        active=band.active,
        role=band.role,  # type: ignore[arg-type]
        height_cm=band.height_cm,
        consent=consent_pb(band.consent),
    )


def device_pb(device: DeviceRecord) -> pb.Device:
    return pb.Device(
        device_id=device.device_id,
        kind=device.kind,  # type: ignore[arg-type]
        name=device.name,
        place=common_pb2.Place(zone_id=device.zone_id, node_id=device.node_id),
        venue_ref=device.venue_ref,
        status=ACTIVE if device.active else REVOKED,
        created_at=to_timestamp(device.created_at),
    )


def staff_pb(staff: StaffRecord) -> pb.Staff:
    return pb.Staff(
        staff_id=staff.staff_id,
        display_name=staff.display_name,
        role=staff.role,  # type: ignore[arg-type]
        status=ACTIVE if staff.active else REVOKED,
        created_at=to_timestamp(staff.created_at),
    )
