"""What the itinerary follows, and what each event does.

- identity (memory cursor, replayed from the start): the directory of parties,
  adults and consent; consent off withdraws open nudges; erasure deletes.
- queue, live (memory, from now after a snapshot): waits, status, forecasts
  into the live venue; a ride down or a wait far from its forecast wakes the
  parties that still plan to visit it.
- queue, bookings (table cursor): the party's plan gets, moves or drops the
  booking; a called group gets "board now".
- location (memory, from now): where the party is (consenting guests only), and
  how crowded the walkways are.
- access (table cursor): progress from taps (lines joined, rides ridden, gates)
  and charges (meals eaten).

Every handler tolerates an event twice: tap ids are kept in the plan, bookings
carry the time of their newest event, nudges are unique per guest and key.
Positions, waits and occupancy are fleeting and kept in memory only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from services.itinerary import progress
from services.itinerary.directory import Directory
from services.itinerary.facts import VenueFacts
from services.itinerary.lanes import Lanes, WatermarkCursor
from services.itinerary.live import OPEN, LiveVenue, WaitDrop, WaitJump
from services.itinerary.model import RETURN_TIME, VIRTUAL_QUEUE, Place, Window
from services.itinerary.nudger import Nudger
from services.itinerary.plans import PlanBook
from services.itinerary.progress import Tap, TapKind
from services.itinerary.store import ItineraryStore, QueueBooking
from services.platform.clients import Clients
from services.platform.clock import VenueClock
from services.platform.events import MemoryCursor, StreamConsumer, TableCursor
from venue.access.v1 import access_pb2 as apb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.location.v1 import location_pb2 as lpb
from venue.location.v1 import location_pb2_grpc
from venue.queue.v1 import queue_pb2 as qpb
from venue.queue.v1 import queue_pb2_grpc

log = logging.getLogger("venue.itinerary.consumers")

TAP_KINDS = {
    apb.ACCESS_POINT_KIND_PARK_ENTRY: TapKind.ENTRY,
    apb.ACCESS_POINT_KIND_PARK_EXIT: TapKind.EXIT,
    apb.ACCESS_POINT_KIND_RIDE_STANDBY_ENTRANCE: TapKind.STANDBY,
    apb.ACCESS_POINT_KIND_RIDE_RETURN_MERGE: TapKind.MERGE,
    apb.ACCESS_POINT_KIND_RIDE_BOARDING: TapKind.BOARDING,
}
ACTIVE_BOOKINGS = frozenset(
    {qpb.BOOKING_STATUS_WAITING, qpb.BOOKING_STATUS_CALLED, qpb.BOOKING_STATUS_CONFIRMED}
)
SNAPSHOT_RETRY_S = 2.0


def _at(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _maybe(ts: Timestamp) -> datetime | None:
    return None if ts.seconds == 0 and ts.nanos == 0 else _at(ts)


def _seconds(d: Any) -> float:
    return float(d.ToNanoseconds()) / 1e9


def start_of(cursor: str) -> common_pb2.StreamCursor:
    """Resume from a cursor, or start from now when there is none yet: what
    happened before the itinerary first ran concerns no plan it holds."""
    if cursor:
        return common_pb2.StreamCursor(cursor=cursor)
    return common_pb2.StreamCursor(from_now=True)


class ThrottledCursor:
    """A table cursor written at most once a second: handlers are idempotent,
    so a crash replays at most a second of events instead of costing a write
    per event."""

    def __init__(self, table: TableCursor, interval: float = 1.0) -> None:
        self._table = table
        self._interval = interval
        self._pending = ""
        self._written = ""
        self._written_at = 0.0

    async def load(self) -> str:
        return self._pending or await self._table.load()

    async def save(self, cursor: str, conn: asyncpg.Connection | None = None) -> None:
        self._pending = cursor
        if time.monotonic() - self._written_at >= self._interval:
            await self.flush()

    async def flush(self) -> None:
        if self._pending and self._pending != self._written:
            await self._table.save(self._pending)
            self._written = self._pending
            self._written_at = time.monotonic()


class Consumers:
    def __init__(
        self,
        clients: Clients,
        pool: asyncpg.Pool,
        store: ItineraryStore,
        facts: VenueFacts,
        directory: Directory,
        live: LiveVenue,
        plans: PlanBook,
        nudger: Nudger,
        clock: VenueClock,
    ) -> None:
        self._clients = clients
        self._pool = pool
        self._store = store
        self._facts = facts
        self._directory = directory
        self._live = live
        self._plans = plans
        self._nudger = nudger
        self._clock = clock
        self.cursors: list[ThrottledCursor] = []
        self.watermarks: list[WatermarkCursor] = []
        # A boarding group is called for many parties at once: their bookings
        # are applied side by side, each party's in order.
        self.booking_lanes = Lanes("itinerary-queue-bookings")

    def all(self) -> list[StreamConsumer[Any]]:
        return [
            self.identity(),
            self.queue_live(),
            self.queue_bookings(),
            self.location(),
            self.access(),
        ]

    def _table(self, name: str) -> ThrottledCursor:
        cursor = ThrottledCursor(TableCursor(self._pool, name))
        self.cursors.append(cursor)
        return cursor

    async def flush(self) -> None:
        for cursor in self.cursors:
            await cursor.flush()

    async def keep_cursors(self, interval: float = 1.0) -> None:
        """Store what was applied even when a stream goes quiet: a throttled cursor
        otherwise keeps the last events of a burst pending (and the bookings'
        watermark moves on as lanes finish, after the last save), so a crash
        long after would replay them and the stored cursor lags the stream."""
        while True:
            await asyncio.sleep(interval)
            try:
                for watermark in self.watermarks:
                    await watermark.save("")
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("storing the stream cursors failed; retrying", exc_info=True)

    # --- identity -----------------------------------------------------------------

    def identity(self) -> StreamConsumer[ipb.WatchIdentityEventsResponse]:
        stub = identity_pb2_grpc.IdentityServiceStub(self._clients.channel("identity"))

        def open_stream(cursor: str) -> AsyncIterator[ipb.WatchIdentityEventsResponse]:
            request = ipb.WatchIdentityEventsRequest(start=common_pb2.StreamCursor(cursor=cursor))
            return stub.WatchIdentityEvents(request).__aiter__()

        async def handle(event: ipb.WatchIdentityEventsResponse, _: object) -> None:
            change = self._directory.apply(event)
            if change.erased:
                await self._store.erase_guest(change.guest_id)
                self._nudger.forget(change.guest_id)
            elif change.nudges_off:
                await self._nudger.consent_withdrawn(change.guest_id)
            if change.location_off and change.party_id:
                plan = self._plans.cached(change.party_id)
                if plan is not None and plan.place:
                    # Where the party was came perhaps from this guest's tracking.
                    self._plans.note_place(plan.plan_id, Place(), None)
            if change.party_id and change.guest_id:
                self._nudger.touch(change.party_id)

        return StreamConsumer(
            "itinerary-identity",
            open_stream,
            handle,
            lambda e: e.cursor,
            MemoryCursor(),
            clock=self._clock,
        )

    # --- queue ---------------------------------------------------------------------

    def queue_live(self) -> StreamConsumer[qpb.WatchQueueEventsResponse]:
        stub = queue_pb2_grpc.QueueServiceStub(self._clients.channel("queue"))
        kinds = [
            qpb.QUEUE_EVENT_KIND_WAIT_CHANGED,
            qpb.QUEUE_EVENT_KIND_STATUS_CHANGED,
            qpb.QUEUE_EVENT_KIND_FORECAST_CHANGED,
        ]

        def open_stream(cursor: str) -> AsyncIterator[qpb.WatchQueueEventsResponse]:
            request = qpb.WatchQueueEventsRequest(start=start_of(cursor), kinds=kinds)
            return stub.WatchQueueEvents(request).__aiter__()

        async def handle(event: qpb.WatchQueueEventsResponse, _: object) -> None:
            self.apply_queue_live(event)

        return StreamConsumer(
            "itinerary-queue-live",
            open_stream,
            handle,
            lambda e: e.cursor,
            MemoryCursor(),
            clock=self._clock,
        )

    def apply_queue_live(self, event: qpb.WatchQueueEventsResponse) -> None:
        at = _at(event.occurred_at)
        which = event.WhichOneof("event")
        if which == "wait_changed":
            w = event.wait_changed
            moved = self._live.apply_wait(w.attraction_id, _seconds(w.posted_wait), at)
            if isinstance(moved, WaitJump | WaitDrop):
                for party in self._plans.parties_visiting(w.attraction_id):
                    self._nudger.touch(party)
            for party in self._nudger.watching(w.attraction_id):
                self._nudger.touch(party)
        elif which == "status_changed":
            s = event.status_changed
            if self._live.apply_status(s.attraction_id, s.status, at, _maybe(s.expected_reopen_at)):
                for party in self._plans.parties_visiting(s.attraction_id):
                    self._nudger.touch(party)
        elif which == "forecast_changed":
            f = event.forecast_changed.forecast
            self._live.apply_forecast(
                f.attraction_id,
                [(_at(s.start), _seconds(s.wait), s.expected_status) for s in f.slots],
                _maybe(f.computed_at),
            )

    def queue_bookings(self) -> StreamConsumer[qpb.WatchQueueEventsResponse]:
        stub = queue_pb2_grpc.QueueServiceStub(self._clients.channel("queue"))
        kinds = [
            qpb.QUEUE_EVENT_KIND_BOOKING_CREATED,
            qpb.QUEUE_EVENT_KIND_BOOKING_CALLED,
            qpb.QUEUE_EVENT_KIND_BOOKING_CANCELLED,
        ]

        def open_stream(cursor: str) -> AsyncIterator[qpb.WatchQueueEventsResponse]:
            request = qpb.WatchQueueEventsRequest(start=start_of(cursor), kinds=kinds)
            return stub.WatchQueueEvents(request).__aiter__()

        lanes = self.booking_lanes

        async def handle(event: qpb.WatchQueueEventsResponse, _: object) -> None:
            which = event.WhichOneof("event")
            change = getattr(event, which) if which else None
            party = change.booking.party_id if change is not None else ""
            await lanes.submit(party, event.cursor, lambda: self.apply_booking(event))

        watermark = WatermarkCursor(lanes, self._table("itinerary-queue-bookings"))
        self.watermarks.append(watermark)
        return StreamConsumer(
            "itinerary-queue-bookings",
            open_stream,
            handle,
            lambda e: e.cursor,
            watermark,
            clock=self._clock,
        )

    async def apply_booking(self, event: qpb.WatchQueueEventsResponse) -> None:
        which = event.WhichOneof("event")
        if which not in ("booking_created", "booking_called", "booking_cancelled"):
            return
        b: qpb.Booking = getattr(event, which).booking
        window = None
        if b.HasField("window") and b.window.start.seconds:
            window = Window(_at(b.window.start), _at(b.window.end))
        booking = QueueBooking(
            booking_id=b.booking_id,
            party_id=b.party_id,
            attraction_id=b.attraction_id,
            kind=VIRTUAL_QUEUE if b.kind == qpb.BOOKING_KIND_VIRTUAL_QUEUE else RETURN_TIME,
            active=which != "booking_cancelled" and b.status in ACTIVE_BOOKINGS,
            window=window,
            guest_ids=tuple(b.guest_ids),
            called_at=_maybe(b.called_at)
            or (_at(event.occurred_at) if which == "booking_called" else None),
            updated_at=_at(event.occurred_at),
        )
        await self._store.upsert_queue_booking(booking)
        plan = await self._plans.sync_queue_booking(booking)
        if plan is None and which == "booking_called" and booking.active:
            await self._nudger.boarding_called(booking)

    # --- location ---------------------------------------------------------------------

    def location(self) -> StreamConsumer[lpb.WatchLocationEventsResponse]:
        stub = location_pb2_grpc.LocationServiceStub(self._clients.channel("location"))
        kinds = [
            lpb.LOCATION_EVENT_KIND_GUEST_ZONE_CHANGED,
            lpb.LOCATION_EVENT_KIND_OCCUPANCY_CHANGED,
        ]

        def open_stream(cursor: str) -> AsyncIterator[lpb.WatchLocationEventsResponse]:
            request = lpb.WatchLocationEventsRequest(start=start_of(cursor), kinds=kinds)
            return stub.WatchLocationEvents(request).__aiter__()

        async def handle(event: lpb.WatchLocationEventsResponse, _: object) -> None:
            await self.apply_location(event)

        return StreamConsumer(
            "itinerary-location",
            open_stream,
            handle,
            lambda e: e.cursor,
            MemoryCursor(),
            clock=self._clock,
        )

    async def apply_location(self, event: lpb.WatchLocationEventsResponse) -> None:
        at = _at(event.occurred_at)
        which = event.WhichOneof("event")
        if which == "occupancy_changed":
            o = event.occupancy_changed
            self._live.apply_occupancy(o.zone_id, o.count, o.capacity, o.density, at)
            return
        if which != "guest_zone_changed":
            return
        g = event.guest_zone_changed
        # Location publishes only consenting guests; check again all the same.
        if not g.to_zone_id or not self._directory.location_allowed(g.guest_id):
            return
        party = g.party_id or self._directory.party_of(g.guest_id)
        plan = self._plans.cached(party, self._facts.venue_date(at)) if party else None
        if plan is None:
            return
        place = Place(g.to_zone_id, g.to_node_id)
        updated = progress.apply_place(plan, place, at, self._facts)
        if updated is None:
            return
        if updated.stops != plan.stops or updated.entered_at != plan.entered_at:
            await self._plans.progress(
                plan.plan_id, lambda p: progress.apply_place(p, place, at, self._facts)
            )
        else:
            self._plans.note_place(plan.plan_id, place, at)
        self._nudger.touch(party)

    # --- access ---------------------------------------------------------------------

    def access(self) -> StreamConsumer[apb.WatchAccessEventsResponse]:
        stub = access_pb2_grpc.AccessServiceStub(self._clients.channel("access"))
        kinds = [apb.ACCESS_EVENT_KIND_TAP_RECORDED, apb.ACCESS_EVENT_KIND_CHARGE_RECORDED]

        def open_stream(cursor: str) -> AsyncIterator[apb.WatchAccessEventsResponse]:
            request = apb.WatchAccessEventsRequest(start=start_of(cursor), kinds=kinds)
            return stub.WatchAccessEvents(request).__aiter__()

        async def handle(event: apb.WatchAccessEventsResponse, _: object) -> None:
            await self.apply_access(event)

        return StreamConsumer(
            "itinerary-access",
            open_stream,
            handle,
            lambda e: e.cursor,
            self._table("itinerary-access"),
            clock=self._clock,
        )

    async def apply_access(self, event: apb.WatchAccessEventsResponse) -> None:
        which = event.WhichOneof("event")
        if which == "charge_recorded":
            c = event.charge_recorded
            at = _at(c.charged_at) if c.charged_at.seconds else _at(event.occurred_at)
            plan = self._plans.cached(c.party_id, self._facts.venue_date(at))
            if plan is not None and any(s.open and s.poi_id == c.merchant_id for s in plan.stops):
                await self._plans.progress(
                    plan.plan_id, lambda p: progress.apply_charge(p, c.merchant_id, at)
                )
                self._nudger.touch(c.party_id)
            return
        if which != "tap_recorded":
            return
        t = event.tap_recorded
        kind = TAP_KINDS.get(t.access_point_kind)
        if kind is None:
            return
        at = _at(t.tapped_at) if t.tapped_at.seconds else _at(event.occurred_at)
        party = t.party_id or self._directory.party_of(t.guest_id)
        plan = self._plans.cached(party, self._facts.venue_date(at)) if party else None
        if plan is None:
            return
        place = Place()
        poi = self._facts.poi(t.attraction_id) if t.attraction_id else None
        if poi is not None:
            place = poi.place
        else:
            ap = self._facts.access_points.get(t.access_point_id)
            if ap is not None:
                place = ap.place
        tap = Tap(t.tap_id, kind, t.guest_id, at, t.attraction_id, place)
        await self._plans.progress(plan.plan_id, lambda p: progress.apply_tap(p, tap, self._facts))
        self._nudger.touch(party)

    # --- snapshots at start ------------------------------------------------------------

    async def snapshot(self) -> None:
        """The tip board, forecasts and crowding as they are now, so the engine
        has them before the first event; retried until the services answer."""
        done = {"queue": False, "location": False}
        while not all(done.values()):
            if not done["queue"]:
                done["queue"] = await self._snapshot_queue()
            if not done["location"]:
                done["location"] = await self._snapshot_location()
            if not all(done.values()):
                await asyncio.sleep(SNAPSHOT_RETRY_S)

    async def _snapshot_queue(self) -> bool:
        stub = queue_pb2_grpc.QueueServiceStub(self._clients.channel("queue"))
        try:
            waits = await stub.GetWaitTimes(qpb.GetWaitTimesRequest(), timeout=5.0)
            forecasts = await stub.GetForecast(qpb.GetForecastRequest(), timeout=10.0)
        except Exception as err:  # any failure: try again later
            log.info("queue snapshot not available yet", extra={"error": type(err).__name__})
            return False
        for w in waits.waits:
            at = _maybe(w.updated_at) or _at(waits.as_of)
            self._live.apply_status(w.attraction_id, w.status, at)
            if w.status == OPEN:
                self._live.apply_wait(w.attraction_id, _seconds(w.posted_wait), at)
        for f in forecasts.forecasts:
            self._live.apply_forecast(
                f.attraction_id,
                [(_at(s.start), _seconds(s.wait), s.expected_status) for s in f.slots],
                _maybe(f.computed_at),
            )
        return True

    async def _snapshot_location(self) -> bool:
        stub = location_pb2_grpc.LocationServiceStub(self._clients.channel("location"))
        token = ""
        try:
            while True:
                reply = await stub.ListZoneOccupancy(
                    lpb.ListZoneOccupancyRequest(
                        page=common_pb2.PageRequest(page_size=500, page_token=token)
                    ),
                    timeout=5.0,
                )
                for o in reply.occupancies:
                    self._live.apply_occupancy(
                        o.zone_id, o.count, o.capacity, o.density, _at(o.as_of)
                    )
                token = reply.next_page_token
                if not token:
                    return True
        except Exception as err:  # any failure: try again later
            log.info("location snapshot not available yet", extra={"error": type(err).__name__})
            return False
