"""IngestPings against the real service: acks per batch, a resent batch counting
once, bad rows rejected with their reasons while the rest is stored, unreadable
batches refused whole, and who may send pings for which readers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator

import grpc

from services.location.batch import MAX_ROWS
from tests.service.conftest import GATE, READER
from tests.service.location.conftest import (
    QUEUE_READER_A,
    QUEUE_READER_B,
    QUEUE_ZONE,
    BandedGuest,
    Location,
    make_batch,
    now_ms,
)
from tests.support.stubs import bearer, expect_error
from venue.identity.v1 import identity_pb2 as ipb
from venue.location.v1 import location_pb2 as pb

ACCEPTED = pb.PING_BATCH_OUTCOME_ACCEPTED
DUPLICATE = pb.PING_BATCH_OUTCOME_DUPLICATE
REFUSED = pb.PING_BATCH_OUTCOME_REFUSED
OTHER_READER = "rd.buccaneer-bay-voyage.q2"


async def stored_pings(location: Location, guest: BandedGuest) -> int:
    return int(
        await location.db.fetchval(
            "SELECT count(*) FROM pings p JOIN tracks t USING (track_no) WHERE t.guest_id = $1",
            guest.guest_id,
        )
    )


async def all_pings(location: Location) -> int:
    return int(await location.db.fetchval("SELECT count(*) FROM pings"))


async def known(location: Location, *guests: BandedGuest) -> None:
    """Wait until location has heard of the guests' bands from identity."""
    t = now_ms() - 60_000
    ack = await location.ping_when_known([(g.band_uid, QUEUE_READER_A, t, -90) for g in guests])
    assert not ack.rejected, ack


async def test_a_batch_is_acked_stored_for_consenting_guests_and_places_everyone(
    location: Location,
) -> None:
    ann, bob = await location.guest(), await location.guest(tracking=False)
    await known(location, ann, bob)
    before_ann, before_all = await stored_pings(location, ann), await all_pings(location)
    t = now_ms()
    ack = await location.ping(
        [
            (ann.band_uid, QUEUE_READER_A, t, -50),
            (ann.band_uid, QUEUE_READER_B, t + 10, -60),
            (bob.band_uid, QUEUE_READER_A, t, -55),
        ],
        batch_id="first-batch",
    )
    assert (ack.batch_id, ack.outcome, ack.accepted_count, list(ack.rejected)) == (
        "first-batch",
        ACCEPTED,
        3,
        [],
    )
    # Bob has tracking off: his reads count him but are never stored.
    assert await stored_pings(location, ann) == before_ann + 2
    assert await all_pings(location) == before_all + 2
    await location.placed_in(ann.guest_id, QUEUE_ZONE)
    assert (await location.where(bob.guest_id)).status == pb.LOCATION_STATUS_TRACKING_OFF


async def test_a_resent_batch_counts_once(location: Location) -> None:
    ann = await location.guest()
    await known(location, ann)
    t = now_ms()
    rows = [(ann.band_uid, QUEUE_READER_A, t, -50), (ann.band_uid, "rd.nowhere", t, -50)]
    first = await location.ping(rows, batch_id="resend-me")
    before = await stored_pings(location, ann)
    # The same id resent on a new stream, and twice within one stream.
    again = await location.ping(rows, batch_id="resend-me")
    twice = await location.send([make_batch("resend-me", rows), make_batch("resend-me", rows)])
    for ack in (again, *twice):
        assert ack.outcome == DUPLICATE
        assert ack.accepted_count == first.accepted_count == 1
        assert list(ack.rejected) == list(first.rejected)
    assert await stored_pings(location, ann) == before
    # Batch ids are per device: another gateway's batch of that id is its own.
    _, other = await location.reader_device("lantern-bay-park")
    assert (await location.ping(rows, batch_id="resend-me", token=other)).outcome == ACCEPTED
    assert await stored_pings(location, ann) == before + 1


async def test_concurrent_resends_store_the_batch_once(location: Location) -> None:
    ann = await location.guest()
    await known(location, ann)
    rows = [(ann.band_uid, QUEUE_READER_A, now_ms(), -50)] * 50
    before = await stored_pings(location, ann)
    acks = await asyncio.gather(*(location.ping(rows, batch_id="racing") for _ in range(6)))
    assert sorted(a.outcome for a in acks) == [ACCEPTED] + [DUPLICATE] * 5
    assert await stored_pings(location, ann) == before + 50


