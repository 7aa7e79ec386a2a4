"""Entitlement rules on their own: until when each kind can be used, the status
a reader sees, who issues and revokes which kinds, and the venue's facts access
reads (on both venues)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from functools import cache

import pytest

from services.access import entitlements
from services.access.records import EntitlementRecord
from services.access.venue_index import VenueIndex
from services.platform.config import ROOT
from services.platform.principal import Kind, Principal
from services.venue_model import load_venue
from venue.access.v1 import access_pb2 as pb

PARK = ROOT / "venues" / "lantern-bay-park.yaml"
MALL = ROOT / "venues" / "millbrook-galleria.yaml"
T0 = datetime(2031, 7, 4, 18, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DESK = Principal(Kind.STAFF, "s", staff_role=entitlements.DESK)
OPS = Principal(Kind.STAFF, "s", staff_role=entitlements.OPS)
ADMIN = Principal(Kind.STAFF, "s", staff_role=entitlements.ADMIN)


@cache
def venue(path: str = str(PARK)) -> VenueIndex:
    return VenueIndex(load_venue(path))


def record(kind: int, **fields: object) -> EntitlementRecord:
    base = EntitlementRecord("e", kind, entitlements.ACTIVE, "g", "p")
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def test_validity_by_kind() -> None:
    v = venue()
    ticket = record(pb.ENTITLEMENT_KIND_PARK_TICKET, valid_dates=(date(2031, 7, 4),))
    # The end of the venue day in the park's zone (New York, UTC-4 in July).
    assert entitlements.valid_until(ticket, v) == datetime(2031, 7, 5, 4, 0, tzinfo=UTC)
    rt = record(
        pb.ENTITLEMENT_KIND_RETURN_TIME, window_start=T0, window_end=T0 + timedelta(hours=1)
    )
    assert entitlements.valid_until(rt, v) == T0 + timedelta(hours=1, minutes=15)
    waiting = record(pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE)
    assert entitlements.valid_until(waiting, v) is None
    key = record(pb.ENTITLEMENT_KIND_HOTEL_ROOM, window_start=T0, window_end=T0 + timedelta(days=2))
    assert entitlements.valid_until(key, v) == T0 + timedelta(days=2)


def test_shown_status() -> None:
    v = venue()
    rt = entitlements.with_validity(
        record(
            pb.ENTITLEMENT_KIND_RETURN_TIME, window_start=T0, window_end=T0 + timedelta(hours=1)
        ),
        v,
    )
    assert entitlements.shown_status(rt, T0) == pb.ENTITLEMENT_STATUS_ACTIVE
    assert entitlements.shown_status(rt, T0 + timedelta(hours=2)) == pb.ENTITLEMENT_STATUS_EXPIRED
    used_ticket = entitlements.with_validity(
        record(pb.ENTITLEMENT_KIND_PARK_TICKET, valid_dates=(date(2031, 7, 4),), days_used=1), v
    )
    later = T0 + timedelta(days=3)
    assert entitlements.shown_status(used_ticket, later) == pb.ENTITLEMENT_STATUS_USED
    revoked = dataclasses.replace(rt, status=entitlements.REVOKED)
    assert entitlements.shown_status(revoked, later) == pb.ENTITLEMENT_STATUS_REVOKED


@pytest.mark.parametrize(
    ("who", "kind", "issues"),
    [
        (
            Principal(Kind.STAFF, "s", staff_role=entitlements.DESK),
            pb.ENTITLEMENT_KIND_PARK_TICKET,
            True,
        ),
        (
            Principal(Kind.STAFF, "s", staff_role=entitlements.DESK),
            pb.ENTITLEMENT_KIND_RETURN_TIME,
            False,
        ),
        (
            Principal(Kind.STAFF, "s", staff_role=entitlements.OPS),
            pb.ENTITLEMENT_KIND_PARK_TICKET,
            False,
        ),
        (Principal(Kind.SERVICE, "queue"), pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE, True),
        (Principal(Kind.SERVICE, "queue"), pb.ENTITLEMENT_KIND_HOTEL_ROOM, False),
        (Principal(Kind.SERVICE, "photo"), pb.ENTITLEMENT_KIND_RETURN_TIME, False),
        (
            Principal(Kind.STAFF, "s", staff_role=entitlements.ADMIN),
            pb.ENTITLEMENT_KIND_STAFF_ACCESS,
            True,
        ),
    ],
)
def test_issuers(who: Principal, kind: int, issues: bool) -> None:
    assert entitlements.may_issue(who, kind) is issues


def test_revokers() -> None:
    queue = Principal(Kind.SERVICE, "queue")
    assert entitlements.may_revoke(queue, pb.ENTITLEMENT_KIND_RETURN_TIME)
    assert not entitlements.may_revoke(queue, pb.ENTITLEMENT_KIND_PARK_TICKET)
    assert entitlements.may_revoke(OPS, pb.ENTITLEMENT_KIND_PARK_TICKET)


def test_both_venues_index_cleanly() -> None:
    park, mall = venue(str(PARK)), venue(str(MALL))
    assert park.has_gates and not mall.has_gates
    assert park.currency == "USD" and mall.currency == "GBP"
    assert park.point("ap.room.101") is not None
    assert park.point("ap.room.101").room_id == "room-101"  # type: ignore[union-attr]
    assert park.merchant_of_till("till.lantern-emporium.1") == "lantern-emporium"
    assert mall.is_merchant("photo") and not mall.is_merchant("nowhere")
    assert park.minor_text(1250) == "USD 12.50"
    assert park.day_of(datetime(2031, 7, 5, 3, 59, tzinfo=UTC)) == date(2031, 7, 4)
