"""The devices' RPCs through the running service: capture ingest (per-capture
refusals with a reason, duplicates, idempotent batches), photographer taps,
the exit kiosk's screen and claims; bad input and callers of the wrong kind."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc

from services.platform.validation import to_timestamp
from tests.service.photo.conftest import (
    CAMERA,
    KIOSK,
    KIOSK_CAMERA,
    KIOSK_DEVICE,
    KIOSK_RIDE,
    PHOTOGRAPHER,
    RIDE_CAMERA,
    SPOT,
    Photo,
    capture,
    slot,
)
from tests.support.stubs import expect_error
from venue.photo.v1 import photo_pb2 as pb

R = pb.CaptureRejectReason


# --- IngestCaptures ------------------------------------------------------------


async def test_each_bad_capture_is_refused_alone_with_its_reason(photo: Photo) -> None:
    t0 = slot()
    good = capture(RIDE_CAMERA, t0)
    bad = [
        (capture(RIDE_CAMERA, t0, capture_id=""), R.CAPTURE_REJECT_REASON_MISSING_CAPTURE_ID),
        (capture("cam.nowhere", t0), R.CAPTURE_REJECT_REASON_UNKNOWN_CAMERA),
        (capture(KIOSK_CAMERA, t0), R.CAPTURE_REJECT_REASON_CAMERA_NOT_ALLOWED),
        (capture(RIDE_CAMERA, t0, image_uri=""), R.CAPTURE_REJECT_REASON_MISSING_IMAGE_URI),
        (
            capture(RIDE_CAMERA, t0, image_sha256="not-hex"),
            R.CAPTURE_REJECT_REASON_MALFORMED_CHECKSUM,
        ),
        (
            capture(RIDE_CAMERA, datetime.now(UTC) + timedelta(hours=1)),
            R.CAPTURE_REJECT_REASON_TIME_IN_FUTURE,
        ),
        (
            capture(RIDE_CAMERA, datetime.now(UTC) - timedelta(days=40)),
            R.CAPTURE_REJECT_REASON_TOO_OLD,
        ),
        (capture(RIDE_CAMERA, t0, row=-1), R.CAPTURE_REJECT_REASON_MALFORMED),
    ]
    missing_time = capture(RIDE_CAMERA, t0)
    missing_time.ClearField("captured_at")
    bad.append((missing_time, R.CAPTURE_REJECT_REASON_MISSING_CAPTURED_AT))
    before = await photo.count("photos")
    reply = await photo.ingest(good, *[c for c, _ in bad])
    assert reply.acks[0].outcome == pb.CAPTURE_OUTCOME_ACCEPTED
    assert reply.acks[0].photo_id
    for ack, (sent, reason) in zip(reply.acks[1:], bad, strict=True):
        assert ack.capture_id == sent.capture_id
        assert (ack.outcome, ack.reject_reason) == (pb.CAPTURE_OUTCOME_REJECTED, reason)
        assert not ack.photo_id
    assert await photo.count("photos") == before + 1


async def test_a_capture_sent_twice_is_stored_once_and_a_changed_one_is_refused(
    photo: Photo,
) -> None:
    t0 = slot()
    shot = capture(RIDE_CAMERA, t0)
    first = await photo.ingest(shot)
    before = await photo.count("photos")
    again = await photo.ingest(shot)
    assert again.acks[0].outcome == pb.CAPTURE_OUTCOME_DUPLICATE
    assert again.acks[0].photo_id == first.acks[0].photo_id
    changed = pb.Capture()
    changed.CopyFrom(shot)
    changed.image_uri = "s3://photos/other.jpg"
    conflict = await photo.ingest(changed)
    assert conflict.acks[0].reject_reason == R.CAPTURE_REJECT_REASON_CONFLICTING_DUPLICATE
    assert await photo.count("photos") == before


async def test_a_resent_batch_gets_the_same_answer(photo: Photo) -> None:
    t0 = slot()
    auth = await photo.device(CAMERA, RIDE_CAMERA)
    request = pb.IngestCapturesRequest(
        captures=[capture(RIDE_CAMERA, t0), capture(RIDE_CAMERA, t0 + timedelta(seconds=30))],
        idempotency_key=uuid.uuid4().hex,
    )
    first = await photo.stub.IngestCaptures(request, metadata=auth)
    before = await photo.count("photos")
    second = await photo.stub.IngestCaptures(request, metadata=auth)
    assert [a.photo_id for a in second.acks] == [a.photo_id for a in first.acks]
    assert await photo.count("photos") == before


async def test_ingest_refuses_an_empty_or_oversized_batch_and_a_bad_key(photo: Photo) -> None:
    auth = await photo.device(CAMERA, RIDE_CAMERA)
    before = await photo.count("photos")
    await expect_error(
        photo.stub.IngestCaptures(pb.IngestCapturesRequest(), metadata=auth),
        grpc.StatusCode.INVALID_ARGUMENT,
        "captures",
    )
    t0 = slot()
    many = [capture(RIDE_CAMERA, t0 + timedelta(seconds=i)) for i in range(1001)]
    await expect_error(
        photo.stub.IngestCaptures(pb.IngestCapturesRequest(captures=many), metadata=auth),
        grpc.StatusCode.INVALID_ARGUMENT,
        "captures",
    )
    await expect_error(
        photo.stub.IngestCaptures(
            pb.IngestCapturesRequest(
                captures=[capture(RIDE_CAMERA, t0)], idempotency_key="x" * 500
            ),
            metadata=auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_key",
    )
    assert await photo.count("photos") == before


async def test_only_cameras_and_photographers_send_captures(photo: Photo) -> None:
    member = await photo.member()
    kiosk = await photo.device(KIOSK_DEVICE, KIOSK)
    request = pb.IngestCapturesRequest(captures=[capture(RIDE_CAMERA, slot())])
    for auth in (member.auth, kiosk, await photo.ops()):
        await expect_error(
            photo.stub.IngestCaptures(request, metadata=auth), grpc.StatusCode.PERMISSION_DENIED
        )
    await expect_error(photo.stub.IngestCaptures(request), grpc.StatusCode.UNAUTHENTICATED)


# --- PhotographerTap -----------------------------------------------------------


async def test_a_photographer_tap_gives_the_next_photos_to_the_party(photo: Photo) -> None:
    t0 = slot()
    ann = await photo.member()
    bob = await photo.member()
    auth = await photo.device(PHOTOGRAPHER, SPOT)

    async def tap(band: str, at: datetime) -> pb.PhotographerTapResponse:
        return await photo.stub.PhotographerTap(
            pb.PhotographerTapRequest(
                band_uid=band, tapped_at=to_timestamp(at), idempotency_key=uuid.uuid4().hex
            ),
            metadata=auth,
        )

    reply = await tap(ann.band_uid, t0)
    assert reply.outcome == pb.BAND_TAP_OUTCOME_LINKED and reply.session_id
    first = await photo.ingest(capture(SPOT, t0 + timedelta(seconds=20)), camera=SPOT)
    await tap(bob.band_uid, t0 + timedelta(seconds=60))
    second = await photo.ingest(capture(SPOT, t0 + timedelta(seconds=80)), camera=SPOT)
    ann_photos = await photo.until(lambda: photo.photos_of(ann))
    assert [p.photo_id for p in ann_photos] == [first.acks[0].photo_id]
    assert ann_photos[0].link_source == pb.LINK_SOURCE_PHOTOGRAPHER_TAP
    assert ann_photos[0].source == pb.CAPTURE_SOURCE_PHOTOGRAPHER
    bob_photos = await photo.until(lambda: photo.photos_of(bob))
    assert [p.photo_id for p in bob_photos] == [second.acks[0].photo_id]
    # An unknown band ends the session: the photos after it go to nobody.
    unknown = await tap("NO-SUCH-BAND-1", t0 + timedelta(seconds=100))
    assert unknown.outcome == pb.BAND_TAP_OUTCOME_UNKNOWN_BAND
    await photo.ingest(capture(SPOT, t0 + timedelta(seconds=110)), camera=SPOT)
    assert [p.photo_id for p in await photo.photos_of(bob)] == [second.acks[0].photo_id]


async def test_a_late_photographer_tap_takes_its_photos_from_the_party_before(
    photo: Photo,
) -> None:
    """A device sends its captures in batches: the next party's tap may arrive
    after that party's photos, which the previous session took meanwhile. The
    tap's venue time decides, not the order the messages arrived in."""
    t0 = slot()
    ann = await photo.member()
    bob = await photo.member()
    auth = await photo.device(PHOTOGRAPHER, SPOT)

    async def tap(band: str, at: datetime) -> pb.PhotographerTapResponse:
        return await photo.stub.PhotographerTap(
            pb.PhotographerTapRequest(
                band_uid=band, tapped_at=to_timestamp(at), idempotency_key=uuid.uuid4().hex
            ),
            metadata=auth,
        )

    await tap(ann.band_uid, t0)
    batch = await photo.ingest(
        capture(SPOT, t0 + timedelta(seconds=20)),
        capture(SPOT, t0 + timedelta(seconds=70)),
        capture(SPOT, t0 + timedelta(seconds=95)),
        camera=SPOT,
    )
    ann_first, bob_first, after = (a.photo_id for a in batch.acks)
    await tap(bob.band_uid, t0 + timedelta(seconds=50))
    await tap("NO-SUCH-BAND-2", t0 + timedelta(seconds=90))
    assert [p.photo_id for p in await photo.photos_of(ann)] == [ann_first]
    assert [p.photo_id for p in await photo.photos_of(bob)] == [bob_first]
    # Nobody holds the photo after the unknown band's tap.
    assert (
        await photo.db.fetchval(
            "SELECT count(*) FROM photo.photo_links WHERE photo_id = $1 AND removed_at IS NULL",
            uuid.UUID(after),
        )
        == 0
    )
    unlinked = await photo.db.fetchval(
        "SELECT count(*) FROM photo.photo_links WHERE removed_reason = $1",
        pb.UNLINK_REASON_SUPERSEDED,
    )
    assert unlinked >= 2


