"""What the photo store hands back: plain records, free of SQL and protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

# photos.match_state
PENDING, MATCHED, AMBIGUOUS, NO_MATCH = 1, 2, 3, 4
# suggestions.state
OFFERED, ACCEPTED, REJECTED = 1, 2, 3
# purchases.state
PURCHASE_PENDING, PURCHASE_APPROVED, PURCHASE_DECLINED, PURCHASE_REFUNDED = 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class PhotoRecord:
    photo_id: str
    camera_id: str
    capture_id: str
    device_id: str
    source: int
    attraction_id: str
    captured_at: datetime
    vehicle_id: str
    row: int
    image_uri: str
    image_sha256: str
    match_state: int


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """One party's (active) link to a photo."""

    party_id: str
    source: int
    linked_at: datetime
    guest_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PhotoView:
    """A photo as one asker sees it: their party's link (or every link for staff)."""

    photo: PhotoRecord
    links: tuple[LinkRecord, ...]
    purchased: bool
    # Linked to some party or bought: retention does not delete it.
    kept: bool


@dataclass(frozen=True, slots=True)
class SuggestionRecord:
    suggestion_id: str
    photo: PhotoRecord
    party_id: str
    guest_ids: tuple[str, ...]
    boarded_at: datetime
    state: int


@dataclass(frozen=True, slots=True)
class GuestInfo:
    guest_id: str
    party_id: str | None
    photo_linking: bool
    erased: bool


@dataclass(frozen=True, slots=True)
class Rider:
    """A boarding tap as the store links it."""

    guest_id: str
    party_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    device_id: str
    camera_id: str
    guest_id: str | None
    party_id: str | None
    started_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    purchase_id: str
    scope: str
    key: str
    request_hash: bytes
    party_id: str
    guest_id: str | None
    photo_id: str | None
    package_date: date | None
    price_minor: int
    currency: str
    charge_key: str
    charged_at: datetime
    state: int
    charge_id: str
    decline_reason: int
    display_message: str
    decided_at: datetime | None


@dataclass(frozen=True, slots=True)
class CapturedEvent:
    """A photo written by ingest or linked by a session, for the linker to hear of."""

    photo_id: str
    camera_id: str
    captured_at: datetime
    row: int
    pending: bool


@dataclass(frozen=True)
class StatsRow:
    attraction_id: str
    captures: int = 0
    linked_by_boarding: int = 0
    linked_by_photographer: int = 0
    linked_by_kiosk: int = 0
    linked_by_suggestion: int = 0
    pending: int = 0
    ambiguous: int = 0
    unlinked: int = 0
    suggestions_offered: int = 0
    suggestions_confirmed: int = 0
    suggestions_rejected: int = 0
    unlinked_as_wrong: int = 0
    purchases: int = 0
