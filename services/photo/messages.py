"""Records <-> protobuf messages, and the event payloads photo's stream serves."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from services.photo.records import (
    AMBIGUOUS,
    PENDING,
    PURCHASE_APPROVED,
    PURCHASE_REFUNDED,
    PhotoRecord,
    PhotoView,
    PurchaseRecord,
    SuggestionRecord,
)
from services.platform.validation import to_timestamp
from venue.common.v1 import common_pb2
from venue.photo.v1 import photo_pb2 as pb

_DECLINE_TEXT: dict[int, str] = {
    pb.PURCHASE_DECLINE_REASON_INSUFFICIENT_FUNDS: "Not enough in the wallet",
    pb.PURCHASE_DECLINE_REASON_OVER_DAILY_LIMIT: "Over today's spending limit",
    pb.PURCHASE_DECLINE_REASON_CHARGING_DISABLED: "Charging is turned off for this band",
    pb.PURCHASE_DECLINE_REASON_OTHER: "The wallet declined the purchase",
}


def money(minor: int, currency: str) -> common_pb2.Money:
    return common_pb2.Money(minor_units=minor, currency=currency)


def venue_date(day: date) -> common_pb2.VenueDate:
    return common_pb2.VenueDate(year=day.year, month=day.month, day=day.day)


def photo_pb(view: PhotoView, retention: timedelta, with_links: bool = True) -> pb.Photo:
    photo = view.photo
    message = pb.Photo(
        photo_id=photo.photo_id,
        capture_id=photo.capture_id,
        source=photo.source,  # type: ignore[arg-type]
        attraction_id=photo.attraction_id,
        camera_id=photo.camera_id,
        captured_at=to_timestamp(photo.captured_at),
        image_uri=photo.image_uri,
        image_sha256=photo.image_sha256,
        purchased=view.purchased,
    )
    links = view.links if with_links else ()
    if links:
        message.link_status = pb.LINK_STATUS_LINKED
        first = min(links, key=lambda link: link.linked_at)
        message.link_source = first.source  # type: ignore[assignment]
        message.linked_at.CopyFrom(to_timestamp(first.linked_at))
        message.guest_ids.extend(sorted({g for link in links for g in link.guest_ids}))
    elif photo.match_state == PENDING:
        message.link_status = pb.LINK_STATUS_PENDING
    elif photo.match_state == AMBIGUOUS and not view.kept:
        message.link_status = pb.LINK_STATUS_AMBIGUOUS
    else:
        message.link_status = pb.LINK_STATUS_UNLINKED
    if not view.kept:
        message.expires_at.CopyFrom(to_timestamp(photo.captured_at + retention))
    return message


def kiosk_photo_pb(photo: PhotoRecord) -> pb.KioskPhoto:
    return pb.KioskPhoto(
        photo_id=photo.photo_id,
        captured_at=to_timestamp(photo.captured_at),
        image_uri=photo.image_uri,
        vehicle_id=photo.vehicle_id,
        row=photo.row,
    )


def suggestion_pb(
    record: SuggestionRecord, reason: str, retention: timedelta
) -> pb.PhotoSuggestion:
    view = PhotoView(record.photo, (), False, False)
    return pb.PhotoSuggestion(
        suggestion_id=record.suggestion_id,
        photo=photo_pb(view, retention, with_links=False),
        reason=reason,
        expires_at=to_timestamp(record.photo.captured_at + retention),
    )


def purchase_pb(record: PurchaseRecord) -> pb.PhotoPurchase:
    approved = record.state in (PURCHASE_APPROVED, PURCHASE_REFUNDED)
    message = pb.PhotoPurchase(
        purchase_id=record.purchase_id,
        result=pb.PURCHASE_RESULT_APPROVED if approved else pb.PURCHASE_RESULT_DECLINED,
        decline_reason=record.decline_reason,  # type: ignore[arg-type]
        display_message=record.display_message,
        party_id=record.party_id,
        price=money(record.price_minor, record.currency),
        charge_id=record.charge_id if approved else "",
        photo_id=record.photo_id or "",
        purchased_at=to_timestamp(record.decided_at or record.charged_at),
    )
    if record.package_date is not None:
        message.package_date.CopyFrom(venue_date(record.package_date))
    return message


def decline_text(reason: int) -> str:
    return _DECLINE_TEXT.get(reason, _DECLINE_TEXT[pb.PURCHASE_DECLINE_REASON_OTHER])


# --- events -------------------------------------------------------------------


def photo_captured(photo: PhotoRecord) -> bytes:
    return pb.WatchPhotoEventsResponse(
        photo_captured=pb.PhotoCaptured(
            photo_id=photo.photo_id,
            capture_id=photo.capture_id,
            source=photo.source,  # type: ignore[arg-type]
            attraction_id=photo.attraction_id,
            camera_id=photo.camera_id,
            captured_at=to_timestamp(photo.captured_at),
        )
    ).SerializeToString()


def photo_linked(photo: PhotoRecord, party_id: str, guest_ids: list[str], source: int) -> bytes:
    return pb.WatchPhotoEventsResponse(
        photo_linked=pb.PhotoLinked(
            photo_id=photo.photo_id,
            attraction_id=photo.attraction_id,
            party_id=party_id,
            guest_ids=sorted(guest_ids),
            link_source=source,  # type: ignore[arg-type]
            captured_at=to_timestamp(photo.captured_at),
        )
    ).SerializeToString()


def photo_unlinked(photo_id: str, party_id: str, guest_ids: list[str], reason: int) -> bytes:
    return pb.WatchPhotoEventsResponse(
        photo_unlinked=pb.PhotoUnlinked(
            photo_id=photo_id,
            party_id=party_id,
            guest_ids=sorted(guest_ids),
            reason=reason,  # type: ignore[arg-type]
        )
    ).SerializeToString()


def photo_purchased(record: PurchaseRecord) -> bytes:
    event = pb.PhotoPurchased(
        purchase_id=record.purchase_id,
        party_id=record.party_id,
        charge_id=record.charge_id,
        price=money(record.price_minor, record.currency),
        photo_id=record.photo_id or "",
    )
    if record.package_date is not None:
        event.package_date.CopyFrom(venue_date(record.package_date))
    return pb.WatchPhotoEventsResponse(photo_purchased=event).SerializeToString()


EVENT_KINDS = {
    pb.PHOTO_EVENT_KIND_PHOTO_CAPTURED: "photo_captured",
    pb.PHOTO_EVENT_KIND_PHOTO_LINKED: "photo_linked",
    pb.PHOTO_EVENT_KIND_PHOTO_UNLINKED: "photo_unlinked",
    pb.PHOTO_EVENT_KIND_PHOTO_PURCHASED: "photo_purchased",
}


def at(value: datetime) -> float:
    return value.timestamp()
