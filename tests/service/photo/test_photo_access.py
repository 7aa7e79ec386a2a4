"""Photo with the real access service (its own process): boarding taps made
by a ride scanner reach photo through access's stream and link the ride
photo; purchases are charged to the party's wallet through access, once per
idempotency key, declined when the wallet cannot pay, refunded when the party
says a bought photo is not them or when the service takes the photo back."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta

import grpc

from services.photo.records import PURCHASE_REFUNDED
from services.photo.upkeep import upkeep_once
from services.platform.validation import to_timestamp
from tests.service.photo.conftest import (
    CURRENCY,
    PHOTOGRAPHER,
    RIDE_CAMERA,
    RIDE_DELAY,
    SPOT,
    Member,
    Photo,
    capture,
    slot,
)
from tests.support.stubs import expect_error
from venue.common.v1 import common_pb2
from venue.photo.v1 import photo_pb2 as pb


def usd(minor: int) -> common_pb2.Money:
    return common_pb2.Money(minor_units=minor, currency=CURRENCY)


async def prices(photo: Photo, member: Member) -> pb.GetPhotoPricesResponse:
    return await photo.stub.GetPhotoPrices(pb.GetPhotoPricesRequest(), metadata=member.auth)


async def scanned_photo(photo: Photo, *members: Member) -> str:
    """A ride photo of `members`, who tapped at the boarding scanner through
    access; its id once linked."""
    t0 = slot()
    for i, member in enumerate(members):
        await photo.scan(member, t0 + timedelta(seconds=i))
    for member in members:
        await photo.until(functools.partial(photo.heard_tap, member))
    shot = capture(RIDE_CAMERA, t0 + timedelta(seconds=len(members) - 1 + RIDE_DELAY))
    photo_id = (await photo.ingest(shot)).acks[0].photo_id
    assert await photo.decided(photo_id) == 2
    return photo_id


async def test_boarding_taps_through_access_link_the_ride_photo(photo: Photo) -> None:
    ann = await photo.member()
    kid = await photo.member(party_of=ann)
    t0 = slot()
    await photo.scan(ann, t0)
    await photo.scan(kid, t0 + timedelta(seconds=1))
    # The camera's upload may beat access's stream: the taps arriving after the
    # photo was decided still link it.
    shot = capture(RIDE_CAMERA, t0 + timedelta(seconds=1 + RIDE_DELAY))
    photo_id = (await photo.ingest(shot)).acks[0].photo_id

    async def both() -> list[pb.Photo]:
        found = await photo.photos_of(ann)
        return found if found and len(found[0].guest_ids) == 2 else []

    [linked] = await photo.until(both)
    assert linked.photo_id == photo_id
    assert sorted(linked.guest_ids) == sorted([ann.guest_id, kid.guest_id])
    assert linked.link_source == pb.LINK_SOURCE_BOARDING_MATCH


async def test_a_photo_bought_twice_with_one_key_is_charged_once(photo: Photo) -> None:
    ann = await photo.member()
    photo_id = await scanned_photo(photo, ann)
    await photo.top_up(ann, 5000)
    price = (await prices(photo, ann)).photo_price
    request = pb.PurchasePhotoRequest(
        photo_id=photo_id, expected_price=price, idempotency_key=uuid.uuid4().hex
    )
    first = await photo.stub.PurchasePhoto(request, metadata=ann.auth)
    again = await photo.stub.PurchasePhoto(request, metadata=ann.auth)
    assert first.purchase.result == pb.PURCHASE_RESULT_APPROVED
    assert first.purchase.charge_id
    assert again.purchase == first.purchase
    assert await photo.balance(ann) == 5000 - price.minor_units
    [mine] = await photo.photos_of(ann)
    assert mine.purchased
    # A wrong photo bought on its own is refunded when unlinked as not us.
    await photo.stub.UnlinkPhoto(
        pb.UnlinkPhotoRequest(
            photo_id=photo_id, party_id=ann.party_id, reason=pb.UNLINK_REASON_NOT_US
        ),
        metadata=ann.auth,
    )
    assert await photo.balance(ann) == 5000


async def test_an_empty_wallet_declines_and_nothing_is_bought(photo: Photo) -> None:
    ann = await photo.member()
    photo_id = await scanned_photo(photo, ann)
    price = (await prices(photo, ann)).photo_price
    reply = await photo.stub.PurchasePhoto(
        pb.PurchasePhotoRequest(
            photo_id=photo_id, expected_price=price, idempotency_key=uuid.uuid4().hex
        ),
        metadata=ann.auth,
    )
    assert reply.purchase.result == pb.PURCHASE_RESULT_DECLINED
    assert reply.purchase.decline_reason == pb.PURCHASE_DECLINE_REASON_INSUFFICIENT_FUNDS
    [mine] = await photo.photos_of(ann)
    assert not mine.purchased


async def test_the_days_package_covers_the_partys_photos(photo: Photo) -> None:
    ann = await photo.member()
    photo_id = await scanned_photo(photo, ann)
    await photo.top_up(ann, 10000)
    price = (await prices(photo, ann)).package_price
    taken = await photo.stub.GetPhoto(pb.GetPhotoRequest(photo_id=photo_id), metadata=ann.auth)
    day = photo.parts.catalog.venue_date(taken.photo.captured_at.ToDatetime(tzinfo=UTC))
    request = pb.PurchasePhotoPackageRequest(
        party_id=ann.party_id,
        date=common_pb2.VenueDate(year=day.year, month=day.month, day=day.day),
        expected_price=price,
        idempotency_key=uuid.uuid4().hex,
    )
    first = await photo.stub.PurchasePhotoPackage(request, metadata=ann.auth)
    again = await photo.stub.PurchasePhotoPackage(request, metadata=ann.auth)
    assert first.purchase.result == pb.PURCHASE_RESULT_APPROVED
    assert again.purchase.purchase_id == first.purchase.purchase_id
    assert await photo.balance(ann) == 10000 - price.minor_units
    [mine] = await photo.photos_of(ann)
    assert mine.purchased


async def test_purchase_bad_input_and_callers_charge_nothing(photo: Photo) -> None:
    ann = await photo.member()
    photo_id = await scanned_photo(photo, ann)
    await photo.top_up(ann, 5000)
    price = (await prices(photo, ann)).photo_price
    key = uuid.uuid4().hex
    cases = [
        (pb.PurchasePhotoRequest(expected_price=price, idempotency_key=key), "photo_id"),
        (pb.PurchasePhotoRequest(photo_id=photo_id, expected_price=price), "idempotency_key"),
        (pb.PurchasePhotoRequest(photo_id=photo_id, idempotency_key=key), "expected_price"),
    ]
    for request, field in cases:
        await expect_error(
            photo.stub.PurchasePhoto(request, metadata=ann.auth),
            grpc.StatusCode.INVALID_ARGUMENT,
            field,
        )
    stale = pb.PurchasePhotoRequest(
        photo_id=photo_id, expected_price=usd(price.minor_units - 100), idempotency_key=key
    )
    await expect_error(
        photo.stub.PurchasePhoto(stale, metadata=ann.auth), grpc.StatusCode.FAILED_PRECONDITION
    )
    good = pb.PurchasePhotoRequest(photo_id=photo_id, expected_price=price, idempotency_key=key)
    eve = await photo.member()
    await expect_error(
        photo.stub.PurchasePhoto(good, metadata=eve.auth), grpc.StatusCode.PERMISSION_DENIED
    )
    await expect_error(
        photo.stub.PurchasePhoto(good, metadata=await photo.ops()),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    package = pb.PurchasePhotoPackageRequest(
        party_id=ann.party_id, expected_price=price, idempotency_key=key
    )
    await expect_error(
        photo.stub.PurchasePhotoPackage(package, metadata=eve.auth),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    bad_date = pb.PurchasePhotoPackageRequest(
        party_id=ann.party_id,
        date=common_pb2.VenueDate(year=2026, month=2, day=30),
        expected_price=(await prices(photo, ann)).package_price,
        idempotency_key=key,
    )
    await expect_error(
        photo.stub.PurchasePhotoPackage(bad_date, metadata=ann.auth),
        grpc.StatusCode.INVALID_ARGUMENT,
        "date",
    )
    assert await photo.balance(ann) == 5000
    [mine] = await photo.photos_of(ann)
    assert not mine.purchased


async def test_a_photo_bought_through_a_link_later_taken_back_is_refunded_once(
    photo: Photo,
) -> None:
    """A photographer's device sends its photos in batches: Ann's session took
    a photo that belonged to Bob, whose tap arrived later, and Ann bought it
    meanwhile. When the late tap takes the photo back (superseded), Ann gets
    her money back through the wallet, once however often upkeep runs."""
    t0 = slot()
    ann = await photo.member()
    bob = await photo.member()
    auth = await photo.device(PHOTOGRAPHER, SPOT)

    async def tap(band: str, at: datetime) -> None:
        await photo.stub.PhotographerTap(
            pb.PhotographerTapRequest(
                band_uid=band, tapped_at=to_timestamp(at), idempotency_key=uuid.uuid4().hex
            ),
            metadata=auth,
        )

    await tap(ann.band_uid, t0)
    shot = await photo.ingest(capture(SPOT, t0 + timedelta(seconds=70)), camera=SPOT)
    photo_id = shot.acks[0].photo_id
    await photo.until(lambda: photo.photos_of(ann))
    await photo.top_up(ann, 5000)
    price = (await prices(photo, ann)).photo_price
    bought = await photo.stub.PurchasePhoto(
        pb.PurchasePhotoRequest(
            photo_id=photo_id, expected_price=price, idempotency_key=uuid.uuid4().hex
        ),
        metadata=ann.auth,
    )
    assert bought.purchase.result == pb.PURCHASE_RESULT_APPROVED
    assert await photo.balance(ann) == 5000 - price.minor_units
    await tap(bob.band_uid, t0 + timedelta(seconds=50))
    assert [p.photo_id for p in await photo.photos_of(bob)] == [photo_id]
    assert await photo.photos_of(ann) == []
    parts = photo.parts
    clock = photo.running.runtime.settings.clock
    for _ in range(2):
        await upkeep_once(parts.store, parts.purchases, parts.catalog, clock)
        assert await photo.balance(ann) == 5000
    state = await photo.db.fetchval(
        "SELECT state FROM photo.purchases WHERE purchase_id = $1",
        uuid.UUID(bought.purchase.purchase_id),
    )
    assert state == PURCHASE_REFUNDED
    # Bob did not pay for it, and nothing of his was refunded.
    assert await photo.balance(bob) == 0
