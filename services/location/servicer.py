"""The location gRPC servicer: parse, authorize, ask the domain, answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from opentelemetry import trace

from services.location import messages, telemetry
from services.location.directory import Directory, GuestRef
from services.location.ingest import Ingestor
from services.location.occupancy import Occupancy
from services.location.placement import Placement
from services.location.places import place_of
from services.location.publisher import Publisher
from services.location.store import GUEST_ZONE_CHANGED, OCCUPANCY_CHANGED, LocationStore
from services.location.topology import Topology, ZoneInfo
from services.platform import events, paging, semconv, validation
from services.platform.clock import VenueClock
from services.platform.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from services.platform.principal import caller
from services.platform.tokens import Revocations
from venue.common.v1 import common_pb2
from venue.location.v1 import location_pb2 as pb
from venue.location.v1 import location_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
T = TypeVar("T")

# Batches of one stream processed at once: the next batch is decoded while the
# previous one is being written.
STREAM_CONCURRENCY = 4
TRAIL_ROWS = 50
DEFAULT_BUCKET = timedelta(minutes=5)
MAX_HISTORY = timedelta(days=31)
KIND_NAMES = {
    pb.LOCATION_EVENT_KIND_OCCUPANCY_CHANGED: OCCUPANCY_CHANGED,
    pb.LOCATION_EVENT_KIND_GUEST_ZONE_CHANGED: GUEST_ZONE_CHANGED,
}


@dataclass
class Domain:
    """What the servicer answers from."""

    topology: Topology
    directory: Directory
    placement: Placement
    occupancy: Occupancy
    ingestor: Ingestor
    publisher: Publisher
    store: LocationStore
    hub: events.EventHub
    clock: VenueClock
    revocations: Revocations
    trail_retention: timedelta


def _page(
    items: Sequence[T], key: Callable[[T], int], page: common_pb2.PageRequest, name: str
) -> tuple[list[T], str]:
    """One page of an in-memory list ordered by `key`."""
    size = paging.page_size(page.page_size)
    after = paging.decode(name, page.page_token)
    if after is not None and (len(after) != 1 or not isinstance(after[0], int)):
        raise InvalidArgument("page.page_token", "not a token from this list")
    chosen = [item for item in items if after is None or key(item) > after[0]][: size + 1]
    return chosen[:size], paging.next_token(name, chosen, size, lambda item: [key(item)])


def _zone_kind(kind: int) -> int:
    if kind and kind not in pb.ZoneKind.values():
        raise InvalidArgument("kind", "not a zone kind")
    return kind


class LocationServicer(location_pb2_grpc.LocationServiceServicer):
    def __init__(self, domain: Domain) -> None:
        self._d = domain
        self._topology = domain.topology

    # --- helpers -------------------------------------------------------------------

    def _zone(self, zone_id: str, field: str = "zone_id") -> ZoneInfo:
        zone = self._topology.zone(validation.ref(zone_id, field))
        if zone is None:
            raise NotFound("zone", zone_id)
        return zone

    def _tag(self, key: str, value: str) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(key, value)

    def _now_ms(self) -> int:
        return int(self._d.clock.now().timestamp() * 1000)

    def _caller_party(self) -> str:
        who = caller()
        ref = self._d.directory.guest(who.subject)
        return ref.party_id if ref is not None else who.party_id

    def _check_party(self, party_id: str) -> None:
        if caller().is_guest and self._caller_party() != party_id:
            raise PermissionDenied("a guest sees only their own party")

    async def _location(self, ref: GuestRef, include_trail: bool) -> pb.GuestLocation:
        place = place_of(self._d.placement.guests, ref.slot, ref.consenting, self._now_ms())
        message = messages.location_pb(self._topology, ref.guest_id, ref.party_id, place)
        if include_trail and ref.consenting:
            unwritten = self._d.publisher.unwritten_visits(ref.guest_id)
            stored = await self._d.store.visits(ref.guest_id, TRAIL_ROWS)
            # Rows of the tick being written may already be stored: keep one of each.
            rows = [*unwritten, *(r for r in stored if r not in unwritten)]
            cutoff = self._d.clock.now() - self._d.trail_retention
            message.trail.extend(messages.trail_pb(rows, cutoff))
        return message

    # --- zones and readers -------------------------------------------------------------

    async def ListZones(
        self, request: pb.ListZonesRequest, context: Context
    ) -> pb.ListZonesResponse:
        kind = _zone_kind(request.kind)
        zones = [z for z in self._topology.zones if not kind or z.kind == kind]
        chosen, token = _page(zones, lambda z: z.index, request.page, "zones")
        return pb.ListZonesResponse(
            zones=[messages.zone_pb(z) for z in chosen], next_page_token=token
        )

    async def ListReaders(
        self, request: pb.ListReadersRequest, context: Context
    ) -> pb.ListReadersResponse:
        if request.zone_id:
            readers = self._topology.readers_in(self._zone(request.zone_id).index)
        else:
            readers = list(self._topology.readers)
        chosen, token = _page(readers, lambda r: r.index, request.page, "readers")
        last = self._d.ingestor.reader_last_ms
        return pb.ListReadersResponse(
            readers=[messages.reader_pb(self._topology, r, int(last[r.index])) for r in chosen],
            next_page_token=token,
        )

    # --- ingest ---------------------------------------------------------------------------

    async def IngestPings(
        self, request_iterator: AsyncIterator[pb.IngestPingsRequest], context: Context
    ) -> AsyncIterator[pb.IngestPingsResponse]:
        device = caller()
        allowed = self._topology.scope(device.venue_ref)
        if allowed is None:
            raise PermissionDenied("this device's credential names no reader of this venue")
        stream = trace.get_current_span().get_span_context()
        acks: asyncio.Queue[pb.IngestPingsResponse | Exception | None] = asyncio.Queue()
        free = asyncio.Semaphore(STREAM_CONCURRENCY)
        running: set[asyncio.Task[None]] = set()

        async def one(request: pb.IngestPingsRequest) -> None:
            try:
                with telemetry.batch_span(stream, device.subject) as span:
                    reply = await self._d.ingestor.ingest(device.subject, allowed, request.batch)
                    telemetry.describe_ack(span, reply)
                telemetry.count_pings(reply, len(request.batch.band_uids))
                acks.put_nowait(reply)
            except Exception as err:
                acks.put_nowait(err)
            finally:
                free.release()

        async def read() -> None:
            try:
                async for request in request_iterator:
                    if self._d.revocations.is_revoked(device):
                        raise Unauthenticated("device revoked")
                    await free.acquire()
                    task = asyncio.create_task(one(request))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if running:
                    await asyncio.wait(list(running))
                acks.put_nowait(None)
            except Exception as err:
                acks.put_nowait(err)

        reader = asyncio.create_task(read())
        try:
            while (item := await acks.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            reader.cancel()
            for task in list(running):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    # --- guests and parties ------------------------------------------------------------------

    async def GetGuestLocation(
        self, request: pb.GetGuestLocationRequest, context: Context
    ) -> pb.GetGuestLocationResponse:
        guest_id = validation.ident(request.guest_id, "guest_id")
        self._tag(semconv.GUEST, guest_id)
        ref = self._d.directory.guest(guest_id)
        if ref is None:
            raise NotFound("guest", guest_id)
        self._check_party(ref.party_id)
        location = await self._location(ref, request.include_trail)
        return pb.GetGuestLocationResponse(location=location)

    async def GetPartyLocations(
        self, request: pb.GetPartyLocationsRequest, context: Context
    ) -> pb.GetPartyLocationsResponse:
        party_id = validation.ident(request.party_id, "party_id")
        self._tag(semconv.PARTY, party_id)
        self._check_party(party_id)
        members = self._d.directory.party(party_id)
        if not members:
            raise NotFound("party", party_id)
        locations = [await self._location(ref, request.include_trail) for ref in members]
        return pb.GetPartyLocationsResponse(locations=locations)

    # --- occupancy ----------------------------------------------------------------------------

    async def GetZoneOccupancy(
        self, request: pb.GetZoneOccupancyRequest, context: Context
    ) -> pb.GetZoneOccupancyResponse:
        zone = self._zone(request.zone_id)
        self._tag(semconv.ZONE, zone.id)
        occupancy = self._d.occupancy
        return pb.GetZoneOccupancyResponse(
            occupancy=messages.occupancy_pb(
                zone, int(occupancy.counts[zone.index]), occupancy.as_of_ms
            )
        )

    async def ListZoneOccupancy(
        self, request: pb.ListZoneOccupancyRequest, context: Context
    ) -> pb.ListZoneOccupancyResponse:
        kind = _zone_kind(request.kind)
        zones = [z for z in self._topology.zones if not kind or z.kind == kind]
        chosen, token = _page(zones, lambda z: z.index, request.page, "zone-occupancy")
        occupancy = self._d.occupancy
        counts, as_of = occupancy.counts, occupancy.as_of_ms
        return pb.ListZoneOccupancyResponse(
            occupancies=[messages.occupancy_pb(z, int(counts[z.index]), as_of) for z in chosen],
            next_page_token=token,
        )

    async def GetOccupancyHistory(
        self, request: pb.GetOccupancyHistoryRequest, context: Context
    ) -> pb.GetOccupancyHistoryResponse:
        zone = self._zone(request.zone_id)
        self._tag(semconv.ZONE, zone.id)
        start = validation.required_timestamp(request.period.start, "period.start")
        end = validation.required_timestamp(request.period.end, "period.end")
        if end <= start:
            raise InvalidArgument("period.end", "must be after period.start")
        if end - start > MAX_HISTORY:
            raise InvalidArgument("period", "at most 31 days")
        bucket = DEFAULT_BUCKET
        if request.HasField("bucket"):
            seconds, nanos = request.bucket.seconds, request.bucket.nanos
            if nanos or seconds % 60 or not 60 <= seconds <= 86_400:
                raise InvalidArgument("bucket", "a whole number of minutes, 1 minute to 1 day")
            bucket = timedelta(seconds=seconds)
        size = paging.page_size(request.page.page_size, default=100, maximum=1000)
        after = paging.decode("occupancy-history", request.page.page_token)
        if after is not None:
            if len(after) != 1 or not isinstance(after[0], int):
                raise InvalidArgument("page.page_token", "not a token from this list")
            start = max(start, datetime.fromtimestamp(after[0] / 1000, UTC) + bucket)
        buckets = await self._d.store.occupancy_buckets(zone.id, start, end, bucket, size + 1)
        token = paging.next_token(
            "occupancy-history", buckets, size, lambda b: [int(b.start.timestamp() * 1000)]
        )
        return pb.GetOccupancyHistoryResponse(
            buckets=[
                pb.OccupancyBucket(
                    start=messages.ts(b.start),
                    mean_count=b.mean_count,
                    max_count=b.max_count,
                    capacity=b.capacity,
                )
                for b in buckets[:size]
            ],
            next_page_token=token,
        )

    # --- the stream ------------------------------------------------------------------------------

    async def WatchLocationEvents(
        self, request: pb.WatchLocationEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchLocationEventsResponse]:
        kinds: list[str] = []
        for i, kind in enumerate(request.kinds):
            if kind not in KIND_NAMES:
                raise InvalidArgument(f"kinds[{i}]", "not an event kind")
            kinds.append(KIND_NAMES[kind])
        zones = {self._zone(z, f"zone_ids[{i}]").id for i, z in enumerate(request.zone_ids)}
        async for event in events.serve_watch(
            self._d.hub, request.start, pb.WatchLocationEventsResponse.FromString, kinds=kinds
        ):
            if zones and not _touches(event, zones):
                continue
            yield event


def _touches(event: pb.WatchLocationEventsResponse, zones: set[str]) -> bool:
    if event.HasField("occupancy_changed"):
        return event.occupancy_changed.zone_id in zones
    move = event.guest_zone_changed
    return move.from_zone_id in zones or move.to_zone_id in zones
