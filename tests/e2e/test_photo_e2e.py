"""Photo as a real process beside identity and access, on the default park: a
party taps at a ride's boarding scanner, the ride camera uploads the photo,
the party finds it in the app and buys it from the wallet; photo is killed
and restarted, still has it and knows a resent capture; its metrics reach the
telemetry files."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from services.platform.validation import to_timestamp
from services.runner.suite import Suite, auto_ports
from tests.e2e.test_access_e2e import embedded_pg
from tests.support.people import device
from tests.support.stubs import bearer
from venue.access.v1 import access_pb2 as apb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.photo.v1 import photo_pb2 as pb
from venue.photo.v1 import photo_pb2_grpc

pytestmark = pytest.mark.e2e

T = TypeVar("T")
BOARDING = "ap.summit-yeti-express.boarding"
CAMERA = "cam.summit-yeti-express"
DELAY = 57.6


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await probe()):
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.2)
    return value


async def test_a_ride_photo_is_linked_bought_and_survives_a_restart(tmp_path: Path) -> None:
    services = ["identity", "access", "photo"]
    data_dir = tmp_path / "data"
    suite = Suite(
        data_dir=data_dir,
        services=services,
        ports=auto_ports(services),
        database_url=await embedded_pg("ensure_running", data_dir),
    )
    try:
        await suite.start()
        admin = await suite.admin_token()
        async with (
            grpc.aio.insecure_channel(suite.addresses["identity"]) as ichannel,
            grpc.aio.insecure_channel(suite.addresses["access"]) as achannel,
            grpc.aio.insecure_channel(suite.addresses["photo"]) as pchannel,
        ):
            identity: identity_pb2_grpc.IdentityServiceAsyncStub = (
                identity_pb2_grpc.IdentityServiceStub(ichannel)
            )
            access: access_pb2_grpc.AccessServiceAsyncStub = access_pb2_grpc.AccessServiceStub(
                achannel
            )
            photo: photo_pb2_grpc.PhotoServiceAsyncStub = photo_pb2_grpc.PhotoServiceStub(pchannel)
            email = f"ann-{uuid.uuid4().hex[:8]}@example.com"
            made = await identity.CreateGuest(
                ipb.CreateGuestRequest(
                    display_name="Ann",
                    email=email,
                    password="correct horse battery",
                    consent=ipb.Consent(photo_linking=True),
                )
            )
            ann = bearer(
                (
                    await identity.IssueToken(
                        ipb.IssueTokenRequest(
                            guest_password=ipb.GuestPassword(
                                email=email, password="correct horse battery"
                            )
                        )
                    )
                ).access_token
            )
            party = made.guest.party_id
            uid = f"PARK-{uuid.uuid4().hex[:10]}"
            await identity.LinkBand(
                ipb.LinkBandRequest(guest_id=made.guest.guest_id, band_uid=uid),
                metadata=bearer(admin),
            )
            scanner = await device(identity, admin, common_pb2.DEVICE_KIND_RIDE_SCANNER, BOARDING)
            camera = await device(identity, admin, common_pb2.DEVICE_KIND_CAMERA, CAMERA)
            boarded = datetime.now(UTC) - timedelta(minutes=15)

            async def tap() -> bool:
                reply = await access.Tap(
                    apb.TapRequest(
                        access_point_id=BOARDING,
                        band_uid=uid,
                        tapped_at=to_timestamp(boarded),
                        idempotency_key=uuid.uuid4().hex,
                    ),
                    metadata=scanner,
                )
                return reply.decision == apb.TAP_DECISION_ALLOW

            await eventually(tap)
            ident = uuid.uuid4().hex
            shot = pb.Capture(
                capture_id=ident,
                camera_id=CAMERA,
                captured_at=to_timestamp(boarded + timedelta(seconds=DELAY)),
                image_uri=f"s3://photos/{ident}.jpg",
                image_sha256="ab" * 32,
            )
            reply = await photo.IngestCaptures(
                pb.IngestCapturesRequest(captures=[shot]), metadata=camera
            )
            photo_id = reply.acks[0].photo_id

            async def mine() -> list[pb.Photo]:
                listed = await photo.ListPhotos(pb.ListPhotosRequest(party_id=party), metadata=ann)
                return list(listed.photos)

            [linked] = await eventually(mine)
            assert (linked.photo_id, list(linked.guest_ids)) == (photo_id, [made.guest.guest_id])

            await access.TopUp(
                apb.TopUpRequest(
                    party_id=party,
                    amount=common_pb2.Money(minor_units=5000, currency="USD"),
                    funding_source=apb.FUNDING_SOURCE_CARD,
                    payment_reference="card-1",
                    idempotency_key=uuid.uuid4().hex,
                ),
                metadata=ann,
            )
            prices = await photo.GetPhotoPrices(pb.GetPhotoPricesRequest(), metadata=ann)
            bought = await photo.PurchasePhoto(
                pb.PurchasePhotoRequest(
                    photo_id=photo_id,
                    expected_price=prices.photo_price,
                    idempotency_key=uuid.uuid4().hex,
                ),
                metadata=ann,
            )
            assert bought.purchase.result == pb.PURCHASE_RESULT_APPROVED
            wallet = await access.GetWallet(apb.GetWalletRequest(party_id=party), metadata=ann)
            assert wallet.wallet.balance.minor_units == 5000 - prices.photo_price.minor_units

            await suite.restart("photo", kill=True)
            [again] = await mine()
            assert (again.photo_id, again.purchased) == (photo_id, True)
            # The camera resends after the restart: stored once.
            resent = await photo.IngestCaptures(
                pb.IngestCapturesRequest(captures=[shot]), metadata=camera
            )
            assert resent.acks[0].outcome == pb.CAPTURE_OUTCOME_DUPLICATE
            assert resent.acks[0].photo_id == photo_id
            # A record the restarted process refuses, so it has a count to export.
            broken = pb.Capture()
            broken.CopyFrom(shot)
            broken.capture_id = uuid.uuid4().hex
            broken.image_sha256 = "not-a-checksum"
            refused = await photo.IngestCaptures(
                pb.IngestCapturesRequest(captures=[broken]), metadata=camera
            )
            assert refused.acks[0].outcome == pb.CAPTURE_OUTCOME_REJECTED
    finally:
        await suite.stop()
        await embedded_pg("stop", data_dir)
    assert suite.telemetry_dir is not None
    exported = "".join(
        p.read_text(encoding="utf-8") for p in suite.telemetry_dir.glob("metrics-photo*.jsonl")
    )
    assert '"venue.photo.captures"' in exported
    assert '{"key":"venue.outcome","value":{"stringValue":"rejected"}}' in exported
    assert '"venue.photo.pending"' in exported
