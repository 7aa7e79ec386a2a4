"""Identity's events as the bytes its Watch stream serves."""

from __future__ import annotations

from services.identity.records import Consent, GuestRecord
from venue.identity.v1 import identity_pb2 as pb


def consent_pb(consent: Consent) -> pb.Consent:
    return pb.Consent(
        location_tracking=consent.location_tracking,
        personalized_nudges=consent.personalized_nudges,
        photo_linking=consent.photo_linking,
    )


def guest_created(guest: GuestRecord) -> bytes:
    return pb.WatchIdentityEventsResponse(
        guest_created=pb.GuestCreated(
            guest_id=guest.guest_id,
            party_id=guest.party_id,
            role=guest.role,  # type: ignore[arg-type]
            height_cm=guest.height_cm,
            consent=consent_pb(guest.consent),
        )
    ).SerializeToString()


def guest_updated(guest: GuestRecord) -> bytes:
    return pb.WatchIdentityEventsResponse(
        guest_updated=pb.GuestUpdated(
            guest_id=guest.guest_id,
            party_id=guest.party_id,
            role=guest.role,  # type: ignore[arg-type]
            height_cm=guest.height_cm,
        )
    ).SerializeToString()


def band_linked(band_id: str, band_uid: str, guest_id: str, party_id: str) -> bytes:
    return pb.WatchIdentityEventsResponse(
        band_linked=pb.BandLinked(
            band_id=band_id, band_uid=band_uid, guest_id=guest_id, party_id=party_id
        )
    ).SerializeToString()


def band_deactivated(band_id: str, band_uid: str, guest_id: str, reason: int) -> bytes:
    return pb.WatchIdentityEventsResponse(
        band_deactivated=pb.BandDeactivated(
            band_id=band_id,
            band_uid=band_uid,
            guest_id=guest_id,
            reason=reason,  # type: ignore[arg-type]
        )
    ).SerializeToString()


def consent_changed(guest_id: str, consent: Consent) -> bytes:
    return pb.WatchIdentityEventsResponse(
        consent_changed=pb.ConsentChanged(guest_id=guest_id, consent=consent_pb(consent))
    ).SerializeToString()


def party_changed(party_id: str, members: list[str], removed: list[str]) -> bytes:
    return pb.WatchIdentityEventsResponse(
        party_changed=pb.PartyChanged(
            party_id=party_id, member_guest_ids=members, removed_guest_ids=removed
        )
    ).SerializeToString()


def guest_erased(guest_id: str, party_id: str) -> bytes:
    return pb.WatchIdentityEventsResponse(
        guest_erased=pb.GuestErased(guest_id=guest_id, party_id=party_id)
    ).SerializeToString()


def credential_revoked(kind: int, subject: str) -> bytes:
    return pb.WatchIdentityEventsResponse(
        credential_revoked=pb.CredentialRevoked(kind=kind, subject=subject)  # type: ignore[arg-type]
    ).SerializeToString()


def without_band_uid(payload: bytes) -> bytes:
    """A band event with its UID blanked, for an erased guest's history: the
    band id stays (pseudonymous), the number printed on the band goes."""
    event = pb.WatchIdentityEventsResponse.FromString(payload)
    which = event.WhichOneof("event")
    if which == "band_linked":
        event.band_linked.band_uid = ""
    elif which == "band_deactivated":
        event.band_deactivated.band_uid = ""
    return event.SerializeToString()
