"""The store against the real PostgreSQL: the ping log's partitions made ahead
and dropped after retention, the binary COPY, batches stored once, trails
expiring, and the purge of unlinked pings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from services.location.copy_format import ping_rows
from services.location.maintenance import Maintenance
from services.location.pinglog import PingLog
from services.location.store import GUEST_ZONE_CHANGED, OCCUPANCY_CHANGED, LocationStore
from services.platform import migrations
from services.platform.clock import VenueClock

MIGRATIONS = Path(__file__).parents[3] / "services" / "location" / "migrations"
NOW = datetime(2026, 7, 4, 15, 20, tzinfo=UTC)


@pytest.fixture
async def pool(database_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(database_url)
    await migrations.migrate(
        conn, schema, {"platform": migrations.PLATFORM_MIGRATIONS, "location": MIGRATIONS}
    )
    await conn.close()
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=3, server_settings={"search_path": schema}
    )
    yield pool
    await pool.close()
    conn = await asyncpg.connect(database_url)
    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await conn.close()


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def payload(rows: list[tuple[datetime, int, int, int]]) -> bytes:
    return ping_rows(
        np.array([ms(r[0]) for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int32),
        np.array([r[2] for r in rows], dtype=np.int16),
        np.array([r[3] for r in rows], dtype=np.int32),
    )


async def store_rows(
    store: LocationStore, rows: list[tuple[datetime, int, int, int]], batch_id: str | None = None
) -> bool:
    device = str(uuid.uuid4())
    result = await store.store_batch(
        device, batch_id or uuid.uuid4().hex, b"ack", [], NOW, lambda _: payload(rows)
    )
    return result.first


async def test_rows_go_in_by_binary_copy_exactly_as_given(pool: asyncpg.Pool) -> None:
    store = LocationStore(pool, "unused")
    log = PingLog(store, timedelta(hours=48))
    await log.maintain(NOW)
    rows = [
        (NOW - timedelta(minutes=5, microseconds=123_000), 7, 12, -61),
        (NOW + timedelta(minutes=50), 2_000_000_000, 32_000, -127),
        (NOW - timedelta(minutes=59), 1, 1, 0),
    ]
    assert await store_rows(store, rows)
    stored = await pool.fetch(
        "SELECT observed_at, track_no, reader_no, rssi_dbm FROM pings ORDER BY observed_at"
    )
    assert [tuple(r) for r in stored] == sorted(rows)


async def test_a_batch_is_stored_once_per_device(pool: asyncpg.Pool) -> None:
    store = LocationStore(pool, "unused")
    await PingLog(store, timedelta(hours=48)).maintain(NOW)
    device = str(uuid.uuid4())
    rows = [(NOW, 1, 1, -50)]
    first = await store.store_batch(device, "b-1", b"first ack", [], NOW, lambda _: payload(rows))
    again = await store.store_batch(device, "b-1", b"other ack", [], NOW, lambda _: payload(rows))
    assert (first.first, first.ack) == (True, b"first ack")
    assert (again.first, again.ack) == (False, b"first ack")
    assert await pool.fetchval("SELECT count(*) FROM pings") == 1
    assert await store.stored_ack(device, "b-1") == b"first ack"


async def test_a_group_stores_only_its_new_batches_and_answers_resends_with_their_ack(
    pool: asyncpg.Pool,
) -> None:
    store = LocationStore(pool, "unused")
    await PingLog(store, timedelta(hours=48)).maintain(NOW)
    one, two = str(uuid.uuid4()), str(uuid.uuid4()).upper()
    await store.store_batch(
        one, "b-1", b"first ack", [], NOW, lambda _: payload([(NOW, 1, 1, -50)])
    )
    asked: list[list[bool]] = []

    def rows(first: list[bool], _: dict[str, int]) -> bytes:
        asked.append(first)
        # Only the batches claimed here: one row each.
        return payload([(NOW, 2, i, -60) for i, f in enumerate(first) if f])

    group = await store.store_batches(
        [(one, "b-2", b"ack 2"), (one, "b-1", b"resent"), (two, "b-1", b"ack 3")], [], NOW, rows
    )
    assert group.first == [True, False, True] == asked[0]
    # The resend answers with the ack stored first; a device id in any case is one device.
    assert group.acks == [b"ack 2", b"first ack", b"ack 3"]
    assert await pool.fetchval("SELECT count(*) FROM pings") == 3
    again = await store.store_batches([(two.lower(), "b-1", b"x")], [], NOW, rows)
    assert (again.first, again.acks) == ([False], [b"ack 3"])
    assert await pool.fetchval("SELECT count(*) FROM pings") == 3


async def test_new_guests_get_tracks_in_the_batch_transaction(pool: asyncpg.Pool) -> None:
    store = LocationStore(pool, "unused")
    await PingLog(store, timedelta(hours=48)).maintain(NOW)
    guests = [str(uuid.uuid4()), str(uuid.uuid4())]
    seen: dict[str, int] = {}

    def rows(tracks: dict[str, int]) -> bytes:
        seen.update(tracks)
        return payload([(NOW, tracks[g], 1, -50) for g in guests])

    result = await store.store_batch(str(uuid.uuid4()), "b", b"ack", guests, NOW, rows)
    assert set(result.tracks) == set(guests) and result.tracks == seen
    assert await store.load_tracks() == result.tracks
    assert await store.track_pings(guests[0]) == 1


async def test_partitions_are_made_ahead_and_dropped_after_retention(pool: asyncpg.Pool) -> None:
    store = LocationStore(pool, "unused")
    log = PingLog(store, timedelta(hours=48))
    await log.maintain(NOW)
    hours = [p.lower for p in await store.partitions()]
    assert hours[0] == datetime(2026, 7, 4, 14, tzinfo=UTC)
    assert hours[-1] == datetime(2026, 7, 4, 18, tzinfo=UTC)
    # An old read within retention gets its partition when it comes.
    old = NOW - timedelta(hours=40)
    await log.ensure(old, old)
    assert await store_rows(store, [(old, 1, 1, -50), (NOW, 1, 1, -50)])
    # Two days on, the old hour has passed retention (plus an hour's margin).
    later = NOW + timedelta(hours=10)
    dropped = await log.maintain(later)
    assert dropped == ["pings_2026070223"]
    assert await pool.fetchval("SELECT count(*) FROM pings") == 1
    dropped = await log.maintain(NOW + timedelta(hours=50))
    assert "pings_2026070415" in dropped
    assert await pool.fetchval("SELECT count(*) FROM pings") == 0
    remaining = [p.lower for p in await store.partitions()]
    assert min(remaining) >= NOW + timedelta(hours=50) - timedelta(hours=49, minutes=20)
    assert max(remaining) == datetime(2026, 7, 6, 20, tzinfo=UTC)


async def test_trails_expire_but_current_places_stay(pool: asyncpg.Pool) -> None:
    store = LocationStore(pool, "unused")
    ann, bob = str(uuid.uuid4()), str(uuid.uuid4())
    h = timedelta(hours=1)
    await store.flush(
        [],
        [
            (ann, NOW - 3 * h, "a", None),
            (ann, NOW - 2.5 * h, "b", None),
            (ann, NOW - 10 * timedelta(minutes=1), "c", None),
            (bob, NOW - 4 * h, "x", None),
            (bob, NOW - 3.5 * h, None, None),
            (bob, NOW - 3 * h, "y", None),
        ],
        [],
    )
    await store.expire_visits(NOW - 2 * h)
    assert [(v.zone_id) for v in await store.visits(ann, 10)] == ["c", "b"]
    assert [(v.zone_id) for v in await store.visits(bob, 10)] == ["y"]


async def test_old_events_expire_by_kind(pool: asyncpg.Pool) -> None:
    store = LocationStore(pool, "unused")
    h = timedelta(hours=1)
    await store.flush(
        [
            (GUEST_ZONE_CHANGED, "g", b"x", NOW - 3 * h),
            (GUEST_ZONE_CHANGED, "g", b"x", NOW - h),
            (OCCUPANCY_CHANGED, "z", b"x", NOW - 3 * h),
        ],
        [],
        [],
    )
    assert await store.expire_events(GUEST_ZONE_CHANGED, NOW - 2 * h) == 1
    kinds = await pool.fetch("SELECT kind FROM events ORDER BY occurred_at")
    assert [r["kind"] for r in kinds] == [OCCUPANCY_CHANGED, GUEST_ZONE_CHANGED]


async def test_an_unlinked_track_s_pings_are_purged_and_no_others(pool: asyncpg.Pool) -> None:
    store = LocationStore(pool, "unused")
    log = PingLog(store, timedelta(hours=48))
    await log.maintain(NOW)
    ann, bob = str(uuid.uuid4()), str(uuid.uuid4())
    result = await store.store_batch(
        str(uuid.uuid4()),
        "b",
        b"ack",
        [ann, bob],
        NOW,
        lambda t: payload(
            [
                (NOW - timedelta(minutes=m), t[g], 1, -50)
                for m in range(0, 50, 5)
                for g in (ann, bob)
            ]
        ),
    )
    async with pool.acquire() as conn:
        assert await store.forget_guest(conn, ann, NOW - timedelta(hours=48), NOW) == 1
    assert await store.track_pings(ann) == 0  # unlinked at once
    upkeep = Maintenance(
        store,
        log,
        VenueClock(NOW, 0.0),
        timedelta(hours=2),
        np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=np.int16),
    )
    deleted = await upkeep.purge(budget_s=30)
    assert deleted == 10
    remaining = await pool.fetch("SELECT DISTINCT track_no FROM pings")
    assert [r["track_no"] for r in remaining] == [result.tracks[bob]]
    assert await store.pending_purges() == []
