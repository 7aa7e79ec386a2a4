"""Location's SQL: every read and write of its schema.

Writes on the hot path are short: one transaction per ping batch (claim the
batch id, COPY the rows) and one per publishing tick (events, visits, minutes),
each a few milliseconds, because event delivery in the whole cluster waits for
the oldest running transaction.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from services.location.copy_format import COLUMNS
from services.platform import events

SCHEMA = "location"
OCCUPANCY_CHANGED = "occupancy_changed"
GUEST_ZONE_CHANGED = "guest_zone_changed"

PARTITION_HOURS = 1
_PARTITION = re.compile(r"^pings_(\d{10})$")
_DDL_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '2s'"


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    lower: datetime

    @property
    def upper(self) -> datetime:
        return self.lower + timedelta(hours=PARTITION_HOURS)


def partition_for(at: datetime) -> Partition:
    lower = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return Partition(f"pings_{lower:%Y%m%d%H}", lower)


@dataclass(frozen=True, slots=True)
class StoredPlace:
    guest_id: str
    zone_id: str | None
    node_id: str | None
    entered_at: datetime


@dataclass(frozen=True, slots=True)
class VisitRow:
    zone_id: str | None
    node_id: str | None
    entered_at: datetime


@dataclass(frozen=True, slots=True)
class GroupResult:
    """Per batch of a group: stored by this call, and the ack to answer with."""

    first: list[bool]
    acks: list[bytes]
    tracks: dict[str, int]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """`first`: this call stored the batch; otherwise `ack` is the stored ack."""

    first: bool
    ack: bytes
    tracks: dict[str, int]


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    mean_count: float
    max_count: int
    capacity: int


# (kind, key, payload, occurred_at)
EventRow = tuple[str, str, bytes, datetime]
# (guest_id, entered_at, zone_id, node_id)
VisitInsert = tuple[str, datetime, str | None, str | None]
# (zone_id, minute, mean_count, max_count, capacity)
MinuteInsert = tuple[str, datetime, float, int, int]


class LocationStore:
    def __init__(self, pool: asyncpg.Pool, schema: str = SCHEMA) -> None:
        self._pool = pool
        self._schema = schema

    # --- readers ---------------------------------------------------------------------

    async def sync_readers(
        self, reader_ids: Sequence[str]
    ) -> dict[str, tuple[int, datetime | None]]:
        """Numbers for every reader (new ones get fresh numbers), with their newest read."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE readers IN SHARE ROW EXCLUSIVE MODE")
            rows = await conn.fetch("SELECT reader_no, reader_id, last_ping_at FROM readers")
            known = {r["reader_id"]: (r["reader_no"], r["last_ping_at"]) for r in rows}
            missing = [rid for rid in reader_ids if rid not in known]
            if missing:
                start = max((no for no, _ in known.values()), default=0) + 1
                if start + len(missing) > 32767:
                    raise RuntimeError("more than 32,767 readers ever registered")
                numbered = [(start + i, rid) for i, rid in enumerate(missing)]
                await conn.executemany(
                    "INSERT INTO readers (reader_no, reader_id) VALUES ($1, $2)", numbered
                )
                known.update({rid: (no, None) for no, rid in numbered})
            return known

    async def save_reader_pings(self, rows: Sequence[tuple[int, datetime]]) -> None:
        if not rows:
            return
        await self._pool.execute(
            "UPDATE readers r SET last_ping_at = v.at "
            "FROM unnest($1::smallint[], $2::timestamptz[]) AS v(no, at) "
            "WHERE r.reader_no = v.no AND (r.last_ping_at IS NULL OR r.last_ping_at < v.at)",
            [no for no, _ in rows],
            [at for _, at in rows],
        )

    # --- start-up state ------------------------------------------------------------------

    async def load_tracks(self) -> dict[str, int]:
        """Each guest's newest track."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT ON (guest_id) guest_id::text AS guest_id, track_no FROM tracks "
            "ORDER BY guest_id, track_no DESC"
        )
        return {r["guest_id"]: r["track_no"] for r in rows}

    async def load_places(self) -> list[StoredPlace]:
        """Each consenting guest's newest visit row (their place when last written)."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT ON (guest_id) guest_id::text AS guest_id, zone_id, node_id, "
            "entered_at FROM visits ORDER BY guest_id, entered_at DESC, seq DESC"
        )
        return [
            StoredPlace(r["guest_id"], r["zone_id"], r["node_id"], r["entered_at"]) for r in rows
        ]

    # --- ingest --------------------------------------------------------------------------

    async def stored_ack(self, device_id: str, batch_id: str) -> bytes | None:
        value = await self._pool.fetchval(
            "SELECT ack FROM ping_batches WHERE device_id = $1 AND batch_id = $2",
            device_id,
            batch_id,
        )
        return None if value is None else bytes(value)

    async def store_batch(
        self,
        device_id: str,
        batch_id: str,
        ack: bytes,
        new_tracks: Sequence[str],
        at: datetime,
        payload: Callable[[dict[str, int]], bytes | None],
    ) -> BatchResult:
        """One batch: `store_batches` of a group of one."""
        group = await self.store_batches(
            [(device_id, batch_id, ack)],
            new_tracks,
            at,
            lambda first, tracks: payload(tracks) if first[0] else None,
        )
        return BatchResult(group.first[0], group.acks[0], group.tracks)

    async def store_batches(
        self,
        batches: Sequence[tuple[str, str, bytes]],
        new_tracks: Sequence[str],
        at: datetime,
        payload: Callable[[list[bool], dict[str, int]], bytes | None],
    ) -> GroupResult:
        """In one transaction: claim the (device_id, batch_id, ack) batch ids, give
        tracks to guests storing their first pings, and COPY the rows
        `payload(first, tracks)` encodes for the batches claimed first here. A
        batch already stored answers with its stored ack."""
        # Canonical UUID text, to match what the database returns.
        devices = [str(uuid.UUID(b[0])) for b in batches]
        ids = [b[1] for b in batches]
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetch(
                "INSERT INTO ping_batches (device_id, batch_id, ack, received_at) "
                "SELECT d, b, a, $4 FROM unnest($1::uuid[], $2::text[], $3::bytea[]) "
                "AS t(d, b, a) "
                "ON CONFLICT (device_id, batch_id) DO NOTHING "
                "RETURNING device_id::text AS device_id, batch_id",
                devices,
                ids,
                [b[2] for b in batches],
                at,
            )
            new = {(r["device_id"], r["batch_id"]) for r in claimed}
            first = [(d, b) in new for d, b in zip(devices, ids, strict=True)]
            acks = [b[2] for b in batches]
            if not all(first):
                stored = await conn.fetch(
                    "SELECT device_id::text AS device_id, batch_id, ack FROM ping_batches "
                    "WHERE (device_id, batch_id) IN "
                    "(SELECT * FROM unnest($1::uuid[], $2::text[]))",
                    [d for d, f in zip(devices, first, strict=True) if not f],
                    [b for b, f in zip(ids, first, strict=True) if not f],
                )
                earlier = {(r["device_id"], r["batch_id"]): bytes(r["ack"]) for r in stored}
                acks = [
                    ack if f else earlier[(d, b)]
                    for d, b, ack, f in zip(devices, ids, acks, first, strict=True)
                ]
            tracks: dict[str, int] = {}
            if new_tracks:
                rows = await conn.fetch(
                    "INSERT INTO tracks (guest_id, created_at) "
                    "SELECT g, $2 FROM unnest($1::uuid[]) AS g "
                    "RETURNING track_no, guest_id::text AS guest_id",
                    list(new_tracks),
                    at,
                )
                tracks = {r["guest_id"]: r["track_no"] for r in rows}
            data = payload(first, tracks) if any(first) else None
            if data is not None:
                # A memoryview, not bytes: asyncpg would take bytes for a file path.
                await conn.copy_to_table(
                    "pings", source=memoryview(data), columns=list(COLUMNS), format="binary"
                )
            return GroupResult(first, acks, tracks)

    # --- the ping log's partitions ----------------------------------------------------------

    async def partitions(self) -> list[Partition]:
        rows = await self._pool.fetch(
            "SELECT c.relname FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = 'pings' AND n.nspname = current_schema()"
        )
        found: list[Partition] = []
        for row in rows:
            match = _PARTITION.match(row["relname"])
            if match:
                lower = datetime.strptime(match[1], "%Y%m%d%H").replace(tzinfo=UTC)
                found.append(Partition(row["relname"], lower))
        return sorted(found, key=lambda p: p.lower)

    async def create_partition(self, partition: Partition) -> None:
        """Create the table alone, then attach it: attaching locks the parent only
        against schema changes, not against concurrent COPYs."""
        lower = partition.lower.isoformat()
        upper = partition.upper.isoformat()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_DDL_LOCK_TIMEOUT)
            exists = await conn.fetchval(
                "SELECT true FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = $1 AND n.nspname = current_schema()",
                partition.name,
            )
            if exists:
                return
            await conn.execute(
                f"CREATE TABLE {partition.name} "
                "(LIKE pings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
            await conn.execute(
                f"ALTER TABLE {partition.name} ADD CONSTRAINT {partition.name}_range "
                f"CHECK (observed_at >= '{lower}' AND observed_at < '{upper}')"
            )
            await conn.execute(
                f"ALTER TABLE pings ATTACH PARTITION {partition.name} "
                f"FOR VALUES FROM ('{lower}') TO ('{upper}')"
            )
            # The check made attaching instant; the partition bound now says it.
            await conn.execute(
                f"ALTER TABLE {partition.name} DROP CONSTRAINT {partition.name}_range"
            )

    async def drop_partition(self, partition: Partition) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_DDL_LOCK_TIMEOUT)
            await conn.execute(f"DROP TABLE IF EXISTS {partition.name}")

    # --- the publishing tick ----------------------------------------------------------------

    async def flush(
        self,
        event_rows: Sequence[EventRow],
        visit_rows: Sequence[VisitInsert],
        minute_rows: Sequence[MinuteInsert],
    ) -> None:
        """One short transaction: events (with NOTIFY), trail rows, history minutes."""
        if not (event_rows or visit_rows or minute_rows):
            return
        traceparent = events.current_traceparent()
        async with self._pool.acquire() as conn, conn.transaction():
            if event_rows:
                await conn.copy_records_to_table(
                    "events",
                    records=[(k, key, p, at, traceparent) for k, key, p, at in event_rows],
                    columns=["kind", "key", "payload", "occurred_at", "traceparent"],
                )
                await conn.execute("SELECT pg_notify($1, '')", events.channel_for(self._schema))
            if visit_rows:
                await conn.copy_records_to_table(
                    "visits",
                    records=visit_rows,
                    columns=["guest_id", "entered_at", "zone_id", "node_id"],
                )
            if minute_rows:
                await conn.executemany(
                    "INSERT INTO occupancy_minutes "
                    "(zone_id, minute, mean_count, max_count, capacity) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (zone_id, minute) DO UPDATE SET "
                    "mean_count = EXCLUDED.mean_count, max_count = EXCLUDED.max_count, "
                    "capacity = EXCLUDED.capacity",
                    minute_rows,
                )

    # --- privacy ------------------------------------------------------------------------------

    async def forget_guest(
        self, conn: asyncpg.Connection, guest_id: str, log_from: datetime, log_until: datetime
    ) -> int:
        """Delete what is stored about a guest: their tracks (which unlinks their
        pings at once), trail and moves. Their pings, in [log_from, log_until),
        are queued for the purger. Returns the number of tracks unlinked."""
        tracks = await conn.fetch(
            "DELETE FROM tracks WHERE guest_id = $1 RETURNING track_no", guest_id
        )
        if tracks:
            await conn.executemany(
                "INSERT INTO ping_purges (track_no, next_at, until_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (track_no) DO NOTHING",
                [(r["track_no"], log_from, log_until) for r in tracks],
            )
        await conn.execute("DELETE FROM visits WHERE guest_id = $1", guest_id)
        await conn.execute(
            "DELETE FROM events WHERE key = $1 AND kind = $2", guest_id, GUEST_ZONE_CHANGED
        )
        return len(tracks)

    async def pending_purges(self) -> list[tuple[int, datetime, datetime]]:
        rows = await self._pool.fetch(
            "SELECT track_no, next_at, until_at FROM ping_purges ORDER BY next_at, track_no"
        )
        return [(r["track_no"], r["next_at"], r["until_at"]) for r in rows]

    async def purge_chunk(
        self, tracks: Sequence[int], start: datetime, end: datetime
    ) -> tuple[int, float]:
        """Delete the pings of `tracks` observed in [start, end) and move their
        purges past `end` (finished ones are removed). Returns (rows, seconds)."""
        began = time.perf_counter()
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "DELETE FROM pings WHERE observed_at >= $1 AND observed_at < $2 "
                "AND track_no = ANY($3::integer[])",
                start,
                end,
                list(tracks),
            )
            await conn.execute(
                "DELETE FROM ping_purges WHERE track_no = ANY($1::integer[]) AND until_at <= $2",
                list(tracks),
                end,
            )
            await conn.execute(
                "UPDATE ping_purges SET next_at = $2 WHERE track_no = ANY($1::integer[])",
                list(tracks),
                end,
            )
        return int(status.split()[-1]), time.perf_counter() - began

    async def track_pings(self, guest_id: str) -> int:
        """Pings stored under the guest's tracks (for ops and tests)."""
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM pings p JOIN tracks t USING (track_no) WHERE t.guest_id = $1",
                guest_id,
            )
        )

    # --- expiry ---------------------------------------------------------------------------------

    async def expire_visits(self, cutoff: datetime, limit: int = 5000) -> int:
        """Delete visits that ended before `cutoff` (a guest's current visit stays)."""
        status = await self._pool.execute(
            "DELETE FROM visits WHERE seq IN ("
            " SELECT v.seq FROM visits v WHERE v.entered_at < $1 AND ("
            "  v.zone_id IS NULL OR EXISTS ("
            "   SELECT 1 FROM visits w WHERE w.guest_id = v.guest_id"
            "   AND (w.entered_at, w.seq) > (v.entered_at, v.seq) AND w.entered_at < $1))"
            " LIMIT $2)",
            cutoff,
            limit,
        )
        return int(status.split()[-1])

    async def expire_events(self, kind: str, cutoff: datetime, limit: int = 5000) -> int:
        status = await self._pool.execute(
            "DELETE FROM events WHERE (txid, seq) IN ("
            " SELECT txid, seq FROM events WHERE occurred_at < $2 AND kind = $1 LIMIT $3)",
            kind,
            cutoff,
            limit,
        )
        return int(status.split()[-1])

    async def expire_batches(self, cutoff: datetime, limit: int = 20000) -> int:
        status = await self._pool.execute(
            "DELETE FROM ping_batches WHERE (device_id, batch_id) IN ("
            " SELECT device_id, batch_id FROM ping_batches WHERE received_at < $1 LIMIT $2)",
            cutoff,
            limit,
        )
        return int(status.split()[-1])

    async def expire_minutes(self, cutoff: datetime, limit: int = 20000) -> int:
        status = await self._pool.execute(
            "DELETE FROM occupancy_minutes WHERE (zone_id, minute) IN ("
            " SELECT zone_id, minute FROM occupancy_minutes WHERE minute < $1 LIMIT $2)",
            cutoff,
            limit,
        )
        return int(status.split()[-1])

    # --- queries ----------------------------------------------------------------------------------

    async def visits(self, guest_id: str, limit: int) -> list[VisitRow]:
        """The guest's newest visit rows, newest first."""
        rows = await self._pool.fetch(
            "SELECT zone_id, node_id, entered_at FROM visits WHERE guest_id = $1 "
            "ORDER BY entered_at DESC, seq DESC LIMIT $2",
            guest_id,
            limit,
        )
        return [VisitRow(r["zone_id"], r["node_id"], r["entered_at"]) for r in rows]

    async def occupancy_buckets(
        self, zone_id: str, start: datetime, end: datetime, bucket: timedelta, limit: int
    ) -> list[Bucket]:
        rows = await self._pool.fetch(
            "SELECT date_bin($4::interval, minute, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b, "
            "avg(mean_count)::float8 AS mean_count, max(max_count) AS max_count, "
            "max(capacity) AS capacity FROM occupancy_minutes "
            "WHERE zone_id = $1 AND minute >= $2 AND minute < $3 "
            "GROUP BY b ORDER BY b LIMIT $5",
            zone_id,
            start,
            end,
            bucket,
            limit,
        )
        return [Bucket(r["b"], r["mean_count"], r["max_count"], r["capacity"]) for r in rows]
