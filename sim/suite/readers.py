"""The venue's readers, heard through a few gateways.

Each gateway serves the readers of one top-level zone (a land, a floor) and holds
one IngestPings stream open. Reads are gathered in columns and sent as big batches
about twice a wall second; every batch stays in hand until its ack, and after a
broken stream every unacked batch is sent again under the same batch_id (the
service counts a resent batch once).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import numpy as np

from services.venue_model import Venue
from sim.frame import DayFrame
from sim.geography import Heard
from sim.population import Party
from sim.suite.calls import bearer
from sim.suite.stats import CallStats
from venue.location.v1 import location_pb2 as lpb
from venue.location.v1 import location_pb2_grpc

MAX_ROWS = 20_000
FLUSH_WALL_S = 0.5
MAX_UNACKED = 6
# Most a read's time is off from the moment the world heard it, either way (ms).
READ_SKEW_MS = 1500


def gateway_zone(venue: Venue, zone_id: str) -> str:
    ancestors = venue.zone_ancestors(zone_id)
    return ancestors[-1].id if ancestors else zone_id


def gateways_of(venue: Venue) -> dict[str, list[str]]:
    """Top-level zone -> the readers its gateway serves."""
    groups: dict[str, list[str]] = {}
    for reader in venue.readers:
        groups.setdefault(gateway_zone(venue, reader.zone), []).append(reader.id)
    return groups


@dataclass
class PingStats:
    rows_sent: int = 0
    rows_accepted: int = 0
    batches_sent: int = 0
    batches_acked: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    resent: int = 0
    stream_errors: Counter[str] = field(default_factory=Counter)
    ack_ms: list[float] = field(default_factory=list)
    # Rows accepted by each acked batch (first ack), for audits after faults.
    acked: dict[str, int] = field(default_factory=dict)


class Gateway:
    def __init__(
        self,
        name: str,
        token: str,
        stub: location_pb2_grpc.LocationServiceAsyncStub,
        run_tag: str,
        stats: PingStats,
        calls: CallStats,
    ) -> None:
        self.name = name
        self.token = token
        self.stub = stub
        self.stats = stats
        self.calls = calls
        self.bands: list[str] = []
        self.readers: list[str] = []
        self.times: list[int] = []
        self.rssi: list[int] = []
        self._seq = itertools.count(1)
        self._prefix = f"{run_tag}:{name}"[:100]
        self.unacked: dict[str, tuple[lpb.IngestPingsRequest, float]] = {}
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._room = asyncio.Semaphore(MAX_UNACKED)
        self.closing = False

    def add(self, band: str, reader: str, ms: int, rssi: int) -> None:
        self.bands.append(band)
        self.readers.append(reader)
        self.times.append(ms)
        self.rssi.append(rssi)

    async def flush(self) -> None:
        while self.bands:
            n = min(len(self.bands), MAX_ROWS)
            batch = lpb.PingBatch(batch_id=f"{self._prefix}:{next(self._seq)}")
            batch.band_uids.extend(self.bands[:n])
            batch.reader_ids.extend(self.readers[:n])
            batch.observed_at_unix_ms.extend(self.times[:n])
            batch.rssi_dbm.extend(self.rssi[:n])
            del self.bands[:n], self.readers[:n], self.times[:n], self.rssi[:n]
            await self._room.acquire()
            self.unacked[batch.batch_id] = (
                lpb.IngestPingsRequest(batch=batch),
                time.perf_counter(),
            )
            self.stats.rows_sent += n
            self.stats.batches_sent += 1
            self.calls.count_events(n)
            await self._outbox.put(batch.batch_id)

    async def run(self) -> None:
        """Keep a stream open; after a failure, resend everything not acked."""
        delay = 0.2
        while not (self.closing and not self.unacked and self._outbox.empty()):
            resend = list(self.unacked)
            if resend:
                self.stats.resent += len(resend)
            call = self.stub.IngestPings(self._requests(resend), metadata=bearer(self.token))
            try:
                async for ack in call:
                    self._acked(ack)
                    delay = 0.2
                    if self.closing and not self.unacked and self._outbox.empty():
                        call.cancel()
                        return
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.CANCELLED and self.closing:
                    return
                self.stats.stream_errors[err.code().name] += 1
                if err.code() in (
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.UNAUTHENTICATED,
                ):
                    self.calls.failed("location.IngestPings", err.code().name, err.details() or "")
                    self._drop_all()
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _requests(self, resend: list[str]) -> AsyncIterator[lpb.IngestPingsRequest]:
        sent: set[str] = set()
        for batch_id in resend:
            if batch_id in self.unacked:
                sent.add(batch_id)
                yield self.unacked[batch_id][0]
        while True:
            batch_id = await self._outbox.get()
            if batch_id in self.unacked and batch_id not in sent:
                yield self.unacked[batch_id][0]

    def _acked(self, ack: lpb.IngestPingsResponse) -> None:
        sent = self.unacked.pop(ack.batch_id, None)
        if sent is None:
            return
        self._room.release()
        self.stats.batches_acked += 1
        self.stats.ack_ms.append((time.perf_counter() - sent[1]) * 1000)
        if ack.outcome == lpb.PING_BATCH_OUTCOME_REFUSED:
            self.stats.refused[lpb.PingBatchRefusalReason.Name(ack.refusal_reason)] += 1
            return
        if ack.outcome == lpb.PING_BATCH_OUTCOME_DUPLICATE:
            self.stats.duplicates += 1
        self.stats.acked.setdefault(ack.batch_id, ack.accepted_count)
        self.stats.rows_accepted += ack.accepted_count
        for row in ack.rejected:
            self.stats.rejected[lpb.PingRejectReason.Name(row.reason)] += 1

    def _drop_all(self) -> None:
        for _ in self.unacked:
            self._room.release()
        self.unacked.clear()


class Readers:
    """Turns what the world says readers heard into rows for the right gateway."""

    def __init__(
        self,
        venue: Venue,
        frame: DayFrame,
        stub: location_pb2_grpc.LocationServiceAsyncStub,
        tokens: dict[str, str],
        run_tag: str,
        calls: CallStats,
        seed: int,
    ) -> None:
        self.frame = frame
        self.stats = PingStats()
        self.gateways: dict[str, Gateway] = {}
        self.gateway_of: dict[str, Gateway] = {}
        for zone, readers in gateways_of(venue).items():
            token = tokens.get(f"gateway:{zone}")
            if not token:
                continue
            gw = Gateway(zone, token, stub, run_tag, self.stats, calls)
            self.gateways[zone] = gw
            for reader in readers:
                self.gateway_of[reader] = gw
        rng = np.random.default_rng(seed)
        # Radio noise, drawn once: strengths wobble by a few dB, times by a second.
        self._noise = [int(x) for x in np.round(rng.normal(0, 3, 65_536))]
        self._skew = [int(x) for x in rng.integers(-READ_SKEW_MS, READ_SKEW_MS, 65_536)]
        self._i = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._flusher: asyncio.Task[None] | None = None

    def hear(self, party: Party, heard: tuple[Heard, ...], t: float) -> None:
        base_ms = self.frame.epoch_ms(t)
        noise = self._noise
        skew = self._skew
        i = self._i
        for h in heard:
            gw = self.gateway_of.get(h.reader)
            if gw is None:
                continue
            for member in party.members:
                i = (i + 1) & 0xFFFF
                rssi = min(-30, max(-110, round(h.rssi) + noise[i]))
                gw.add(member.band_uid, h.reader, base_ms + skew[i], rssi)
        self._i = i

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(gw.run()) for gw in self.gateways.values()]
        self._flusher = asyncio.ensure_future(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_WALL_S)
            await asyncio.gather(*(gw.flush() for gw in self.gateways.values()))

    async def close(self, timeout: float = 30.0) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await asyncio.gather(*(gw.flush() for gw in self.gateways.values()))
        waiting = []
        for gw, task in zip(self.gateways.values(), self._tasks, strict=True):
            gw.closing = True
            if gw.unacked:
                waiting.append(task)  # its stream ends once the last ack is in
            else:
                task.cancel()
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
