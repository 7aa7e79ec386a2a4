"""The queue service's SQL: every read and write of its schema. Writes that
other services must hear of carry their events in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import asyncpg

from services.platform import events, idempotency
from services.platform.idempotency import Idem

SCHEMA = "queue"
T = TypeVar("T")

# booking_guests.pass_state
PASS_TO_ISSUE, PASS_ISSUED, PASS_TO_UPDATE, PASS_TO_REVOKE, PASS_REVOKED, PASS_REFUSED = range(1, 7)


@dataclass(frozen=True, slots=True)
class TapRow:
    tap_id: str
    kind: int
    attraction_id: str
    guest_id: str
    tapped_at: datetime
    entitlement_id: str
    raw_wait_s: float | None
    posted_wait_s: float | None


@dataclass(frozen=True, slots=True)
class StatusRow:
    attraction_id: str
    status: int
    reason: int
    note: str
    since: datetime
    expected_reopen_at: datetime | None


@dataclass(frozen=True, slots=True)
class SampleRow:
    attraction_id: str
    at: datetime
    status: int
    posted_wait_s: float | None
    standby_line_length: int
    throughput_per_hour: float


@dataclass(frozen=True, slots=True)
class HistoryRow:
    at: datetime
    status: int
    posted_wait_s: float | None
    measured_wait_s: float | None
    standby_line_length: int
    throughput_per_hour: float


@dataclass(frozen=True, slots=True)
class GuestPass:
    guest_id: str
    entitlement_id: str
    pass_state: int
    redeemed_at: datetime | None


@dataclass(frozen=True, slots=True)
class BookingRecord:
    booking_id: str
    kind: int
    status: int
    attraction_id: str
    party_id: str
    venue_date: date
    boarding_group: int
    window_start: datetime | None
    window_end: datetime | None
    rebooked_from: str
    created_at: datetime
    called_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: int
    guests: tuple[GuestPass, ...]

    @property
    def guest_ids(self) -> list[str]:
        return [g.guest_id for g in self.guests]


@dataclass(frozen=True, slots=True)
class PendingPass:
    """A pass in access that needs writing: the booking's side of it."""

    booking_id: str
    guest_id: str
    entitlement_id: str
    pass_state: int
    attempts: int
    revoke_reason: int
    kind: int
    attraction_id: str
    boarding_group: int
    window_start: datetime | None
    window_end: datetime | None


@dataclass(frozen=True, slots=True)
class VirtualQueueState:
    attraction_id: str
    venue_date: date
    next_group: int
    next_group_guests: int
    last_called_group: int
    next_call_at: datetime | None


_BOOKING_COLUMNS = (
    "b.booking_id, b.kind, b.status, b.attraction_id, b.party_id, b.venue_date, "
    "b.boarding_group, b.window_start, b.window_end, b.rebooked_from, b.created_at, "
    "b.called_at, b.cancelled_at, b.cancel_reason"
)


