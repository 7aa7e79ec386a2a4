"""Who may call what, RPC by RPC and caller kind by caller kind: a reader may
send pings but never read a guest; a guest reads only their own party and the
anonymous counts; staff and services each get what their work needs. Written
out by hand rather than read from policy.py, so a loosened policy fails here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from tests.service.conftest import ADMIN, DESK
from tests.service.location.conftest import (
    QUEUE_READER_A,
    QUEUE_ZONE,
    VENUE_ID,
    Location,
    make_batch,
    now_ms,
)
from tests.support.stubs import bearer
from venue.common.v1 import common_pb2
from venue.location.v1 import location_pb2 as pb

DENIED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}


async def _outcome(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_every_rpc_admits_only_its_callers(location: Location) -> None:
    ann = await location.guest()
    kid = await location.child(ann)
    stranger = await location.guest()
    _, reader = await location.reader_device(VENUE_ID)
    callers: dict[str, str] = {
        "reader": reader,
        "guest": ann.token,
        "ops": location.ops,
        "itinerary": await location.service_token("itinerary"),
        "queue": await location.service_token("queue"),
        "access": await location.service_token("access"),
    }
    for name, role in (("desk", DESK), ("admin", ADMIN)):
        callers[name] = (await location.identity.staff(role))[1]
    stub = location.stub
    t0 = datetime.now(UTC) - timedelta(hours=1)
    history = pb.GetOccupancyHistoryRequest(zone_id=QUEUE_ZONE, bucket=Duration(seconds=60))
    history.period.start.FromDatetime(t0)
    history.period.end.FromDatetime(t0 + timedelta(minutes=30))

    async def first(call: Any) -> None:
        async for _ in call:
            break
        call.cancel()

    async def ingest(token: str) -> None:
        rows = [(ann.band_uid, QUEUE_READER_A, now_ms(), -50)]

        async def one() -> Any:
            yield pb.IngestPingsRequest(batch=make_batch(location.batch_id(), rows))

        await first(stub.IngestPings(one(), metadata=bearer(token)))

    calls: dict[str, Callable[[str], Awaitable[Any]]] = {
        "ListZones": lambda t: stub.ListZones(pb.ListZonesRequest(), metadata=bearer(t)),
        "GetZoneOccupancy": lambda t: stub.GetZoneOccupancy(
            pb.GetZoneOccupancyRequest(zone_id=QUEUE_ZONE), metadata=bearer(t)
        ),
        "ListZoneOccupancy": lambda t: stub.ListZoneOccupancy(
            pb.ListZoneOccupancyRequest(), metadata=bearer(t)
        ),
        "ListReaders": lambda t: stub.ListReaders(pb.ListReadersRequest(), metadata=bearer(t)),
        "IngestPings": ingest,
        "GetGuestLocation(own party)": lambda t: stub.GetGuestLocation(
            pb.GetGuestLocationRequest(guest_id=kid.guest_id), metadata=bearer(t)
        ),
        "GetGuestLocation(other party)": lambda t: stub.GetGuestLocation(
            pb.GetGuestLocationRequest(guest_id=stranger.guest_id), metadata=bearer(t)
        ),
        "GetPartyLocations(own party)": lambda t: stub.GetPartyLocations(
            pb.GetPartyLocationsRequest(party_id=ann.party_id), metadata=bearer(t)
        ),
        "GetPartyLocations(other party)": lambda t: stub.GetPartyLocations(
            pb.GetPartyLocationsRequest(party_id=stranger.party_id), metadata=bearer(t)
        ),
        "GetOccupancyHistory": lambda t: stub.GetOccupancyHistory(history, metadata=bearer(t)),
        "WatchLocationEvents": lambda t: first(
            stub.WatchLocationEvents(
                pb.WatchLocationEventsRequest(start=common_pb2.StreamCursor()),
                metadata=bearer(t),
            )
        ),
    }
    everyone = set(callers)
    personal = {"guest", "ops", "itinerary"}
    allowed = {
        "ListZones": everyone,
        "GetZoneOccupancy": everyone,
        "ListZoneOccupancy": everyone,
        "ListReaders": {"ops", "admin", "itinerary", "queue", "access"},
        "IngestPings": {"reader"},
        "GetGuestLocation(own party)": personal,
        "GetGuestLocation(other party)": personal - {"guest"},
        "GetPartyLocations(own party)": personal,
        "GetPartyLocations(other party)": personal - {"guest"},
        "GetOccupancyHistory": {"ops", "admin", "itinerary", "queue"},
        "WatchLocationEvents": {"ops", "itinerary", "queue"},
    }
    # Location learns the guests from identity's stream; wait for all three.
    await location.until(
        lambda: _known(location, (kid.guest_id, stranger.guest_id)), what="guests known"
    )
    wrong: list[str] = []
    for rpc, call in calls.items():
        for caller, token in callers.items():
            code = await _outcome(call(token))
            if (code not in DENIED) != (caller in allowed[rpc]):
                wrong.append(f"{rpc} by {caller}: {code.name}")
        if await _outcome(call("not-a-token")) != grpc.StatusCode.UNAUTHENTICATED:
            wrong.append(f"{rpc} with a forged token")
    assert wrong == []


async def _known(location: Location, guest_ids: tuple[str, ...]) -> bool:
    for guest_id in guest_ids:
        try:
            await location.where(guest_id, token=location.ops)
        except grpc.aio.AioRpcError:
            return False
    return True