async def test_photographer_tap_bad_input_and_callers(photo: Photo) -> None:
    member = await photo.member()
    auth = await photo.device(PHOTOGRAPHER, SPOT)
    now = to_timestamp(datetime.now(UTC))
    before = await photo.count("photographer_sessions")
    await expect_error(
        photo.stub.PhotographerTap(pb.PhotographerTapRequest(tapped_at=now), metadata=auth),
        grpc.StatusCode.INVALID_ARGUMENT,
        "band_uid",
    )
    await expect_error(
        photo.stub.PhotographerTap(
            pb.PhotographerTapRequest(band_uid=member.band_uid), metadata=auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "tapped_at",
    )
    future = to_timestamp(datetime.now(UTC) + timedelta(hours=2))
    await expect_error(
        photo.stub.PhotographerTap(
            pb.PhotographerTapRequest(band_uid=member.band_uid, tapped_at=future), metadata=auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "tapped_at",
    )
    request = pb.PhotographerTapRequest(band_uid=member.band_uid, tapped_at=now)
    for other in (await photo.device(CAMERA, RIDE_CAMERA), member.auth, await photo.ops()):
        await expect_error(
            photo.stub.PhotographerTap(request, metadata=other), grpc.StatusCode.PERMISSION_DENIED
        )
    assert await photo.count("photographer_sessions") == before


# --- the exit kiosk ------------------------------------------------------------


async def test_a_kiosk_shows_its_rides_photos_and_a_band_claims_one(photo: Photo) -> None:
    t0 = slot()
    member = await photo.member(consent=False)
    shot = await photo.ingest(capture(KIOSK_CAMERA, t0), camera=KIOSK_CAMERA)
    photo_id = shot.acks[0].photo_id
    kiosk = await photo.device(KIOSK_DEVICE, KIOSK)
    listed = await photo.stub.ListKioskPhotos(
        pb.ListKioskPhotosRequest(
            attraction_id=KIOSK_RIDE, since=to_timestamp(t0 - timedelta(seconds=1))
        ),
        metadata=kiosk,
    )
    assert photo_id in [p.photo_id for p in listed.photos]

    async def claim(at: datetime) -> pb.ClaimPhotoResponse:
        return await photo.stub.ClaimPhoto(
            pb.ClaimPhotoRequest(
                photo_id=photo_id,
                band_uid=member.band_uid,
                tapped_at=to_timestamp(at),
                idempotency_key=uuid.uuid4().hex,
            ),
            metadata=kiosk,
        )

    # Long after the ride, the photo is no longer claimable at the kiosk.
    late = await claim(t0 + timedelta(hours=2))
    assert late.outcome == pb.BAND_TAP_OUTCOME_PHOTO_NOT_AVAILABLE
    # Photo linking off: a claim the guest makes themselves still links.
    assert (await claim(t0 + timedelta(minutes=2))).outcome == pb.BAND_TAP_OUTCOME_LINKED
    assert (await claim(t0 + timedelta(minutes=3))).outcome == (pb.BAND_TAP_OUTCOME_ALREADY_LINKED)
    [mine] = await photo.photos_of(member)
    assert (mine.photo_id, mine.link_source) == (photo_id, pb.LINK_SOURCE_KIOSK_CLAIM)
    assert list(mine.guest_ids) == [member.guest_id]


async def test_a_kiosk_cannot_claim_another_rides_photo_or_list_it(photo: Photo) -> None:
    t0 = slot()
    member = await photo.member()
    shot = await photo.ingest(capture(RIDE_CAMERA, t0))
    kiosk = await photo.device(KIOSK_DEVICE, KIOSK)
    reply = await photo.stub.ClaimPhoto(
        pb.ClaimPhotoRequest(
            photo_id=shot.acks[0].photo_id,
            band_uid=member.band_uid,
            tapped_at=to_timestamp(t0 + timedelta(minutes=1)),
        ),
        metadata=kiosk,
    )
    assert reply.outcome == pb.BAND_TAP_OUTCOME_PHOTO_NOT_AVAILABLE
    assert await photo.photos_of(member) == []
    await expect_error(
        photo.stub.ListKioskPhotos(
            pb.ListKioskPhotosRequest(attraction_id="summit-yeti-express"), metadata=kiosk
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_kiosk_rpcs_bad_input_and_callers(photo: Photo) -> None:
    member = await photo.member()
    kiosk = await photo.device(KIOSK_DEVICE, KIOSK)
    now = to_timestamp(datetime.now(UTC))
    links = await photo.count("photo_links")
    await expect_error(
        photo.stub.ClaimPhoto(
            pb.ClaimPhotoRequest(band_uid=member.band_uid, tapped_at=now), metadata=kiosk
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "photo_id",
    )
    some_id = str(uuid.uuid4())
    await expect_error(
        photo.stub.ClaimPhoto(
            pb.ClaimPhotoRequest(photo_id=some_id, tapped_at=now), metadata=kiosk
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "band_uid",
    )
    await expect_error(
        photo.stub.ClaimPhoto(
            pb.ClaimPhotoRequest(photo_id=some_id, band_uid=member.band_uid), metadata=kiosk
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "tapped_at",
    )
    claim = pb.ClaimPhotoRequest(photo_id=some_id, band_uid=member.band_uid, tapped_at=now)
    for other in (member.auth, await photo.device(CAMERA, RIDE_CAMERA), await photo.ops()):
        await expect_error(
            photo.stub.ClaimPhoto(claim, metadata=other), grpc.StatusCode.PERMISSION_DENIED
        )
    assert await photo.count("photo_links") == links
    await expect_error(
        photo.stub.ListKioskPhotos(pb.ListKioskPhotosRequest(), metadata=kiosk),
        grpc.StatusCode.INVALID_ARGUMENT,
        "attraction_id",
    )
    await expect_error(
        photo.stub.ListKioskPhotos(
            pb.ListKioskPhotosRequest(attraction_id=KIOSK_RIDE), metadata=member.auth
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        photo.stub.ListKioskPhotos(
            pb.ListKioskPhotosRequest(attraction_id="no-such-ride"), metadata=await photo.ops()
        ),
        grpc.StatusCode.NOT_FOUND,
    )
