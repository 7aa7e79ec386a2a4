"""Access's records as protobuf messages, and its events as the bytes its Watch
stream serves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from services.access import entitlements
from services.access.ids import timestamp_of
from services.access.records import (
    AccessPointState,
    ChargeRow,
    EntitlementRecord,
    StatementRow,
)
from services.access.venue_index import PointInfo
from services.platform.validation import to_timestamp
from venue.access.v1 import access_pb2 as pb
from venue.common.v1 import common_pb2

# Event kinds in the events table, by the stream's enum.
EVENT_KINDS: dict[int, str] = {
    pb.ACCESS_EVENT_KIND_TAP_RECORDED: "tap_recorded",
    pb.ACCESS_EVENT_KIND_ENTITLEMENT_CHANGED: "entitlement_changed",
    pb.ACCESS_EVENT_KIND_CHARGE_RECORDED: "charge_recorded",
    pb.ACCESS_EVENT_KIND_REFUND_RECORDED: "refund_recorded",
    pb.ACCESS_EVENT_KIND_ACCESS_POINT_STATE_CHANGED: "access_point_state_changed",
}
# Events a Watch's attraction filter applies to (their key is the attraction).
BY_ATTRACTION = frozenset({"tap_recorded", "access_point_state_changed"})


def money(minor: int, currency: str) -> common_pb2.Money:
    return common_pb2.Money(minor_units=minor, currency=currency)


def venue_date(day: date) -> common_pb2.VenueDate:
    return common_pb2.VenueDate(year=day.year, month=day.month, day=day.day)


def time_range(start: datetime | None, end: datetime | None) -> common_pb2.TimeRange:
    if start is None or end is None:
        return common_pb2.TimeRange()
    return common_pb2.TimeRange(start=to_timestamp(start), end=to_timestamp(end))


def entitlement_pb(record: EntitlementRecord, now: datetime) -> pb.Entitlement:
    message = pb.Entitlement(
        entitlement_id=record.entitlement_id,
        kind=record.kind,  # type: ignore[arg-type]
        status=entitlements.shown_status(record, now),  # type: ignore[arg-type]
        guest_id=record.guest_id,
        party_id=record.party_id,
        external_ref=record.external_ref,
        revocation_reason=record.revocation_reason,  # type: ignore[arg-type]
    )
    if record.created_at is not None:
        message.created_at.CopyFrom(to_timestamp(record.created_at))
    if record.last_used_at is not None:
        message.last_used_at.CopyFrom(to_timestamp(record.last_used_at))
    if record.revoked_at is not None:
        message.revoked_at.CopyFrom(to_timestamp(record.revoked_at))
    window = time_range(record.window_start, record.window_end)
    kind = record.kind
    if kind == pb.ENTITLEMENT_KIND_PARK_TICKET:
        message.park_ticket.CopyFrom(
            pb.ParkTicket(
                park_id=record.park_id,
                valid_dates=[venue_date(d) for d in record.valid_dates],
                days_allowed=record.days_allowed,
                days_used=record.days_used,
                entries_per_day=record.entries_per_day,
            )
        )
    elif kind == pb.ENTITLEMENT_KIND_RETURN_TIME:
        message.return_time.CopyFrom(
            pb.ReturnTime(
                attraction_id=record.attraction_id, window=window, booking_id=record.booking_id
            )
        )
    elif kind == pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE:
        message.virtual_queue_pass.CopyFrom(
            pb.VirtualQueuePass(
                attraction_id=record.attraction_id,
                booking_id=record.booking_id,
                boarding_group=record.boarding_group,
                window=window,
            )
        )
    elif kind == pb.ENTITLEMENT_KIND_HOTEL_ROOM:
        message.hotel_room_key.CopyFrom(
            pb.HotelRoomKey(hotel_id=record.hotel_id, room_id=record.room_id, stay=window)
        )
    elif kind == pb.ENTITLEMENT_KIND_STAFF_ACCESS:
        message.staff_access.CopyFrom(
            pb.StaffAccess(valid=window, access_point_ids=list(record.access_point_ids))
        )
    return message


def access_point_pb(point: PointInfo, state: AccessPointState | None) -> pb.AccessPoint:
    message = pb.AccessPoint(
        access_point_id=point.access_point_id,
        name=point.name,
        kind=point.kind,  # type: ignore[arg-type]
        state=pb.ACCESS_POINT_STATE_OPEN,
        attraction_id=point.attraction_id,
        park_id=point.park_id,
        hotel_id=point.hotel_id,
        room_id=point.room_id,
        place=common_pb2.Place(zone_id=point.zone_id, node_id=point.node_id),
    )
    if state is not None:
        if not state.open:
            message.state = pb.ACCESS_POINT_STATE_CLOSED
            message.closed_reason = state.closed_reason
        if state.changed_at is not None:
            message.state_changed_at.CopyFrom(to_timestamp(state.changed_at))
    return message


def line_items(raw: Sequence[bytes]) -> list[pb.LineItem]:
    return [pb.LineItem.FromString(b) for b in raw]


def charge_record_pb(row: ChargeRow) -> pb.ChargeRecord:
    return pb.ChargeRecord(
        charge_id=row.charge_id,
        result=row.result,  # type: ignore[arg-type]
        decline_reason=row.decline_reason,  # type: ignore[arg-type]
        merchant_id=row.merchant_id,
        party_id=row.party_id,
        guest_id=row.guest_id,
        band_id=row.band_id,
        items=line_items(row.items),
        amount=money(row.amount_minor, row.currency),
        refunded=money(row.refunded_minor, row.currency),
        charged_at=to_timestamp(row.charged_at),
    )


def statement_line_pb(row: StatementRow) -> pb.StatementLine:
    return pb.StatementLine(
        entry_id=row.entry_id,
        kind=row.kind,  # type: ignore[arg-type]
        amount=money(row.amount_minor, row.currency),
        balance_after=money(row.balance_after, row.currency),
        charge_id=row.charge_id,
        merchant_id=row.merchant_id,
        items=line_items(row.items),
        guest_id=row.guest_id,
        band_id=row.band_id,
        occurred_at=to_timestamp(row.occurred_at),
    )


# --- events ---------------------------------------------------------------------


def tap_recorded(
    tap_id: str,
    point: PointInfo,
    guest_id: str,
    party_id: str,
    tapped_at: datetime,
    entitlement_id: str,
    entitlement_kind: int,
) -> bytes:
    return pb.WatchAccessEventsResponse(
        tap_recorded=pb.TapRecorded(
            tap_id=tap_id,
            access_point_id=point.access_point_id,
            access_point_kind=point.kind,  # type: ignore[arg-type]
            attraction_id=point.attraction_id,
            guest_id=guest_id,
            party_id=party_id,
            tapped_at=timestamp_of(tapped_at),
            entitlement_id=entitlement_id,
            entitlement_kind=entitlement_kind,  # type: ignore[arg-type]
        )
    ).SerializeToString()


def entitlement_changed(change: int, entitlement: pb.Entitlement) -> bytes:
    return pb.WatchAccessEventsResponse(
        entitlement_changed=pb.EntitlementChanged(
            change=change,  # type: ignore[arg-type]
            entitlement=entitlement,
        )
    ).SerializeToString()


def charge_recorded(
    charge_id: str,
    merchant_id: str,
    party_id: str,
    guest_id: str,
    amount: common_pb2.Money,
    items: Sequence[pb.LineItem],
    charged_at: datetime,
) -> bytes:
    return pb.WatchAccessEventsResponse(
        charge_recorded=pb.ChargeRecorded(
            charge_id=charge_id,
            merchant_id=merchant_id,
            party_id=party_id,
            guest_id=guest_id,
            amount=amount,
            items=list(items),
            charged_at=timestamp_of(charged_at),
        )
    ).SerializeToString()


def refund_recorded(
    refund_id: str, row: ChargeRow, amount_minor: int, refunded_at: datetime
) -> bytes:
    return pb.WatchAccessEventsResponse(
        refund_recorded=pb.RefundRecorded(
            refund_id=refund_id,
            charge_id=row.charge_id,
            merchant_id=row.merchant_id,
            party_id=row.party_id,
            amount=money(amount_minor, row.currency),
            refunded_at=to_timestamp(refunded_at),
        )
    ).SerializeToString()


def access_point_state_changed(access_point: pb.AccessPoint) -> bytes:
    return pb.WatchAccessEventsResponse(
        access_point_state_changed=pb.AccessPointStateChanged(access_point=access_point)
    ).SerializeToString()