async def test_batches_of_many_streams_at_once_are_each_stored_once(location: Location) -> None:
    """Batches arriving together are written together: every one acked for
    itself, with its own rejects, stored once, resends answered as such."""
    ann, bob = await location.guest(), await location.guest(tracking=False)
    await known(location, ann, bob)
    tokens = [location.gateway] + [
        (await location.reader_device("lantern-bay-park"))[1] for _ in range(2)
    ]
    before = await stored_pings(location, ann)
    t = now_ms()

    def batches(device: int) -> list[pb.PingBatch]:
        made = [
            make_batch(
                f"many-{device}-{i}",
                [(ann.band_uid, QUEUE_READER_A, t + i, -50)] * 20
                + [
                    (bob.band_uid, QUEUE_READER_B, t + i, -50),
                    ("NO-SUCH-BAND", OTHER_READER, t, -50),
                ],
            )
            for i in range(8)
        ]
        # The first device resends its first batch at the end of its stream.
        return made + made[:1] if device == 0 else made

    sent = await asyncio.gather(*(location.send(batches(d), tok) for d, tok in enumerate(tokens)))
    for device, acks in enumerate(sent):
        fresh = [a for a in acks if a.outcome == ACCEPTED]
        assert sorted(a.batch_id for a in fresh) == sorted(f"many-{device}-{i}" for i in range(8))
        for ack in acks:
            assert ack.accepted_count == 21
            assert [(r.row_index, r.reason) for r in ack.rejected] == [
                (21, pb.PING_REJECT_REASON_UNKNOWN_BAND)
            ]
    assert [a.outcome for a in sent[0]].count(DUPLICATE) == 1
    # Ann's reads of 24 batches, once each; Bob's (tracking off) never.
    assert await stored_pings(location, ann) == before + 3 * 8 * 20
    await location.placed_in(ann.guest_id, QUEUE_ZONE)


async def test_bad_rows_are_rejected_with_their_reason_and_the_rest_stored(
    location: Location,
) -> None:
    ann, gone = await location.guest(), await location.guest()
    await known(location, ann, gone)
    bands = await location.identity.stub.ListBands(
        ipb.ListBandsRequest(guest_id=gone.guest_id), metadata=bearer(gone.token)
    )
    await location.identity.stub.DeactivateBand(
        ipb.DeactivateBandRequest(
            band_id=bands.bands[0].band_id, reason=ipb.DEACTIVATION_REASON_LOST
        ),
        metadata=bearer(gone.token),
    )
    # One device for a single reader: others are not its to send.
    _, single = await location.reader_device(QUEUE_READER_A)
    t = now_ms()
    rows = [
        (ann.band_uid, QUEUE_READER_A, t, -50),
        (ann.band_uid, "rd.no-such-reader", t, -50),
        (ann.band_uid, QUEUE_READER_B, t, -50),
        ("not a band!", QUEUE_READER_A, t, -50),
        ("BAND-NEVER-LINKED", QUEUE_READER_A, t, -50),
        (ann.band_uid, QUEUE_READER_A, t + 3_600_000, -50),
        (ann.band_uid, QUEUE_READER_A, t - 49 * 3_600_000, -50),
        (ann.band_uid, QUEUE_READER_A, t, 12),
        (ann.band_uid, QUEUE_READER_A, t - 1000, -70),
    ]

    async def deactivation_seen() -> bool:
        ack = await location.ping([(gone.band_uid, QUEUE_READER_A, now_ms(), -50)])
        return [r.reason for r in ack.rejected] == [pb.PING_REJECT_REASON_BAND_DEACTIVATED]

    await location.until(deactivation_seen, what="band deactivation")
    rows.append((gone.band_uid, QUEUE_READER_A, t, -50))
    before = await stored_pings(location, ann)
    ack = await location.ping(rows, token=single)
    assert ack.outcome == ACCEPTED
    assert ack.accepted_count == 2
    assert [(r.row_index, r.reason) for r in ack.rejected] == [
        (1, pb.PING_REJECT_REASON_UNKNOWN_READER),
        (2, pb.PING_REJECT_REASON_READER_NOT_ALLOWED),
        (3, pb.PING_REJECT_REASON_MALFORMED_BAND_UID),
        (4, pb.PING_REJECT_REASON_UNKNOWN_BAND),
        (5, pb.PING_REJECT_REASON_TIME_IN_FUTURE),
        (6, pb.PING_REJECT_REASON_TOO_OLD),
        (7, pb.PING_REJECT_REASON_RSSI_OUT_OF_RANGE),
        (9, pb.PING_REJECT_REASON_BAND_DEACTIVATED),
    ]
    assert await stored_pings(location, ann) == before + 2


