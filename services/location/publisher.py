"""The publishing tick: four times a second, placement's changes become events,
trail rows and occupancy minutes, written in one short transaction.

Counts of every zone are published coalesced (one event per changed zone per
tick, with its latest count), so a subscriber sees a change within a tick plus
a commit of the ping's arrival. A consenting guest's move becomes a
GuestZoneChanged event and a trail row; a guest without consent never
appears in either.

If the database is unreachable, what a tick produced is kept and written with
the next tick that succeeds: no change is lost, and events stay in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from services.location import telemetry
from services.location.directory import Directory
from services.location.gate import WriteGate
from services.location.occupancy import Occupancy, ZoneCount
from services.location.placement import NOWHERE, Move, Placement
from services.location.store import (
    GUEST_ZONE_CHANGED,
    OCCUPANCY_CHANGED,
    EventRow,
    LocationStore,
    MinuteInsert,
    VisitInsert,
    VisitRow,
)
from services.location.topology import Topology
from services.platform.clock import VenueClock
from services.platform.events import EventHub
from venue.location.v1 import location_pb2 as pb

log = logging.getLogger("venue.location.publisher")

TICK_SECONDS = 0.25
# Rows kept for a failing database before the oldest are given up.
MAX_PENDING = 500_000


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class Publisher:
    def __init__(
        self,
        topology: Topology,
        placement: Placement,
        directory: Directory,
        occupancy: Occupancy,
        store: LocationStore,
        gate: WriteGate,
        hub: EventHub,
        clock: VenueClock,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        self._topology = topology
        self._placement = placement
        self._directory = directory
        self._occupancy = occupancy
        self._store = store
        self._gate = gate
        self._hub = hub
        self._clock = clock
        self.tick_seconds = tick_seconds
        self._events: list[EventRow] = []
        self._visits: list[VisitInsert] = []
        self._minutes: list[MinuteInsert] = []
        self.ticks = 0
        self.placed = 0

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("publishing tick failed; keeping its changes", exc_info=True)
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self.tick_seconds - elapsed))

    async def tick(self) -> None:
        async with self._gate.writer():
            now_ms = int(self._clock.now().timestamp() * 1000)
            result = self._placement.tick(now_ms)
            self.placed = result.placed
            changes, minutes = self._occupancy.update(result.counts, now_ms)
            self._add_counts(changes, now_ms)
            self._add_moves(result.moves)
            zone_ids = [z.id for z in self._topology.zones]
            self._minutes.extend(
                (zone_ids[m.zone], _at(m.minute_ms), m.mean_count, m.max_count, m.capacity)
                for m in minutes
            )
            self._trim()
            events, visits, rows = self._events, self._visits, self._minutes
            if events or visits or rows:
                with telemetry.tick_span() as span:
                    if span.is_recording():
                        span.set_attribute("venue.location.events", len(events))
                        span.set_attribute("venue.location.visits", len(visits))
                    await self._store.flush(events, visits, rows)
            self._events, self._visits, self._minutes = [], [], []
        self.ticks += 1
        if events:
            self._hub.poke()

    def unwritten_visits(self, guest_id: str) -> list[VisitRow]:
        """A guest's trail rows not yet committed (or being committed), newest first."""
        return [
            VisitRow(zone, node, at)
            for g, at, zone, node in reversed(self._visits)
            if g == guest_id
        ]

    def forget(self, guest_id: str) -> None:
        """Drop what is waiting to be written about a guest (consent withdrawn, erased)."""
        self._visits = [v for v in self._visits if v[0] != guest_id]
        self._events = [e for e in self._events if e[0] != GUEST_ZONE_CHANGED or e[1] != guest_id]

    def _add_counts(self, changes: list[ZoneCount], now_ms: int) -> None:
        at = _at(now_ms)
        zones = self._topology.zones
        for change in changes:
            zone_id = zones[change.zone].id
            payload = pb.WatchLocationEventsResponse(
                occupancy_changed=pb.OccupancyChanged(
                    zone_id=zone_id,
                    count=change.count,
                    capacity=change.capacity,
                    density=change.density,
                )
            ).SerializeToString()
            self._events.append((OCCUPANCY_CHANGED, zone_id, payload, at))

    def _add_moves(self, moves: list[Move]) -> None:
        zones = self._topology.zones
        readers = self._topology.readers
        for move in moves:
            guest = self._directory.guest_at(move.slot)
            if not guest.guest_id:
                continue
            to_zone = zones[move.to_zone].id if move.to_zone != NOWHERE else ""
            to_node = readers[move.reader].node_id if move.reader >= 0 else ""
            from_zone = zones[move.from_zone].id if move.from_zone != NOWHERE else ""
            at = _at(move.at_ms)
            payload = pb.WatchLocationEventsResponse(
                guest_zone_changed=pb.GuestZoneChanged(
                    guest_id=guest.guest_id,
                    party_id=guest.party_id,
                    from_zone_id=from_zone,
                    to_zone_id=to_zone,
                    to_node_id=to_node,
                )
            ).SerializeToString()
            self._events.append((GUEST_ZONE_CHANGED, guest.guest_id, payload, at))
            self._visits.append((guest.guest_id, at, to_zone or None, to_node or None))

    def _trim(self) -> None:
        excess = len(self._events) + len(self._visits) + len(self._minutes) - MAX_PENDING
        if excess > 0:
            log.error("database unreachable for long; dropping the oldest changes")
            self._events = self._events[excess:]