def _booking(row: asyncpg.Record, guests: Sequence[asyncpg.Record]) -> BookingRecord:
    return BookingRecord(
        booking_id=str(row["booking_id"]),
        kind=row["kind"],
        status=row["status"],
        attraction_id=row["attraction_id"],
        party_id=row["party_id"],
        venue_date=row["venue_date"],
        boarding_group=row["boarding_group"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        rebooked_from=str(row["rebooked_from"] or ""),
        created_at=row["created_at"],
        called_at=row["called_at"],
        cancelled_at=row["cancelled_at"],
        cancel_reason=row["cancel_reason"],
        guests=tuple(
            GuestPass(g["guest_id"], g["entitlement_id"], g["pass_state"], g["redeemed_at"])
            for g in guests
        ),
    )


class QueueStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # --- transactions and events ----------------------------------------------

    async def idempotent(
        self,
        idem: Idem | None,
        parse: Callable[[bytes], T],
        serialize: Callable[[T], bytes],
        work: Callable[[asyncpg.Connection], Awaitable[T]],
    ) -> T:
        """Run `work` in a transaction, once per idempotency key."""
        return await idempotency.once(self.pool, idem, parse, serialize, work)

    @staticmethod
    async def append_events(
        conn: asyncpg.Connection, rows: Sequence[tuple[str, str, bytes, datetime]]
    ) -> None:
        """Events as (kind, key, payload, occurred_at), in the caller's transaction."""
        if len(rows) == 1:
            kind, key, payload, at = rows[0]
            await events.append(conn, SCHEMA, kind, payload, at, key)
        elif rows:
            await events.append_many(conn, SCHEMA, rows)

    # --- taps ---------------------------------------------------------------

    @staticmethod
    async def insert_taps(conn: asyncpg.Connection, rows: Sequence[TapRow]) -> None:
        """Store taps; a tap already stored (same id) is left as it is."""
        if not rows:
            return
        await conn.execute(
            "INSERT INTO taps (tap_id, kind, attraction_id, guest_id, tapped_at, entitlement_id, "
            "raw_wait_s, posted_wait_s) "
            "SELECT * FROM unnest($1::text[], $2::smallint[], $3::text[], $4::text[], "
            "$5::timestamptz[], $6::text[], $7::float8[], $8::float8[]) "
            "ON CONFLICT (tap_id) DO NOTHING",
            [r.tap_id for r in rows],
            [r.kind for r in rows],
            [r.attraction_id for r in rows],
            [r.guest_id for r in rows],
            [r.tapped_at for r in rows],
            [r.entitlement_id for r in rows],
            [r.raw_wait_s for r in rows],
            [r.posted_wait_s for r in rows],
        )

    async def day_facts(
        self, since: datetime, until: datetime
    ) -> list[tuple[int, TapRow | StatusRow]]:
        """The day's taps and ops decisions, in the order they were handled."""
        async with self.pool.acquire() as conn:
            taps = await conn.fetch(
                "SELECT seq, tap_id, kind, attraction_id, guest_id, tapped_at, entitlement_id, "
                "raw_wait_s, posted_wait_s FROM taps "
                "WHERE tapped_at >= $1 AND tapped_at <= $2 ORDER BY seq",
                since,
                until,
            )
            decisions = await conn.fetch(
                "SELECT seq, attraction_id, status, reason, note, since, expected_reopen_at "
                "FROM status_log WHERE since >= $1 AND since <= $2 ORDER BY seq",
                since,
                until,
            )
        facts: list[tuple[int, TapRow | StatusRow]] = [
            (
                r["seq"],
                TapRow(
                    r["tap_id"],
                    r["kind"],
                    r["attraction_id"],
                    r["guest_id"],
                    r["tapped_at"],
                    r["entitlement_id"],
                    r["raw_wait_s"],
                    r["posted_wait_s"],
                ),
            )
            for r in taps
        ]
        facts += [
            (
                r["seq"],
                StatusRow(
                    r["attraction_id"],
                    r["status"],
                    r["reason"],
                    r["note"],
                    r["since"],
                    r["expected_reopen_at"],
                ),
            )
            for r in decisions
        ]
        facts.sort(key=lambda f: f[0])
        return facts

    # --- status ---------------------------------------------------------------

    @staticmethod
    async def log_status(conn: asyncpg.Connection, row: StatusRow, set_by: str) -> None:
        await conn.execute(
            "INSERT INTO status_log (attraction_id, status, reason, note, since, "
            "expected_reopen_at, set_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            row.attraction_id,
            row.status,
            row.reason,
            row.note,
            row.since,
            row.expected_reopen_at,
            set_by,
        )

    # --- occupancy ----------------------------------------------------------

    @staticmethod
    async def upsert_occupancy(
        conn: asyncpg.Connection, rows: Iterable[tuple[str, int, datetime]]
    ) -> None:
        rows = list(rows)
        if not rows:
            return
        await conn.execute(
            "INSERT INTO zone_occupancy (zone_id, count, at) "
            "SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[]) "
            "ON CONFLICT (zone_id) DO UPDATE SET count = EXCLUDED.count, at = EXCLUDED.at "
            "WHERE zone_occupancy.at <= EXCLUDED.at",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        )

    async def occupancies(self, since: datetime) -> list[tuple[str, int, datetime]]:
        rows = await self.pool.fetch(
            "SELECT zone_id, count, at FROM zone_occupancy WHERE at >= $1", since
        )
        return [(r["zone_id"], r["count"], r["at"]) for r in rows]

    # --- history ------------------------------------------------------------

    async def insert_samples(self, rows: Sequence[SampleRow]) -> None:
        if not rows:
            return
        await self.pool.execute(
            "INSERT INTO wait_samples (attraction_id, at, status, posted_wait_s, "
            "standby_line_length, throughput_per_hour) "
            "SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::smallint[], $4::real[], "
            "$5::int[], $6::real[]) "
            "ON CONFLICT (attraction_id, at) DO UPDATE SET status = EXCLUDED.status, "
            "posted_wait_s = EXCLUDED.posted_wait_s, "
            "standby_line_length = EXCLUDED.standby_line_length, "
            "throughput_per_hour = EXCLUDED.throughput_per_hour",
            [r.attraction_id for r in rows],
            [r.at for r in rows],
            [r.status for r in rows],
            [r.posted_wait_s for r in rows],
            [r.standby_line_length for r in rows],
            [r.throughput_per_hour for r in rows],
        )

    async def history(
        self,
        attraction_id: str,
        start: datetime,
        end: datetime,
        after: datetime | None,
        limit: int,
    ) -> list[HistoryRow]:
        """Samples oldest first, each with the mean actual wait of the standby
        guests who joined in its minute and have boarded since."""
        rows = await self.pool.fetch(
            """
            SELECT s.at, s.status, s.posted_wait_s, s.standby_line_length,
                   s.throughput_per_hour,
                   (SELECT avg(extract(epoch FROM b.tapped_at - t.tapped_at))
                      FROM taps t
                      CROSS JOIN LATERAL (
                          SELECT x.tapped_at FROM taps x
                           WHERE x.guest_id = t.guest_id AND x.attraction_id = t.attraction_id
                             AND x.kind = 5 AND x.tapped_at > t.tapped_at
                           ORDER BY x.tapped_at LIMIT 1) b
                     WHERE t.attraction_id = s.attraction_id AND t.kind = 3
                       AND t.tapped_at >= s.at AND t.tapped_at < s.at + interval '1 minute'
                       AND NOT EXISTS (
                           SELECT 1 FROM taps n
                            WHERE n.guest_id = t.guest_id AND n.attraction_id = t.attraction_id
                              AND n.kind = 3 AND n.tapped_at > t.tapped_at
                              AND n.tapped_at < b.tapped_at)
                   ) AS measured
              FROM wait_samples s
             WHERE s.attraction_id = $1 AND s.at >= $2 AND s.at < $3
               AND ($4::timestamptz IS NULL OR s.at > $4)
             ORDER BY s.at
             LIMIT $5
            """,
            attraction_id,
            start,
            end,
            after,
            limit,
        )
        return [
            HistoryRow(
                r["at"],
                r["status"],
                r["posted_wait_s"],
                float(r["measured"]) if r["measured"] is not None else None,
                r["standby_line_length"],
                r["throughput_per_hour"],
            )
            for r in rows
        ]

    # --- bookings -------------------------------------------------------------

    @staticmethod
    async def lock_attraction(conn: asyncpg.Connection, attraction_id: str) -> None:
        """Serializes capacity decisions for one attraction (transaction scope)."""
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('queue.attraction'), hashtext($1))",
            attraction_id,
        )

    @staticmethod
    async def lock_guests(conn: asyncpg.Connection, guest_ids: Iterable[str]) -> None:
        """Serializes holdings decisions per guest; always in the same order."""
        for guest_id in sorted(set(guest_ids)):
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('queue.guest'), hashtext($1))", guest_id
            )

    @staticmethod
    async def holdings(
        conn: asyncpg.Connection,
        guest_ids: Sequence[str],
        attraction_id: str,
        active: Sequence[int],
    ) -> tuple[dict[str, int], set[str]]:
        """Active bookings per guest, and the guests holding one at this attraction."""
        rows = await conn.fetch(
            "SELECT g.guest_id, b.attraction_id FROM booking_guests g "
            "JOIN bookings b USING (booking_id) "
            "WHERE g.guest_id = ANY($1::text[]) AND b.status = ANY($2::smallint[])",
            list(guest_ids),
            list(active),
        )
        held: dict[str, int] = {}
        here: set[str] = set()
        for r in rows:
            held[r["guest_id"]] = held.get(r["guest_id"], 0) + 1
            if r["attraction_id"] == attraction_id:
                here.add(r["guest_id"])
        return held, here

    @staticmethod
    async def booked_in_window(
        conn: asyncpg.Connection,
        attraction_id: str,
        start: datetime,
        kind: int,
        holding: Sequence[int],
    ) -> int:
        value = await conn.fetchval(
            "SELECT count(*) FROM booking_guests g JOIN bookings b USING (booking_id) "
            "WHERE b.attraction_id = $1 AND b.kind = $2 AND b.window_start = $3 "
            "AND b.status = ANY($4::smallint[])",
            attraction_id,
            kind,
            start,
            list(holding),
        )
        return int(value or 0)

    async def booked_by_window(
        self, attraction_id: str, day: date, kind: int, holding: Sequence[int]
    ) -> dict[datetime, int]:
        rows = await self.pool.fetch(
            "SELECT b.window_start, count(*) AS guests FROM booking_guests g "
            "JOIN bookings b USING (booking_id) "
            "WHERE b.attraction_id = $1 AND b.venue_date = $2 AND b.kind = $3 "
            "AND b.status = ANY($4::smallint[]) GROUP BY b.window_start",
            attraction_id,
            day,
            kind,
            list(holding),
        )
        return {r["window_start"]: r["guests"] for r in rows}

    async def expected_merges(
        self, day: date, statuses: Sequence[int]
    ) -> list[tuple[str, datetime, datetime, int]]:
        """(attraction, window start, end, guests not yet merged) of live windows."""
        rows = await self.pool.fetch(
            "SELECT b.attraction_id, b.window_start, b.window_end, count(*) AS guests "
            "FROM booking_guests g JOIN bookings b USING (booking_id) "
            "WHERE b.venue_date = $1 AND b.status = ANY($2::smallint[]) "
            "AND b.window_start IS NOT NULL AND g.redeemed_at IS NULL "
            "GROUP BY b.attraction_id, b.window_start, b.window_end",
            day,
            list(statuses),
        )
        return [(r["attraction_id"], r["window_start"], r["window_end"], r["guests"]) for r in rows]

    async def show_rate(self, day: date, ended_before: datetime) -> tuple[int, int]:
        """(guests redeemed, guests booked) over today's windows that have ended."""
        row = await self.pool.fetchrow(
            "SELECT count(g.redeemed_at) AS redeemed, count(*) AS booked "
            "FROM booking_guests g JOIN bookings b USING (booking_id) "
            "WHERE b.venue_date = $1 AND b.window_end < $2 AND b.cancel_reason = 0",
            day,
            ended_before,
        )
        return (int(row["redeemed"]), int(row["booked"])) if row else (0, 0)

    @staticmethod
    async def insert_booking(
        conn: asyncpg.Connection,
        *,
        kind: int,
        status: int,
        attraction_id: str,
        party_id: str,
        day: date,
        guest_ids: Sequence[str],
        boarding_group: int,
        window: tuple[datetime, datetime] | None,
        rebooked_from: str | None,
        at: datetime,
    ) -> str:
        booking_id = str(uuid.uuid4())
        await conn.execute(
            "INSERT INTO bookings (booking_id, kind, status, attraction_id, party_id, venue_date, "
            "boarding_group, window_start, window_end, rebooked_from, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            booking_id,
            kind,
            status,
            attraction_id,
            party_id,
            day,
            boarding_group,
            window[0] if window else None,
            window[1] if window else None,
            rebooked_from,
            at,
        )
        await conn.executemany(
            "INSERT INTO booking_guests (booking_id, guest_id, position, pass_state) "
            "VALUES ($1, $2, $3, $4)",
            [(booking_id, g, i, PASS_TO_ISSUE) for i, g in enumerate(guest_ids)],
        )
        return booking_id

    async def get_booking(
        self, booking_id: str, conn: asyncpg.Connection | None = None, lock: bool = False
    ) -> BookingRecord | None:
        if conn is None:
            async with self.pool.acquire() as own:
                return await self.get_booking(booking_id, own)
        row = await conn.fetchrow(
            f"SELECT {_BOOKING_COLUMNS} FROM bookings b WHERE b.booking_id = $1"
            + (" FOR UPDATE" if lock else ""),
            booking_id,
        )
        if row is None:
            return None
        guests = await conn.fetch(
            "SELECT guest_id, entitlement_id, pass_state, redeemed_at FROM booking_guests "
            "WHERE booking_id = $1 ORDER BY position",
            booking_id,
        )
        return _booking(row, guests)

    async def _with_guests(
        self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]
    ) -> list[BookingRecord]:
        ids = [r["booking_id"] for r in rows]
        guests = await conn.fetch(
            "SELECT booking_id, guest_id, entitlement_id, pass_state, redeemed_at "
            "FROM booking_guests WHERE booking_id = ANY($1::uuid[]) ORDER BY booking_id, position",
            ids,
        )
        by_booking: dict[Any, list[asyncpg.Record]] = {}
        for g in guests:
            by_booking.setdefault(g["booking_id"], []).append(g)
        return [_booking(r, by_booking.get(r["booking_id"], [])) for r in rows]

    async def list_bookings(
        self,
        party_id: str,
        attraction_id: str,
        statuses: Sequence[int] | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[BookingRecord]:
        args: list[Any] = [party_id]
        sql = f"SELECT {_BOOKING_COLUMNS} FROM bookings b WHERE b.party_id = $1"
        if attraction_id:
            args.append(attraction_id)
            sql += f" AND b.attraction_id = ${len(args)}"
        if statuses is not None:
            args.append(list(statuses))
            sql += f" AND b.status = ANY(${len(args)}::smallint[])"
        if after is not None:
            args += [after[0], after[1]]
            sql += f" AND (b.created_at, b.booking_id) > (${len(args) - 1}, ${len(args)}::uuid)"
        args.append(limit)
        sql += f" ORDER BY b.created_at, b.booking_id LIMIT ${len(args)}"
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql, *args)
            return await self._with_guests(conn, rows)

    @staticmethod
    async def cancel_booking(
        conn: asyncpg.Connection,
        booking_id: str,
        reason: int,
        revoke_reason: int,
        at: datetime,
        status: int,
    ) -> None:
        await conn.execute(
            "UPDATE bookings SET status = $2, cancelled_at = $3, cancel_reason = $4 "
            "WHERE booking_id = $1",
            booking_id,
            status,
            at,
            reason,
        )
        # Passes not yet issued are never issued; issued ones are revoked in access.
        await conn.execute(
            "UPDATE booking_guests SET pass_state = CASE "
            f"WHEN pass_state IN ({PASS_ISSUED}, {PASS_TO_UPDATE}) THEN {PASS_TO_REVOKE} "
            f"WHEN pass_state = {PASS_TO_ISSUE} AND entitlement_id = '' THEN {PASS_REVOKED} "
            f"WHEN pass_state = {PASS_TO_ISSUE} THEN {PASS_TO_REVOKE} "
            "ELSE pass_state END, revoke_reason = $2 "
            f"WHERE booking_id = $1 AND pass_state NOT IN ({PASS_REVOKED}, {PASS_REFUSED})",
            booking_id,
            revoke_reason,
        )

    @staticmethod
    async def finish_window(conn: asyncpg.Connection, booking_id: str, status: int) -> None:
        await conn.execute(
            "UPDATE bookings SET status = $2 WHERE booking_id = $1", booking_id, status
        )

    @staticmethod
    async def due_to_finish(
        conn: asyncpg.Connection, before: datetime, statuses: Sequence[int]
    ) -> list[tuple[str, bool]]:
        """Bookings whose window (with grace) ended before `before`: (id, any redeemed)."""
        rows = await conn.fetch(
            "SELECT b.booking_id, EXISTS (SELECT 1 FROM booking_guests g "
            "WHERE g.booking_id = b.booking_id AND g.redeemed_at IS NOT NULL) AS used "
            "FROM bookings b WHERE b.status = ANY($2::smallint[]) AND b.window_end < $1 "
            "FOR UPDATE OF b SKIP LOCKED",
            before,
            list(statuses),
        )
        return [(str(r["booking_id"]), bool(r["used"])) for r in rows]

    @staticmethod
    async def redeem(
        conn: asyncpg.Connection, entitlement_id: str, at: datetime
    ) -> tuple[str, bool] | None:
        """Mark a pass used at the merge: (booking id, every guest of it has merged)."""
        row = await conn.fetchrow(
            "UPDATE booking_guests SET redeemed_at = COALESCE(redeemed_at, $2) "
            "WHERE entitlement_id = $1 RETURNING booking_id",
            entitlement_id,
            at,
        )
        if row is None:
            return None
        left = await conn.fetchval(
            "SELECT count(*) FROM booking_guests WHERE booking_id = $1 AND redeemed_at IS NULL "
            f"AND pass_state NOT IN ({PASS_REVOKED}, {PASS_REFUSED})",
            row["booking_id"],
        )
        return str(row["booking_id"]), int(left or 0) == 0

    @staticmethod
    async def pass_revoked_elsewhere(
        conn: asyncpg.Connection, entitlement_id: str
    ) -> tuple[str, bool] | None:
        """Access revoked a pass itself (staff): (booking id, no live pass left)."""
        row = await conn.fetchrow(
            f"UPDATE booking_guests SET pass_state = {PASS_REVOKED} "
            f"WHERE entitlement_id = $1 AND pass_state <> {PASS_REVOKED} RETURNING booking_id",
            entitlement_id,
        )
        if row is None:
            return None
        live = await conn.fetchval(
            "SELECT count(*) FROM booking_guests WHERE booking_id = $1 "
            f"AND pass_state NOT IN ({PASS_REVOKED}, {PASS_REFUSED}, {PASS_TO_REVOKE})",
            row["booking_id"],
        )
        return str(row["booking_id"]), int(live or 0) == 0

    @staticmethod
    async def bookings_of_guest(
        conn: asyncpg.Connection, guest_id: str, statuses: Sequence[int]
    ) -> list[str]:
        rows = await conn.fetch(
            "SELECT DISTINCT g.booking_id FROM booking_guests g JOIN bookings b USING (booking_id) "
            "WHERE g.guest_id = $1 AND b.status = ANY($2::smallint[])",
            guest_id,
            list(statuses),
        )
        return [str(r["booking_id"]) for r in rows]

    @staticmethod
    async def active_bookings_at(
        conn: asyncpg.Connection, attraction_id: str, day: date, statuses: Sequence[int]
    ) -> list[str]:
        rows = await conn.fetch(
            "SELECT booking_id FROM bookings WHERE attraction_id = $1 AND venue_date = $2 "
            "AND status = ANY($3::smallint[])",
            attraction_id,
            day,
            list(statuses),
        )
        return [str(r["booking_id"]) for r in rows]

    @staticmethod
    async def erase_guest(conn: asyncpg.Connection, guest_id: str) -> None:
        """Unlink an erased guest: their taps keep counting in the line's history
        under a fresh random id, and their passes are withdrawn."""
        await conn.execute(
            "UPDATE taps SET guest_id = $2 WHERE guest_id = $1", guest_id, str(uuid.uuid4())
        )
        await conn.execute(
            f"UPDATE booking_guests SET guest_id = $2, pass_state = CASE WHEN pass_state IN "
            f"({PASS_ISSUED}, {PASS_TO_UPDATE}, {PASS_TO_ISSUE}) AND entitlement_id <> '' "
            f"THEN {PASS_TO_REVOKE} WHEN pass_state = {PASS_TO_ISSUE} THEN {PASS_REVOKED} "
            "ELSE pass_state END WHERE guest_id = $1",
            guest_id,
            f"erased-{uuid.uuid4()}",
        )

    @staticmethod
    async def live_guests(conn: asyncpg.Connection, booking_id: str) -> int:
        value = await conn.fetchval(
            "SELECT count(*) FROM booking_guests WHERE booking_id = $1 "
            f"AND pass_state NOT IN ({PASS_REVOKED}, {PASS_REFUSED}, {PASS_TO_REVOKE})",
            booking_id,
        )
        return int(value or 0)

    # --- passes in access -------------------------------------------------------

    async def pending_passes(self, limit: int, booking_id: str | None = None) -> list[PendingPass]:
        args: list[Any] = [limit]
        sql = (
            "SELECT g.booking_id, g.guest_id, g.entitlement_id, g.pass_state, g.pass_attempts, "
            "g.revoke_reason, b.kind, b.attraction_id, b.boarding_group, b.window_start, "
            "b.window_end FROM booking_guests g JOIN bookings b USING (booking_id) "
            f"WHERE g.pass_state IN ({PASS_TO_ISSUE}, {PASS_TO_UPDATE}, {PASS_TO_REVOKE})"
        )
        if booking_id is not None:
            args.append(booking_id)
            sql += " AND g.booking_id = $2"
        sql += " ORDER BY g.pass_attempts, b.created_at LIMIT $1"
        rows = await self.pool.fetch(sql, *args)
        return [
            PendingPass(
                str(r["booking_id"]),
                r["guest_id"],
                r["entitlement_id"],
                r["pass_state"],
                r["pass_attempts"],
                r["revoke_reason"],
                r["kind"],
                r["attraction_id"],
                r["boarding_group"],
                r["window_start"],
                r["window_end"],
            )
            for r in rows
        ]

    async def pass_done(
        self, booking_id: str, guest_id: str, from_state: int, entitlement_id: str | None
    ) -> None:
        """The write to access succeeded. A booking cancelled meanwhile keeps its
        pass marked for revoking, now with the id to revoke."""
        next_state = {
            PASS_TO_ISSUE: PASS_ISSUED,
            PASS_TO_UPDATE: PASS_ISSUED,
            PASS_TO_REVOKE: PASS_REVOKED,
        }[from_state]
        await self.pool.execute(
            "UPDATE booking_guests SET entitlement_id = COALESCE(NULLIF($4, ''), entitlement_id), "
            "pass_attempts = 0, pass_state = CASE WHEN pass_state = $3 THEN $5 "
            f"WHEN pass_state = {PASS_REVOKED} AND NULLIF($4, '') IS NOT NULL "
            f"THEN {PASS_TO_REVOKE} ELSE pass_state END "
            "WHERE booking_id = $1 AND guest_id = $2",
            booking_id,
            guest_id,
            from_state,
            entitlement_id or "",
            next_state,
        )

    async def pass_failed(self, booking_id: str, guest_id: str, refused: bool) -> None:
        """Access was unreachable (try again later) or refused the pass for good."""
        await self.pool.execute(
            "UPDATE booking_guests SET pass_attempts = pass_attempts + 1, "
            f"pass_state = CASE WHEN $3 THEN {PASS_REFUSED} ELSE pass_state END "
            "WHERE booking_id = $1 AND guest_id = $2",
            booking_id,
            guest_id,
            refused,
        )

    # --- virtual queues -------------------------------------------------------

    @staticmethod
    async def virtual_queue(
        conn: asyncpg.Connection, attraction_id: str, day: date
    ) -> VirtualQueueState:
        """The queue's state, locked for this transaction (created on first use)."""
        await conn.execute(
            "INSERT INTO virtual_queues (attraction_id, venue_date) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            attraction_id,
            day,
        )
        row = await conn.fetchrow(
            "SELECT * FROM virtual_queues WHERE attraction_id = $1 AND venue_date = $2 FOR UPDATE",
            attraction_id,
            day,
        )
        assert row is not None
        return _vq(row)

    async def virtual_queue_state(self, attraction_id: str, day: date) -> VirtualQueueState:
        row = await self.pool.fetchrow(
            "SELECT * FROM virtual_queues WHERE attraction_id = $1 AND venue_date = $2",
            attraction_id,
            day,
        )
        if row is None:
            return VirtualQueueState(attraction_id, day, 1, 0, 0, None)
        return _vq(row)

    @staticmethod
    async def save_virtual_queue(conn: asyncpg.Connection, state: VirtualQueueState) -> None:
        await conn.execute(
            "UPDATE virtual_queues SET next_group = $3, next_group_guests = $4, "
            "last_called_group = $5, next_call_at = $6 "
            "WHERE attraction_id = $1 AND venue_date = $2",
            state.attraction_id,
            state.venue_date,
            state.next_group,
            state.next_group_guests,
            state.last_called_group,
            state.next_call_at,
        )

    async def waiting_by_group(
        self, attraction_id: str, day: date, waiting: int
    ) -> list[tuple[int, int]]:
        """(group, guests) of the virtual queue's waiting bookings, in group order."""
        rows = await self.pool.fetch(
            "SELECT b.boarding_group, count(*) AS guests FROM bookings b "
            "JOIN booking_guests g USING (booking_id) "
            "WHERE b.attraction_id = $1 AND b.venue_date = $2 AND b.status = $3 "
            "GROUP BY b.boarding_group ORDER BY b.boarding_group",
            attraction_id,
            day,
            waiting,
        )
        return [(r["boarding_group"], r["guests"]) for r in rows]

    @staticmethod
    async def call_group(
        conn: asyncpg.Connection,
        attraction_id: str,
        day: date,
        group: int,
        window: tuple[datetime, datetime],
        at: datetime,
        waiting: int,
        called: int,
    ) -> list[str]:
        rows = await conn.fetch(
            "UPDATE bookings SET status = $6, called_at = $7, window_start = $4, window_end = $5 "
            "WHERE attraction_id = $1 AND venue_date = $2 AND boarding_group = $3 "
            "AND status = $8 RETURNING booking_id",
            attraction_id,
            day,
            group,
            window[0],
            window[1],
            called,
            at,
            waiting,
        )
        ids = [r["booking_id"] for r in rows]
        await conn.execute(
            f"UPDATE booking_guests SET pass_state = {PASS_TO_UPDATE} "
            f"WHERE booking_id = ANY($1::uuid[]) AND pass_state = {PASS_ISSUED}",
            ids,
        )
        return [str(i) for i in ids]


def _vq(row: asyncpg.Record) -> VirtualQueueState:
    return VirtualQueueState(
        row["attraction_id"],
        row["venue_date"],
        row["next_group"],
        row["next_group_guests"],
        row["last_called_group"],
        row["next_call_at"],
    )
