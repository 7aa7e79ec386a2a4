"""Identity's own rules, free of I/O: what a valid band, e-mail or password is,
who may act on whose data, and how long tokens live."""

from __future__ import annotations

import re

from services.identity.records import Consent, GuestRecord
from services.platform.errors import InvalidArgument, PermissionDenied
from services.platform.principal import Kind, Principal, StaffRole

BAND_UID = re.compile(r"^[0-9A-Za-z:_-]{4,64}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 200
# Members one RegisterParty call may bring (a family or a small group; larger
# groups register as several parties).
MAX_PARTY_REGISTRATION = 20

# Token lifetimes in wall-clock seconds (security runs on real time, not venue time).
TOKEN_LIFETIME = {
    Kind.GUEST: 12 * 3600,
    Kind.DEVICE: 24 * 3600,
    Kind.STAFF: 12 * 3600,
    Kind.SERVICE: 3600,
}
INVITE_LIFETIME_S = 24 * 3600
APP_LINK_LIFETIME_S = 15 * 60

# Roles of staff who may see and help with any guest.
GUEST_HELPERS = (
    StaffRole.Value("STAFF_ROLE_OPS"),
    StaffRole.Value("STAFF_ROLE_ADMIN"),
    StaffRole.Value("STAFF_ROLE_DESK"),
)
ADMIN = StaffRole.Value("STAFF_ROLE_ADMIN")
DESK = StaffRole.Value("STAFF_ROLE_DESK")


def band_uid(value: str, field: str = "band_uid") -> str:
    if not value:
        raise InvalidArgument(field, "required")
    if not BAND_UID.match(value):
        raise InvalidArgument(field, "4 to 64 characters of 0-9, A-Z, a-z, ':', '_' or '-'")
    return value


def email(value: str, field: str = "email") -> str:
    value = value.strip()
    if len(value) > 254 or not EMAIL.match(value):
        raise InvalidArgument(field, "not an e-mail address")
    return value


def password(value: str, field: str = "password") -> str:
    if len(value) < MIN_PASSWORD:
        raise InvalidArgument(field, f"at least {MIN_PASSWORD} characters")
    if len(value) > MAX_PASSWORD:
        raise InvalidArgument(field, f"at most {MAX_PASSWORD} characters")
    return value


def height(value: int, field: str = "height_cm") -> int:
    if not 0 <= value <= 300:
        raise InvalidArgument(field, "between 0 (not measured) and 300")
    return value


def may_read_guest(caller: Principal, guest: GuestRecord) -> bool:
    """A guest sees their own party; staff help any guest."""
    if caller.is_guest:
        return caller.party_id == guest.party_id
    return caller.is_staff(*GUEST_HELPERS) or caller.kind is Kind.SERVICE


def may_manage_guest(caller: Principal, guest: GuestRecord) -> bool:
    """Adults manage their own party (children have no login of their own)."""
    if caller.is_guest:
        return caller.party_id == guest.party_id
    return caller.is_staff(*GUEST_HELPERS)


def may_decide_for(caller: Principal, guest: GuestRecord) -> bool:
    """Consent and erasure are the guest's own, or a party adult's for a child."""
    if caller.is_guest:
        if caller.subject == guest.guest_id:
            return True
        child = guest.role == 2  # PARTY_ROLE_CHILD
        return child and caller.party_id == guest.party_id
    return caller.is_staff(ADMIN)


def require(allowed: bool, what: str) -> None:
    if not allowed:
        raise PermissionDenied(f"not allowed to {what}")


def merged_consent(
    current: Consent,
    location_tracking: bool | None,
    personalized_nudges: bool | None,
    photo_linking: bool | None,
) -> Consent:
    return Consent(
        location_tracking=current.location_tracking
        if location_tracking is None
        else location_tracking,
        personalized_nudges=current.personalized_nudges
        if personalized_nudges is None
        else personalized_nudges,
        photo_linking=current.photo_linking if photo_linking is None else photo_linking,
    )
