"""The twin at work: fed by access's taps and location's queue-zone counts,
told of ops decisions, publishing what changed, and answering the reads.

State lives in memory (the pure `Twin`) and is rebuilt at start-up from the
day's stored facts in the order they were first handled, so a restart comes
back to the same lines. Every fact is stored keyed by its own id in the same
transaction as the consumer's cursor; a fact handled twice is stored once and
applied once.

What it publishes on queue's stream (key: the attraction id):
- wait_changed: the posted wait moved to another whole minute, the line moved
  by a tenth (three guests at least), or the status changed;
- status_changed: ops decisions and scheduled opening and closing;
- forecast_changed: some slot moved by a minute or more, at most once per
  venue minute per attraction.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.platform.clock import VenueClock
from services.platform.events import EventHub
from services.queue.forecast import SLOT, SlotForecast, slot_start
from services.queue.messages import dur, forecast_message, instant, seconds, ts
from services.queue.schedule import CLOSED, SCHEDULED, OpsStatus, Status
from services.queue.store import QueueStore, SampleRow, StatusRow, TapRow
from services.queue.telemetry import forecast_horizons
from services.queue.twin import Estimate, TapFact, TapKind, Twin
from services.queue.venue_lines import VenueLines
from services.venue_model import AccessPointKind
from venue.access.v1 import access_pb2 as apb
from venue.location.v1 import location_pb2 as lpb
from venue.queue.v1 import queue_pb2 as pb

log = logging.getLogger("venue.queue.live")

WAIT_CHANGED = "wait_changed"
STATUS_CHANGED = "status_changed"
FORECAST_CHANGED = "forecast_changed"

TAP_KINDS = {
    apb.ACCESS_POINT_KIND_PARK_ENTRY: TapKind.ENTRY,
    apb.ACCESS_POINT_KIND_PARK_EXIT: TapKind.EXIT,
    apb.ACCESS_POINT_KIND_RIDE_STANDBY_ENTRANCE: TapKind.STANDBY,
    apb.ACCESS_POINT_KIND_RIDE_RETURN_MERGE: TapKind.MERGE,
    apb.ACCESS_POINT_KIND_RIDE_BOARDING: TapKind.BOARDING,
}
VENUE_KINDS = {
    AccessPointKind.RIDE_STANDBY: TapKind.STANDBY,
    AccessPointKind.RIDE_RETURN_MERGE: TapKind.MERGE,
    AccessPointKind.RIDE_BOARDING: TapKind.BOARDING,
}
FORECAST_EVERY = 60.0
# A forecast of 15-minute slots is published again (on the stream, for routing's
# optimizer and the itinerary) at most this often, in venue seconds, unless the
# line's status changed meanwhile: projecting every line to closing once a venue
# minute was most of the service's CPU at a fast venue clock, for slots that
# hardly move in a minute.
FORECAST_PUBLISH_EVERY = 300.0
# Forecasts recomputed per tick at most (spreads the work over ticks).
FORECASTS_PER_TICK = 6

EventRow = tuple[str, str, bytes, datetime]
Availability = tuple[pb.ReturnTimeAvailability, pb.VirtualQueueAvailability]


@dataclass(frozen=True, slots=True)
class Published:
    minutes: int | None
    line: int
    status: int
    posted: float | None


def should_publish(prev: Published | None, now: Published) -> bool:
    if prev is None:
        return True
    if prev.status != now.status or prev.minutes != now.minutes:
        return True
    return abs(now.line - prev.line) >= max(3, round(0.1 * prev.line))


def _minutes(posted: float | None) -> int | None:
    return round(posted / 60.0) if posted is not None and math.isfinite(posted) else None


class LiveTwin:
    def __init__(
        self,
        twin: Twin,
        lines: VenueLines,
        store: QueueStore,
        hub: EventHub,
        clock: VenueClock,
    ) -> None:
        self.twin = twin
        self.lines = lines
        self.store = store
        self.hub = hub
        self.clock = clock
        self.attractions = list(lines.specs)
        self._published: dict[str, Published] = {}
        self._updated: dict[str, float] = {}
        self._tip: dict[str, pb.AttractionWait] = {}
        self._forecasts: dict[str, tuple[float, int, int, list[SlotForecast]]] = {}
        # attraction -> (when, status version, slot start -> wait) last published.
        self._published_forecasts: dict[str, tuple[float, int, dict[float, float]]] = {}
        # What the metrics report (read from the exporter's thread: plain
        # values, replaced whole): posted seconds, forecast minutes by horizon.
        self.posted_gauge: dict[str, float | None] = {}
        self.forecast_gauge: dict[str, dict[str, float]] = {}
        self._last_sample_minute: int | None = None
        self._forecast_cursor = 0
        self.availability: Callable[[str], Availability] = lambda _: (
            pb.ReturnTimeAvailability(),
            pb.VirtualQueueAvailability(),
        )
        # Told of ops closing an attraction for the day (bookings are cancelled).
        self.on_closed_for_day: (
            Callable[[asyncpg.Connection, str, float], Awaitable[list[EventRow]]] | None
        ) = None

    def now(self) -> float:
        return self.clock.now().timestamp()

    # --- start-up ---------------------------------------------------------------

    async def restore(self) -> int:
        """Replay today's stored facts; returns how many."""
        t = self.now()
        day_start = self.twin.calendar.day_start(t)
        self.twin.roll_day(t)
        # Facts stamped in the future are from another run of the clock (a
        # simulation replayed on the same database): not today's.
        facts = await self.store.day_facts(instant(day_start), instant(t + 300.0))
        for _, fact in facts:
            if isinstance(fact, TapRow):
                self.twin.apply(
                    TapFact(
                        fact.tap_id,
                        TapKind(fact.kind),
                        fact.attraction_id,
                        fact.guest_id,
                        seconds(fact.tapped_at),
                        fact.entitlement_id,
                    ),
                    recorded=(fact.raw_wait_s, fact.posted_wait_s),
                )
            elif fact.attraction_id in self.twin.specs:
                since = seconds(fact.since)
                self.twin.set_ops(fact.attraction_id, _ops(fact))
                self.twin.refresh_status(fact.attraction_id, since)
        for zone_id, count, at in await self.store.occupancies(instant(day_start)):
            attraction = self.lines.zones.get(zone_id)
            if attraction is not None:
                self.twin.observe_occupancy(attraction, count, seconds(at))
        for attraction in self.attractions:
            self.twin.refresh_status(attraction, t)
            estimate = self.twin.estimate(attraction, t)
            # Nothing counts as published yet: what followers last saw is the wait
            # before the restart, and the one rebuilt now may differ (time went on,
            # facts came in while down). The first tick publishes every wait again.
            self._published.pop(attraction, None)
            self.posted_gauge[attraction] = self._figures(attraction, estimate).posted
            self._refresh_tip(attraction, estimate)
        return len(facts)

    # --- facts from access ----------------------------------------------------

    def fact_of(self, tap: apb.TapRecorded) -> TapFact | None:
        kind = TAP_KINDS.get(tap.access_point_kind)
        attraction = tap.attraction_id
        point = self.lines.points.get(tap.access_point_id)
        if point is not None:
            # The venue file is the authority on which line a scanner serves.
            attraction, venue_kind = point
            kind = VENUE_KINDS.get(venue_kind, kind)
        if kind is None or not tap.guest_id or not tap.tap_id:
            return None
        if kind in (TapKind.STANDBY, TapKind.MERGE, TapKind.BOARDING):
            if attraction not in self.twin.specs:
                return None
        else:
            attraction = ""
        return TapFact(
            tap.tap_id,
            kind,
            attraction,
            tap.guest_id,
            tap.tapped_at.ToNanoseconds() / 1e9,
            tap.entitlement_id,
        )

    async def apply_taps(
        self, conn: asyncpg.Connection, taps: Sequence[apb.TapRecorded]
    ) -> tuple[list[EventRow], list[tuple[str, float]]]:
        """Apply and store taps; returns the wait events and the passes used at
        a merge (entitlement id, time) for the booking side."""
        rows: list[TapRow] = []
        changed: set[str] = set()
        used: list[tuple[str, float]] = []
        now = self.now()
        for tap in taps:
            fact = self.fact_of(tap)
            if fact is None:
                continue
            if fact.at > now:
                # A device whose clock runs ahead: the tap has happened by the
                # time it reaches us. Taken as it stands, one tap dated next
                # year would roll the twin's day over and hide every real one.
                fact = dataclasses.replace(fact, at=now)
            applied = self.twin.apply(fact)
            changed.update(applied.attractions)
            rows.append(
                TapRow(
                    fact.tap_id,
                    int(fact.kind),
                    fact.attraction_id,
                    fact.guest_id,
                    instant(fact.at),
                    fact.entitlement_id,
                    applied.raw if applied.raw is not None and math.isfinite(applied.raw) else None,
                    applied.posted
                    if applied.posted is not None and math.isfinite(applied.posted)
                    else None,
                )
            )
            if fact.kind is TapKind.MERGE and fact.entitlement_id:
                used.append((fact.entitlement_id, fact.at))
        await self.store.insert_taps(conn, rows)
        return self.wait_events(changed, self.now()), used

    # --- counts from location ---------------------------------------------------

    async def apply_occupancy(
        self, conn: asyncpg.Connection, changes: Sequence[tuple[lpb.OccupancyChanged, float]]
    ) -> list[EventRow]:
        latest: dict[str, tuple[int, float]] = {}
        now = self.now()
        for change, when in changes:
            at = min(when, now)  # as for taps: a count is not from the future
            if change.zone_id in self.lines.zones:
                prior = latest.get(change.zone_id)
                if prior is None or at >= prior[1]:
                    latest[change.zone_id] = (change.count, at)
        changed: set[str] = set()
        for zone_id, (count, at) in latest.items():
            attraction = self.lines.zones[zone_id]
            if self.twin.observe_occupancy(attraction, count, at):
                changed.add(attraction)
        await self.store.upsert_occupancy(
            conn, [(zone, count, instant(at)) for zone, (count, at) in latest.items()]
        )
        return self.wait_events(changed, self.now())

    # --- ops ------------------------------------------------------------------

    async def set_status(
        self, attraction: str, decision: OpsStatus, set_by: str
    ) -> tuple[Status, bool]:
        """Record an ops decision; returns the status and whether it changed."""
        t = decision.since
        before = self.twin.status(attraction, t)
        row = StatusRow(
            attraction,
            decision.status,
            decision.reason,
            decision.note,
            instant(t),
            instant(decision.expected_reopen) if decision.expected_reopen else None,
        )
        async with self.store.pool.acquire() as conn, conn.transaction():
            await self.store.log_status(conn, row, set_by)
            self.twin.set_ops(attraction, decision)
            events = self._status_events(attraction, t)
            events += self.wait_events([attraction], t)
            after = self.twin.status(attraction, t)
            closed_for_day = after.status == CLOSED and after.reason != SCHEDULED
            if closed_for_day and self.on_closed_for_day is not None:
                events += await self.on_closed_for_day(conn, attraction, t)
            await self.store.append_events(conn, events)
        self.hub.poke()
        return after, not after.same_as(before)

    # --- the clock --------------------------------------------------------------

    async def tick(self) -> None:
        """Scheduled status changes, waits that moved with time, the minute's
        history samples and the forecasts that changed."""
        t = self.now()
        if self.twin.roll_day(t):
            self._published.clear()
            self._forecasts.clear()
            self._published_forecasts.clear()
        events: list[EventRow] = []
        samples: list[SampleRow] = []
        # What counts as published only once its events are committed: a write
        # that fails (the database restarting) must leave them to the next tick.
        published = dict(self._published)
        forecasts = dict(self._published_forecasts)
        for attraction in self.attractions:
            status_events = self._status_events(attraction, t)
            if status_events:
                events += status_events
                samples.append(self.sample(attraction, t))
        events += self.wait_events(self.attractions, t)
        events += self._forecast_events(t)
        minute = int(t // 60)
        if minute != self._last_sample_minute:
            self._last_sample_minute = minute
            samples += [self.sample(a, minute * 60.0) for a in self.attractions]
        if events:
            try:
                async with self.store.pool.acquire() as conn, conn.transaction():
                    await self.store.append_events(conn, events)
            except BaseException:
                self._published, self._published_forecasts = published, forecasts
                raise
            self.hub.poke()
        if samples:
            await self.store.insert_samples(samples)

    # --- what changed -------------------------------------------------------------

    def _figures(self, attraction: str, estimate: Estimate) -> Published:
        posted = estimate.posted if estimate.posted is not None else None
        if posted is not None and not math.isfinite(posted):
            posted = None
        return Published(
            _minutes(posted),
            self.twin.lines[attraction].line_length(),
            estimate.status.status,
            posted,
        )

    def wait_events(self, attractions: Sequence[str] | set[str], t: float) -> list[EventRow]:
        events: list[EventRow] = []
        for attraction in attractions:
            estimate = self.twin.estimate(attraction, t)
            figures = self._figures(attraction, estimate)
            prev = self._published.get(attraction)
            if not should_publish(prev, figures):
                continue
            self._published[attraction] = figures
            self.posted_gauge[attraction] = figures.posted
            self._updated[attraction] = t
            self._refresh_tip(attraction, estimate)
            line = self.twin.lines[attraction]
            message = pb.WaitChanged(
                attraction_id=attraction,
                standby_line_length=figures.line,
                throughput_per_hour=line.service_rate * 3600.0,
            )
            if figures.posted is not None:
                message.posted_wait.CopyFrom(dur(figures.posted))
            if prev is not None and prev.posted is not None:
                message.previous_posted_wait.CopyFrom(dur(prev.posted))
            payload = pb.WatchQueueEventsResponse(wait_changed=message).SerializeToString()
            events.append((WAIT_CHANGED, attraction, payload, instant(t)))
        return events

    def _status_events(self, attraction: str, t: float) -> list[EventRow]:
        change = self.twin.refresh_status(attraction, t)
        if change is None:
            return []
        previous, current = change
        self._updated[attraction] = t
        message = pb.StatusChanged(
            attraction_id=attraction,
            status=current.status,  # type: ignore[arg-type]
            previous_status=previous.status if previous else 0,  # type: ignore[arg-type]
            reason=current.reason,  # type: ignore[arg-type]
            note=current.note,
        )
        if current.expected_reopen is not None:
            message.expected_reopen_at.CopyFrom(ts(current.expected_reopen))
        payload = pb.WatchQueueEventsResponse(status_changed=message).SerializeToString()
        return [(STATUS_CHANGED, attraction, payload, instant(max(current.since, t)))]

    def sample(self, attraction: str, at: float) -> SampleRow:
        estimate = self.twin.estimate(attraction, max(at, self.now()))
        posted = estimate.posted
        line = self.twin.lines[attraction]
        return SampleRow(
            attraction,
            instant(at),
            estimate.status.status,
            posted if posted is not None and math.isfinite(posted) else None,
            line.line_length(),
            line.service_rate * 3600.0,
        )

    def _forecast_events(self, t: float) -> list[EventRow]:
        events: list[EventRow] = []
        count = len(self.attractions)
        for _ in range(min(FORECASTS_PER_TICK, count)):
            attraction = self.attractions[self._forecast_cursor % count]
            self._forecast_cursor += 1
            published = self._published_forecasts.get(attraction)
            status_version = self.twin.status_version(attraction)
            if (
                published is not None
                and t - published[0] < FORECAST_PUBLISH_EVERY
                and published[1] == status_version
            ):
                continue
            slots = self.forecast(attraction, t)
            self.forecast_gauge[attraction] = forecast_horizons(slots, t)
            waits = {s.start: s.wait for s in slots}
            if published is not None and not _moved(published[2], waits):
                # Checked: look again in a while, against what subscribers hold.
                self._published_forecasts[attraction] = (t, status_version, published[2])
                continue
            self._published_forecasts[attraction] = (t, status_version, waits)
            message = pb.ForecastChanged(forecast=forecast_message(attraction, slots, t))
            payload = pb.WatchQueueEventsResponse(forecast_changed=message).SerializeToString()
            events.append((FORECAST_CHANGED, attraction, payload, instant(t)))
        return events

    # --- reads --------------------------------------------------------------------

    def slots_until_close(self, attraction: str, t: float) -> int:
        _, closes_at = self.twin.hours_of(attraction, t)
        end = max(closes_at, t + 1.0)
        return max(1, math.ceil((end - slot_start(t)) / SLOT))

    def forecast(self, attraction: str, t: float, slots: int | None = None) -> list[SlotForecast]:
        """Slots from the current one to closing (or `slots` of them), cached a minute."""
        wanted = slots or self.slots_until_close(attraction, t)
        version = self.twin.version(attraction)
        status_version = self.twin.status_version(attraction)
        cached = self._forecasts.get(attraction)
        if cached is not None:
            made, made_version, made_status, result = cached
            # A minute old at most; taps may move the line for a few seconds
            # before it is worth projecting again, a status change may not.
            fresh = (
                0 <= t - made < FORECAST_EVERY
                and made_status == status_version
                and (made_version == version or t - made < 15.0)
            )
            if fresh and slot_start(made) == slot_start(t) and len(result) >= wanted:
                return result[:wanted]
        result = self.twin.forecast(
            attraction, t, max(wanted, self.slots_until_close(attraction, t))
        )
        self._forecasts[attraction] = (t, version, status_version, result)
        return result[:wanted]

    def _refresh_tip(self, attraction: str, estimate: Estimate) -> None:
        status = estimate.status
        return_time, virtual_queue = self.availability(attraction)
        message = pb.AttractionWait(
            attraction_id=attraction,
            status=status.status,  # type: ignore[arg-type]
            status_reason=status.reason,  # type: ignore[arg-type]
            return_time=return_time,
            virtual_queue=virtual_queue,
            updated_at=ts(self._updated.get(attraction, estimate.computed_at)),
        )
        if estimate.posted is not None and math.isfinite(estimate.posted):
            message.posted_wait.CopyFrom(dur(estimate.posted))
        self._tip[attraction] = message

    def availability_changed(self, attraction: str) -> None:
        self._refresh_tip(attraction, self.twin.estimate(attraction, self.now()))

    def tip_board(self, attractions: Sequence[str]) -> list[pb.AttractionWait]:
        t = self.now()
        board: list[pb.AttractionWait] = []
        for attraction in attractions or self.attractions:
            message = self._tip.get(attraction)
            estimate = self.twin.estimate(attraction, t)
            if message is None or estimate.computed_at == t:
                # Recomputed just now (it had gone stale): refresh the board's copy.
                self._refresh_tip(attraction, estimate)
                message = self._tip[attraction]
            board.append(message)
        return board

    def state(self, attraction: str) -> pb.AttractionState:
        t = self.now()
        estimate = self.twin.estimate(attraction, t)
        status = estimate.status
        line = self.twin.lines[attraction]
        spec = line.spec
        return_time, virtual_queue = self.availability(attraction)
        state = pb.AttractionState(
            attraction_id=attraction,
            status=status.status,  # type: ignore[arg-type]
            status_reason=status.reason,  # type: ignore[arg-type]
            status_note=status.note,
            status_since=ts(status.since),
            standby_line_length=line.line_length(),
            return_line_length=len(line.returning),
            throughput_per_hour=line.service_rate * 3600.0,
            nameplate_capacity_per_hour=round(spec.nameplate_per_hour),
            return_time_share=line.return_riders.value if line.return_riders.count else 0.0,
            return_time=return_time,
            virtual_queue=virtual_queue,
            updated_at=ts(self._updated.get(attraction, t)),
            dispatch_interval=dur(line.dispatch_interval),
            walk_to_load=dur(line.walk.value),
            untapped_in_line=round(line.untapped_in_line()),
            left_line_today=line.left_seen + line.left_unseen,
            boarded_standby_today=line.boarded_standby,
            boarded_return_today=line.boarded_return,
            boarded_untapped_today=line.boarded_untapped,
        )
        if status.expected_reopen is not None:
            state.expected_reopen_at.CopyFrom(ts(status.expected_reopen))
        if estimate.posted is not None and math.isfinite(estimate.posted):
            state.posted_wait.CopyFrom(dur(estimate.posted))
        measured = line.measured_wait()
        if measured is not None:
            state.measured_wait.CopyFrom(dur(measured))
        if line.last_boarding_at is not None:
            state.last_boarding_at.CopyFrom(ts(line.last_boarding_at))
        resume_at = self.twin.resume_at(attraction, status, t) if status.status != CLOSED else None
        if resume_at is not None:
            state.expected_resume_at.CopyFrom(ts(resume_at))
        return state

    def throughput_per_hour(self, attraction: str) -> float:
        return self.twin.lines[attraction].service_rate * 3600.0


def _moved(before: dict[float, float], after: dict[float, float]) -> bool:
    for start, wait in after.items():
        old = before.get(start)
        if old is None or abs(old - wait) >= 60.0:
            return True
    return False


def _ops(row: StatusRow) -> OpsStatus:
    return OpsStatus(
        row.status,
        row.reason,
        row.note,
        seconds(row.since),
        seconds(row.expected_reopen_at) if row.expected_reopen_at is not None else None,
    )
