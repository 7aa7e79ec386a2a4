"""Ingest of one ping batch: dedupe, check, store, place.

1. A batch id already acked for this device is answered from memory (or the
   database after a restart) with its first ack, as DUPLICATE; one still being
   stored is waited for.
2. The rows are checked as columns (batch.py).
3. Rows of consenting guests, observed while their consent held, are stored in
   the ping log under their track (a pseudonym) by one binary COPY, in the same
   transaction that records the batch id with its ack. Rows of other guests are
   never stored.
4. Only after the commit, every good row - consenting or not - is handed to
   placement, in memory. Placement takes maxima, so even a batch applied twice
   would count once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from services.location import batch as checks
from services.location.copy_format import ping_rows
from services.location.directory import Directory
from services.location.gate import WriteGate
from services.location.pinglog import PingLog
from services.location.placement import Placement
from services.location.store import LocationStore
from services.location.topology import Topology
from services.platform.clock import VenueClock
from venue.location.v1 import location_pb2 as pb

log = logging.getLogger("venue.location.ingest")

# How far ahead of venue now a read may be, in wall seconds (device clocks drift).
FUTURE_SKEW_WALL_S = 10.0
# Acks kept in memory for fast answers to resends.
RECENT_ACKS = 50_000

Key = tuple[str, str]


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class Ingestor:
    def __init__(
        self,
        topology: Topology,
        directory: Directory,
        placement: Placement,
        store: LocationStore,
        pinglog: PingLog,
        gate: WriteGate,
        clock: VenueClock,
        reader_no: npt.NDArray[np.int16],
    ) -> None:
        self._topology = topology
        self._directory = directory
        self._placement = placement
        self._store = store
        self._pinglog = pinglog
        self._gate = gate
        self._clock = clock
        self._reader_no = reader_no
        self._retention_ms = int(pinglog.retention.total_seconds() * 1000)
        self._skew_ms = int(max(FUTURE_SKEW_WALL_S * clock.speed, FUTURE_SKEW_WALL_S) * 1000)
        self._recent: OrderedDict[Key, bytes] = OrderedDict()
        self._inflight: dict[Key, asyncio.Future[None]] = {}
        # Newest read per reader (venue Unix ms), for reader health.
        self.reader_last_ms = np.zeros(topology.reader_count, dtype=np.int64)
        self.accepted_rows = 0
        self.stored_rows = 0

    async def ingest(
        self, device_id: str, allowed: npt.NDArray[np.bool_], batch: pb.PingBatch
    ) -> pb.IngestPingsResponse:
        reason = checks.refusal(batch)
        if reason:
            return checks.refused(batch.batch_id, reason)
        key = (device_id, batch.batch_id)
        while True:
            known = self._recent.get(key)
            if known is not None:
                return _duplicate(known)
            pending = self._inflight.get(key)
            if pending is None:
                break
            # The same batch is being stored by another stream: wait, then look again.
            await asyncio.wait([pending])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = done
        try:
            first, ack = await self._store_new(device_id, allowed, batch)
            self._remember(key, ack)
        finally:
            del self._inflight[key]
            done.set_result(None)
        return pb.IngestPingsResponse.FromString(ack) if first else _duplicate(ack)

    async def _store_new(
        self, device_id: str, allowed: npt.NDArray[np.bool_], batch: pb.PingBatch
    ) -> tuple[bool, bytes]:
        g = self._placement.guests
        # Decide inside the gate: a purge waits for decisions made under the old consent.
        async with self._gate.writer():
            now = self._clock.now()
            now_ms = _ms(now)
            limits = checks.Limits(allowed, now_ms - self._retention_ms, now_ms + self._skew_ms)
            checked = checks.check_rows(
                batch, self._directory.slot_of_band, self._topology.reader_index, limits
            )
            ack = checks.ack(batch.batch_id, checked).SerializeToString()

            keep = g.consent_since[checked.slots] <= checked.at_ms
            kept = checked.slots[keep]
            tracks = g.track[kept]
            need = np.unique(kept[tracks == 0])
            guests = [self._directory.guest_id(s) for s in need.tolist()]
            epochs = g.epoch[need].copy()
            if kept.size:
                at_kept = checked.at_ms[keep]
                await self._pinglog.ensure(_at(int(at_kept.min())), _at(int(at_kept.max())))

            def payload(allocated: dict[str, int]) -> bytes | None:
                if kept.size == 0:
                    return None
                track = tracks
                if allocated:
                    new = np.zeros(g.size, dtype=np.int32)
                    new[need] = [allocated[guest] for guest in guests]
                    track = np.where(tracks == 0, new[kept], tracks).astype(np.int32)
                return ping_rows(
                    checked.at_ms[keep],
                    track,
                    self._reader_no[checked.readers[keep]],
                    checked.rssi_dbm[keep],
                )

            result = await self._store.store_batch(
                device_id, batch.batch_id, ack, guests, now, payload
            )
        if not result.first:
            return False, result.ack
        for slot, guest, epoch in zip(need.tolist(), guests, epochs.tolist(), strict=True):
            # A consent change since the check starts a new track instead.
            if g.epoch[slot] == epoch and g.track[slot] == 0:
                g.track[slot] = result.tracks[guest]
        self._placement.observe(checked.slots, checked.readers, checked.at_ms, checked.rssi_dbm)
        np.maximum.at(self.reader_last_ms, checked.readers, checked.at_ms)
        self.accepted_rows += checked.accepted
        self.stored_rows += int(kept.size)
        return True, ack

    def _remember(self, key: Key, ack: bytes) -> None:
        self._recent[key] = ack
        if len(self._recent) > RECENT_ACKS:
            self._recent.popitem(last=False)


def _duplicate(ack: bytes) -> pb.IngestPingsResponse:
    reply = pb.IngestPingsResponse.FromString(ack)
    reply.outcome = pb.PING_BATCH_OUTCOME_DUPLICATE
    return reply