async def test_unreadable_batches_are_refused_whole_and_the_stream_goes_on(
    location: Location,
) -> None:
    ann = await location.guest()
    await known(location, ann)
    t = now_ms()
    good = [(ann.band_uid, QUEUE_READER_A, t, -50)]
    mismatched = make_batch("mismatch", good)
    mismatched.rssi_dbm.append(-40)
    oversized = make_batch("too-big", good * (MAX_ROWS + 1))
    before = await all_pings(location)
    acks = await location.send(
        [
            make_batch("", good),
            make_batch("bad id with spaces", good),
            mismatched,
            oversized,
            make_batch("fine-after-all", good),
        ]
    )
    by_id = {a.batch_id: a for a in acks}
    assert by_id[""].refusal_reason == pb.PING_BATCH_REFUSAL_REASON_MISSING_BATCH_ID
    assert (
        by_id["bad id with spaces"].refusal_reason
        == pb.PING_BATCH_REFUSAL_REASON_MALFORMED_BATCH_ID
    )
    assert by_id["mismatch"].refusal_reason == pb.PING_BATCH_REFUSAL_REASON_COLUMN_LENGTH_MISMATCH
    assert by_id["too-big"].refusal_reason == pb.PING_BATCH_REFUSAL_REASON_TOO_MANY_ROWS
    for batch_id in ("", "bad id with spaces", "mismatch", "too-big"):
        assert by_id[batch_id].outcome == REFUSED
        assert by_id[batch_id].accepted_count == 0
    assert by_id["fine-after-all"].outcome == ACCEPTED
    assert await all_pings(location) == before + 1
    # A refused id was not used up: fixed, the batch goes in under it.
    assert (await location.ping(good, batch_id="mismatch")).outcome == ACCEPTED


async def test_a_zone_gateway_speaks_for_the_readers_in_its_zone(location: Location) -> None:
    ann = await location.guest()
    await known(location, ann)
    _, zone_gateway = await location.reader_device(QUEUE_ZONE)
    t = now_ms()
    ack = await location.ping(
        [(ann.band_uid, QUEUE_READER_B, t, -50), (ann.band_uid, OTHER_READER, t, -50)],
        token=zone_gateway,
    )
    assert [(r.row_index, r.reason) for r in ack.rejected] == [
        (1, pb.PING_REJECT_REASON_READER_NOT_ALLOWED)
    ]


async def test_only_reader_devices_naming_readers_may_send(location: Location) -> None:
    ann = await location.guest()
    rows = [(ann.band_uid, QUEUE_READER_A, now_ms(), -50)]
    _, gate = await location.identity.device(GATE, QUEUE_READER_A)
    _, nowhere = await location.identity.device(READER, "no-such-place")
    _, unplaced = await location.identity.device(READER, "")
    for token in (gate, ann.token, location.ops):
        await expect_error(location.ping(rows, token=token), grpc.StatusCode.PERMISSION_DENIED)
    for token in (nowhere, unplaced):
        await expect_error(location.ping(rows, token=token), grpc.StatusCode.PERMISSION_DENIED)
    call = location.stub.IngestPings(_one(make_batch("x", rows)))
    await expect_error(_drain(call), grpc.StatusCode.UNAUTHENTICATED)


async def test_a_revoked_device_is_cut_off_mid_stream(location: Location) -> None:
    ann = await location.guest()
    await known(location, ann)
    device_id, token = await location.reader_device(QUEUE_READER_A)
    queue: asyncio.Queue[pb.IngestPingsRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.IngestPingsRequest]:
        while (item := await queue.get()) is not None:
            yield item

    call = location.stub.IngestPings(requests(), metadata=bearer(token))
    rows = [(ann.band_uid, QUEUE_READER_A, now_ms(), -50)]
    queue.put_nowait(pb.IngestPingsRequest(batch=make_batch("before", rows)))
    first = await call.read()
    assert isinstance(first, pb.IngestPingsResponse) and first.outcome == ACCEPTED
    await location.identity.stub.RevokeDevice(
        ipb.RevokeDeviceRequest(device_id=device_id), metadata=bearer(location.identity.admin)
    )
    await asyncio.sleep(0.5)
    queue.put_nowait(pb.IngestPingsRequest(batch=make_batch("after", rows)))
    await expect_error(call.read(), grpc.StatusCode.UNAUTHENTICATED)


async def _one(batch: pb.PingBatch) -> AsyncIterator[pb.IngestPingsRequest]:
    yield pb.IngestPingsRequest(batch=batch)


async def _drain(call: AsyncIterable[pb.IngestPingsResponse]) -> None:
    async for _ in call:
        pass
