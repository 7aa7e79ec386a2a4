"""What the access store hands back: plain records, free of SQL and protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class EntitlementRecord:
    entitlement_id: str
    kind: int
    status: int  # as stored: ACTIVE, USED or REVOKED (EXPIRED is derived)
    guest_id: str
    party_id: str
    external_ref: str = ""
    park_id: str = ""
    valid_dates: tuple[date, ...] = ()
    days_allowed: int = 0
    entries_per_day: int = 0
    days_used: int = 0
    last_day: date | None = None
    entries_last_day: int = 0
    attraction_id: str = ""
    booking_id: str = ""
    boarding_group: int = 0
    hotel_id: str = ""
    room_id: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    access_point_ids: tuple[str, ...] = ()
    valid_until: datetime | None = None
    created_at: datetime | None = None
    created_by: str = ""
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    revocation_reason: int = 0


@dataclass(frozen=True, slots=True)
class AccessPointState:
    access_point_id: str
    open: bool
    closed_reason: str
    changed_at: datetime | None


@dataclass(frozen=True, slots=True)
class WalletState:
    """What a charge decision reads, with the version it must still match."""

    version: int  # 0: no wallet yet
    balance_minor: int
    pin_hash: bytes | None
    pin_failures: int
    pin_locked: bool
    # The band's rules (None: no rule set, the role's default applies).
    charging_enabled: bool | None
    daily_limit_minor: int | None
    spent_today_minor: int


@dataclass(frozen=True, slots=True)
class WalletRecord:
    party_id: str
    currency: str
    balance_minor: int
    pin_set: bool
    pin_locked: bool
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class BandRule:
    band_id: str
    guest_id: str
    charging_enabled: bool
    daily_limit_minor: int | None


@dataclass(frozen=True, slots=True)
class ChargeRow:
    charge_id: str
    result: int
    decline_reason: int
    merchant_id: str
    party_id: str
    guest_id: str
    band_id: str
    items: tuple[bytes, ...]
    amount_minor: int
    currency: str
    refunded_minor: int
    charged_at: datetime
    day: date
    created_by: str


@dataclass(frozen=True, slots=True)
class StatementRow:
    entry_id: str
    seq: int
    kind: int
    amount_minor: int
    currency: str
    balance_after: int
    charge_id: str
    merchant_id: str
    items: tuple[bytes, ...]
    guest_id: str
    band_id: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Statement:
    rows: list[StatementRow] = field(default_factory=list)
    balance_minor: int = 0
