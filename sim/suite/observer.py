"""What the twin says, collected for the report card.

The observer asks the suite only what its users may ask: the ops team's views
(occupancy, forecasts, nudge and photo figures, each party's linked photos) and a
guest's "where is my family" in the app. It writes nothing and tells the suite
nothing; the comparison with the truth happens in sim.report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.clock import VenueTime
from sim.frame import DayFrame
from sim.population import Party
from sim.suite.calls import Caller
from sim.suite.channels import Stubs
from venue.common.v1 import common_pb2
from venue.itinerary.v1 import itinerary_pb2 as ipb
from venue.location.v1 import location_pb2 as lpb
from venue.photo.v1 import photo_pb2 as ppb
from venue.queue.v1 import queue_pb2 as qpb

FORECAST_PERIOD_S = 900.0
LOCATE_PERIOD_S = 60.0


# Wall seconds the end of the day waits for photo to decide its last ride photos
# (a capture of a camera not yet calibrated may wait an hour of venue time: 36 s
# at 100x).
PHOTO_DECIDED_WAIT_S = 60.0
# Wall seconds between two looks at photo's pending count.
PHOTO_POLL_S = 1.0


@dataclass
class Observations:
    # (venue time, zone -> count) from ListZoneOccupancy.
    occupancy: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    # (asked at, slot start, attraction, forecast wait s).
    forecasts: list[tuple[float, float, str, float]] = field(default_factory=list)
    # (venue time, guest index, twin zone or "" when not placed, true zone, party
    # index, venue time of the read that placed the guest or None).
    locations: list[tuple[float, int, str, str, int, float | None]] = field(default_factory=list)
    # photo id -> (capture id, guest indices linked by the twin).
    photos: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    photo_stats: ppb.PhotoStats | None = None
    nudge_stats: ipb.GetNudgeStatsResponse | None = None
    wait_history: dict[str, list[qpb.WaitSample]] = field(default_factory=dict)


class Observer:
    def __init__(
        self,
        stubs: Stubs,
        call: Caller,
        frame: DayFrame,
        venue_time: VenueTime,
        ops_token: str,
        services: set[str],
        occupancy_period_s: float,
        seed: int,
    ) -> None:
        self.stubs = stubs
        self.call = call
        self.frame = frame
        self.time = venue_time
        self.ops = ops_token
        self.services = services
        self.period = occupancy_period_s
        self.rng = np.random.default_rng(seed)
        self.seen = Observations()

    async def run(
        self,
        until: Callable[[], bool],
        present: Callable[[], list[Party]],
        truth_zone: Callable[[Party, float], str],
        guest_index: dict[str, int],
    ) -> None:
        loops = []
        if "location" in self.services:
            loops.append(self._every(self.period, until, self._occupancy))
            loops.append(
                self._every(
                    LOCATE_PERIOD_S,
                    until,
                    lambda: self._locate(present(), truth_zone, guest_index),
                )
            )
        if "queue" in self.services:
            loops.append(self._every(FORECAST_PERIOD_S, until, self._forecast))
        await asyncio.gather(*loops)

    async def _every(
        self, period: float, until: Callable[[], bool], job: Callable[[], Any]
    ) -> None:
        while not until():
            t = self.time.now()
            await job()
            await self.time.sleep_until(t + period)

    async def _occupancy(self) -> None:
        counts: dict[str, int] = {}
        token = ""
        t = self.time.now()
        while True:
            reply = await self.call(
                "location.ListZoneOccupancy",
                self.stubs.location.ListZoneOccupancy,
                lpb.ListZoneOccupancyRequest(
                    page=common_pb2.PageRequest(page_size=500, page_token=token)
                ),
                self.ops,
            )
            if reply is None:
                return
            counts.update({o.zone_id: o.count for o in reply.occupancies})
            token = reply.next_page_token
            if not token:
                break
        self.seen.occupancy.append((t, counts))

    async def _locate(
        self,
        present: list[Party],
        truth_zone: Callable[[Party, float], str],
        guest_index: dict[str, int],
    ) -> None:
        """A guest opens "where is my family" in the app."""
        candidates = [p for p in present if p.app_token and p.payer.consent.location]
        if not candidates:
            return
        party = candidates[int(self.rng.integers(len(candidates)))]
        t = self.time.now()
        reply = await self.call(
            "location.GetPartyLocations",
            self.stubs.location.GetPartyLocations,
            lpb.GetPartyLocationsRequest(party_id=party.party_id),
            party.app_token,
        )
        if reply is None:
            return
        true_zone = truth_zone(party, t)
        for loc in reply.locations:
            index = guest_index.get(loc.guest_id)
            if index is None or loc.status == lpb.LOCATION_STATUS_TRACKING_OFF:
                continue
            known = loc.status == lpb.LOCATION_STATUS_KNOWN
            twin = loc.place.zone_id if known else ""
            read_s = (
                loc.observed_at.ToNanoseconds() / 1e9 - self.frame.midnight
                if known and loc.HasField("observed_at")
                else None
            )
            self.seen.locations.append((t, index, twin, true_zone, party.index, read_s))

    async def _forecast(self) -> None:
        t = self.time.now()
        reply = await self.call(
            "queue.GetForecast", self.stubs.queue.GetForecast, qpb.GetForecastRequest(), self.ops
        )
        if reply is None:
            return
        for forecast in reply.forecasts:
            for slot in forecast.slots:
                start = slot.start.ToNanoseconds() / 1e9 - self.frame.midnight
                if 3300 <= start - t <= 4500:
                    self.seen.forecasts.append(
                        (t, start, forecast.attraction_id, slot.wait.ToTimedelta().total_seconds())
                    )

    # --- at the end of the day ------------------------------------------------------

    async def closing(self, parties: list[Party], guest_index: dict[str, int]) -> None:
        jobs = []
        if "photo" in self.services:
            jobs.append(self._photos(parties, guest_index))
        if "itinerary" in self.services:
            jobs.append(self._nudge_stats())
        await asyncio.gather(*jobs)

    async def _photos_decided(self) -> None:
        """Wait (a bounded while) until photo has decided every ride photo of
        the day, as a park's end of day would: the last photos are decided
        only once the taps after them have come, or the stream has gone quiet
        and the clock has passed them, which is after the world has stopped."""
        deadline = asyncio.get_running_loop().time() + PHOTO_DECIDED_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            stats = await self.call(
                "photo.GetPhotoStats",
                self.stubs.photo.GetPhotoStats,
                ppb.GetPhotoStatsRequest(),
                self.ops,
            )
            if stats is None or stats.total.pending == 0:
                return
            await asyncio.sleep(PHOTO_POLL_S)

    async def _photos(self, parties: list[Party], guest_index: dict[str, int]) -> None:
        await self._photos_decided()
        gate = asyncio.Semaphore(16)

        async def one(party: Party) -> None:
            token = ""
            async with gate:
                while True:
                    reply = await self.call(
                        "photo.ListPhotos",
                        self.stubs.photo.ListPhotos,
                        ppb.ListPhotosRequest(
                            party_id=party.party_id,
                            page=common_pb2.PageRequest(page_size=100, page_token=token),
                        ),
                        self.ops,
                    )
                    if reply is None:
                        return
                    for photo in reply.photos:
                        linked = tuple(guest_index[g] for g in photo.guest_ids if g in guest_index)
                        _, before = self.seen.photos.get(photo.photo_id, (photo.capture_id, ()))
                        self.seen.photos[photo.photo_id] = (
                            photo.capture_id,
                            tuple(sorted(set(before) | set(linked))),
                        )
                    token = reply.next_page_token
                    if not token:
                        return

        await asyncio.gather(*(one(p) for p in parties if p.party_id))
        stats = await self.call(
            "photo.GetPhotoStats",
            self.stubs.photo.GetPhotoStats,
            ppb.GetPhotoStatsRequest(),
            self.ops,
        )
        if stats is not None:
            self.seen.photo_stats = stats.total

    async def _nudge_stats(self) -> None:
        self.seen.nudge_stats = await self.call(
            "itinerary.GetNudgeStats",
            self.stubs.itinerary.GetNudgeStats,
            ipb.GetNudgeStatsRequest(),
            self.ops,
        )
