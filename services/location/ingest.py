"""Ingest of one ping batch: dedupe, check, store, place.

1. A batch id already acked for this device is answered from memory (or the
   database after a restart) with its first ack, as DUPLICATE; one still being
   stored is waited for.
2. The rows are checked as columns (batch.py).
3. Rows of consenting guests, observed while their consent held, are stored in
   the ping log under their track (a pseudonym) by one binary COPY, in the same
   transaction that records the batch id with its ack. Rows of other guests are
   never stored. Batches that arrive while others are being written wait and
   are then written together: one transaction and one COPY for the group.
4. Only after the commit, every good row - consenting or not - is handed to
   placement, in memory. Placement takes maxima, so even a batch applied twice
   would count once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
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
# Batches waiting to be stored are written together, up to this many rows per
# transaction, by at most this many transactions at a time: fewer round trips
# and commits per ping, and a small batch (one reader's) waits behind at most
# two groups, never behind a queue of connections.
GROUP_ROWS = 40_000
GROUP_WRITERS = 2

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
        # Batches waiting for a group write, per device in arrival order (dicts
        # keep insertion order: devices are served in turn), and the writes under way.
        self._queue: dict[str, deque[_Pending]] = {}
        self._writers = 0
        self._tasks: set[asyncio.Task[None]] = set()
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
        item = _Pending(device_id, allowed, batch, asyncio.get_running_loop().create_future())
        self._queue.setdefault(device_id, deque()).append(item)
        self._kick()
        # Shielded: a stream closing while its batch is written with others must not
        # cancel the group's transaction.
        return await asyncio.shield(item.done)

    def _kick(self) -> None:
        while self._queue and self._writers < GROUP_WRITERS:
            group = self._take()
            self._writers += 1
            task = asyncio.create_task(self._write_group(group))
            self._tasks.add(task)
            task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._writers -= 1
        self._kick()

    def _take(self) -> list[_Pending]:
        """Up to GROUP_ROWS rows of waiting batches (at least one batch), taken
        in turn from each device's queue, oldest first: a gateway's backlog never
        holds back another reader's batches for more than a group."""
        group: list[_Pending] = []
        rows = 0
        while self._queue:
            for device in list(self._queue):
                waiting = self._queue[device]
                size = self._rows(waiting[0])
                if group and rows + size > GROUP_ROWS:
                    return group
                group.append(waiting.popleft())
                rows += size
                # Served: to the back of the line (or out of it).
                del self._queue[device]
                if waiting:
                    self._queue[device] = waiting
        return group

    @staticmethod
    def _rows(item: _Pending) -> int:
        return len(item.batch.band_uids)

    async def _write_group(self, group: list[_Pending]) -> None:
        try:
            results = await self._store_group(group)
        except Exception as err:
            for item in group:
                if not item.done.done():
                    item.done.set_exception(err)
            return
        for item, result in zip(group, results, strict=True):
            if not item.done.done():
                item.done.set_result(result)

    async def _store_group(self, group: list[_Pending]) -> list[tuple[bool, bytes]]:
        """Check, store and place a group of batches: one transaction, one COPY."""
        g = self._placement.guests
        # Decide inside the gate: a purge waits for decisions made under the old consent.
        async with self._gate.writer():
            now = self._clock.now()
            now_ms = _ms(now)
            oldest, newest = now_ms - self._retention_ms, now_ms + self._skew_ms
            decided: list[_Decided] = []
            for item in group:
                limits = checks.Limits(item.allowed, oldest, newest)
                checked = checks.check_rows(
                    item.batch, self._directory.slot_of_band, self._topology.reader_index, limits
                )
                ack = checks.ack(item.batch.batch_id, checked).SerializeToString()
                keep = g.consent_since[checked.slots] <= checked.at_ms
                decided.append(_Decided(item, checked, ack, keep))

            kept_all = np.concatenate([d.checked.slots[d.keep] for d in decided])
            need = np.unique(kept_all[g.track[kept_all] == 0])
            guests = [self._directory.guest_id(s) for s in need.tolist()]
            epochs = g.epoch[need].copy()
            if kept_all.size:
                at_all = np.concatenate([d.checked.at_ms[d.keep] for d in decided])
                await self._pinglog.ensure(_at(int(at_all.min())), _at(int(at_all.max())))

            def payload(first: list[bool], allocated: dict[str, int]) -> bytes | None:
                stored = [d for d, f in zip(decided, first, strict=True) if f and d.keep.any()]
                if not stored:
                    return None
                slots = np.concatenate([d.checked.slots[d.keep] for d in stored])
                track = g.track[slots]
                if allocated:
                    new = np.zeros(g.size, dtype=np.int32)
                    new[need] = [allocated[guest] for guest in guests]
                    track = np.where(track == 0, new[slots], track).astype(np.int32)
                return ping_rows(
                    np.concatenate([d.checked.at_ms[d.keep] for d in stored]),
                    track,
                    self._reader_no[np.concatenate([d.checked.readers[d.keep] for d in stored])],
                    np.concatenate([d.checked.rssi_dbm[d.keep] for d in stored]),
                )

            keys = [(d.item.device_id, d.item.batch.batch_id, d.ack) for d in decided]
            result = await self._store.store_batches(keys, guests, now, payload)
        for slot, guest, epoch in zip(need.tolist(), guests, epochs.tolist(), strict=True):
            # A consent change since the check starts a new track instead.
            if guest in result.tracks and g.epoch[slot] == epoch and g.track[slot] == 0:
                g.track[slot] = result.tracks[guest]
        placed = [d.checked for d, f in zip(decided, result.first, strict=True) if f]
        if placed:
            slots = np.concatenate([c.slots for c in placed])
            readers = np.concatenate([c.readers for c in placed])
            at_ms = np.concatenate([c.at_ms for c in placed])
            self._placement.observe(
                slots, readers, at_ms, np.concatenate([c.rssi_dbm for c in placed])
            )
            np.maximum.at(self.reader_last_ms, readers, at_ms)
            self.accepted_rows += int(slots.size)
        self.stored_rows += sum(
            int(d.keep.sum()) for d, f in zip(decided, result.first, strict=True) if f
        )
        return list(zip(result.first, result.acks, strict=True))

    def _remember(self, key: Key, ack: bytes) -> None:
        self._recent[key] = ack
        if len(self._recent) > RECENT_ACKS:
            self._recent.popitem(last=False)


@dataclass(slots=True)
class _Pending:
    device_id: str
    allowed: npt.NDArray[np.bool_]
    batch: pb.PingBatch
    done: asyncio.Future[tuple[bool, bytes]]


@dataclass(slots=True)
class _Decided:
    item: _Pending
    checked: checks.CheckedRows
    ack: bytes
    keep: npt.NDArray[np.bool_]


def _duplicate(ack: bytes) -> pb.IngestPingsResponse:
    reply = pb.IngestPingsResponse.FromString(ack)
    reply.outcome = pb.PING_BATCH_OUTCOME_DUPLICATE
    return reply
