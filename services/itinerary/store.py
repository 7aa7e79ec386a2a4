"""The itinerary's SQL: every read and write of its schema, each write with its
events in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, TypeVar

import asyncpg

from services.itinerary import messages
from services.itinerary.codec import plan_from_json, plan_to_json
from services.itinerary.model import (
    ACCEPTED,
    ACK_ACCEPTED,
    ACK_DISMISSED,
    DISMISSED,
    SEEN,
    SENT,
    WITHDRAWN,
    Nudge,
    Plan,
    Preferences,
    Window,
)
from services.platform import events, idempotency
from services.platform.errors import AlreadyExists, NotFound
from services.platform.idempotency import Idem

SCHEMA = "itinerary"
T = TypeVar("T")


class Stale(Exception):
    """The plan changed since it was read; read it again and redo the change."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A plan with the revision it was read at."""

    plan: Plan
    revision: int


@dataclass(frozen=True, slots=True)
class Announce:
    """Who hears of a plan change: the stream always; these guests' feeds."""

    guest_ids: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class CandidateRow:
    guest_id: str
    day: date
    dedup_key: str
    kind: int
    at: datetime
    why: str


@dataclass(frozen=True, slots=True)
class QueueBooking:
    booking_id: str
    party_id: str
    attraction_id: str
    kind: int
    active: bool
    window: Window | None
    guest_ids: tuple[str, ...]
    called_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class KindCounts:
    kind: int
    candidates: int = 0
    withheld: int = 0
    sent: int = 0
    seen: int = 0
    accepted: int = 0
    dismissed: int = 0
    ignored: int = 0
    withdrawn: int = 0


_NUDGE_COLUMNS = (
    "nudge_id, guest_id, party_id, plan_id, kind, dedup_key, subject, title, body, reason, "
    "action, time_saved_s, urgency, status, created_at, expires_at, seen_at, acted_at"
)


def _nudge(row: asyncpg.Record) -> Nudge:
    return Nudge(
        nudge_id=str(row["nudge_id"]),
        guest_id=str(row["guest_id"]),
        party_id=str(row["party_id"]),
        plan_id=str(row["plan_id"] or ""),
        kind=row["kind"],
        dedup_key=row["dedup_key"],
        subject=row["subject"],
        title=row["title"],
        body=row["body"],
        reason=row["reason"],
        action=messages.action_of(bytes(row["action"])),
        time_saved_s=float(row["time_saved_s"]),
        urgency=row["urgency"],
        status=row["status"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        seen_at=row["seen_at"],
        acted_at=row["acted_at"],
    )


def _window(start: datetime | None, end: datetime | None) -> Window | None:
    return None if start is None or end is None else Window(start, end)


class ItineraryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def idempotent(
        self,
        idem: Idem | None,
        parse: Callable[[bytes], T],
        serialize: Callable[[T], bytes],
        work: Callable[[asyncpg.Connection], Awaitable[T]],
    ) -> T:
        """Run `work` in a transaction, once per idempotency key."""
        return await idempotency.once(self._pool, idem, parse, serialize, work)

    # --- plans ---------------------------------------------------------------

    async def insert_plan(self, conn: asyncpg.Connection, plan: Plan, announce: Announce) -> Stored:
        inserted = await conn.fetchval(
            "INSERT INTO plans (plan_id, party_id, venue_date, version, revision, doc, "
            "created_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5::jsonb, $6, $7) "
            "ON CONFLICT (party_id, venue_date) DO NOTHING RETURNING true",
            plan.plan_id,
            plan.party_id,
            plan.date,
            plan.version,
            plan_to_json(plan),
            plan.created_at,
            plan.updated_at,
        )
        if not inserted:
            raise AlreadyExists("the party already has a plan for this day", reason="PLAN_EXISTS")
        await self._announce(conn, plan, announce)
        return Stored(plan, 1)

    async def _announce(self, conn: asyncpg.Connection, plan: Plan, announce: Announce) -> None:
        rows = [
            (messages.PLAN_CHANGED, plan.party_id, messages.plan_changed(plan), plan.updated_at)
        ]
        payload = messages.feed_plan(plan)
        rows += [(messages.FEED_PLAN, g, payload, plan.updated_at) for g in announce.guest_ids]
        await events.append_many(conn, SCHEMA, rows)

    async def save_plan(
        self,
        plan: Plan,
        revision: int,
        announce: Announce | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> Stored:
        """Write the plan if it is still at `revision` (else Stale); with
        `announce`, tell the stream and the guests' feeds."""
        if conn is None:
            async with self._pool.acquire() as own, own.transaction():
                return await self.save_plan(plan, revision, announce, own)
        updated = await conn.fetchval(
            "UPDATE plans SET doc = $3::jsonb, version = $4, revision = revision + 1, "
            "updated_at = $5 WHERE plan_id = $1 AND revision = $2 RETURNING revision",
            plan.plan_id,
            revision,
            plan_to_json(plan),
            plan.version,
            plan.updated_at,
        )
        if updated is None:
            raise Stale(plan.plan_id)
        if announce is not None:
            await self._announce(conn, plan, announce)
        return Stored(plan, int(updated))

    async def get_plan(self, plan_id: str) -> Stored:
        row = await self._pool.fetchrow(
            "SELECT doc::text AS doc, revision FROM plans WHERE plan_id = $1", plan_id
        )
        if row is None:
            raise NotFound("plan", plan_id)
        return Stored(plan_from_json(row["doc"]), row["revision"])

    async def plan_of_party(self, party_id: str, day: date) -> Stored | None:
        row = await self._pool.fetchrow(
            "SELECT doc::text AS doc, revision FROM plans WHERE party_id = $1 AND venue_date = $2",
            party_id,
            day,
        )
        return None if row is None else Stored(plan_from_json(row["doc"]), row["revision"])

    async def plans_on(self, day: date) -> list[Stored]:
        rows = await self._pool.fetch(
            "SELECT doc::text AS doc, revision FROM plans WHERE venue_date = $1", day
        )
        return [Stored(plan_from_json(r["doc"]), r["revision"]) for r in rows]

    async def count_plans(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM plans"))

    # --- nudges --------------------------------------------------------------

    async def record_decisions(
        self,
        sent: Sequence[tuple[Nudge, date]],
        candidates: Iterable[CandidateRow],
        withdrawn: Sequence[Nudge],
        now: datetime,
    ) -> tuple[list[Nudge], list[Nudge]]:
        """Store what an evaluation decided, with its events; returns the nudges
        actually stored (a key already used that day is skipped) and those
        actually withdrawn (not already acknowledged or withdrawn)."""
        stored: list[Nudge] = []
        pulled: list[Nudge] = []
        async with self._pool.acquire() as conn, conn.transaction():
            rows: list[tuple[str, str, bytes, datetime]] = []
            for nudge, day in sent:
                ok = await conn.fetchval(
                    f"INSERT INTO nudges ({_NUDGE_COLUMNS}, venue_date) VALUES ($1, $2, $3, "
                    "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) "
                    "ON CONFLICT (guest_id, venue_date, dedup_key) DO NOTHING RETURNING true",
                    nudge.nudge_id,
                    nudge.guest_id,
                    nudge.party_id,
                    nudge.plan_id or None,
                    nudge.kind,
                    nudge.dedup_key,
                    nudge.subject,
                    nudge.title,
                    nudge.body,
                    nudge.reason,
                    messages.action_pb(nudge.action).SerializeToString(),
                    nudge.time_saved_s,
                    nudge.urgency,
                    nudge.status,
                    nudge.created_at,
                    nudge.expires_at,
                    None,
                    None,
                    day,
                )
                if ok:
                    stored.append(nudge)
                    rows.append(
                        (
                            messages.FEED_NUDGE,
                            nudge.guest_id,
                            messages.feed_nudge(nudge),
                            nudge.created_at,
                        )
                    )
                    rows.append(
                        (
                            messages.NUDGE_SENT,
                            nudge.guest_id,
                            messages.nudge_sent(nudge),
                            nudge.created_at,
                        )
                    )
            cands = [(c.guest_id, c.day, c.dedup_key, c.kind, c.at, c.why) for c in candidates]
            if cands:
                await conn.executemany(
                    "INSERT INTO nudge_candidates (guest_id, venue_date, dedup_key, kind, "
                    "first_at, why) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    cands,
                )
            for nudge in withdrawn:
                changed = await conn.fetchval(
                    "UPDATE nudges SET status = $2, acted_at = $3 WHERE nudge_id = $1 "
                    "AND status IN ($4, $5) RETURNING true",
                    nudge.nudge_id,
                    WITHDRAWN,
                    now,
                    SENT,
                    SEEN,
                )
                if changed:
                    pulled.append(nudge)
                    rows.append(
                        (
                            messages.FEED_WITHDRAWN,
                            nudge.guest_id,
                            messages.feed_withdrawn(nudge.nudge_id),
                            now,
                        )
                    )
            await events.append_many(conn, SCHEMA, rows)
        return stored, pulled

    async def get_nudge(self, nudge_id: str) -> Nudge:
        row = await self._pool.fetchrow(
            f"SELECT {_NUDGE_COLUMNS} FROM nudges WHERE nudge_id = $1", nudge_id
        )
        if row is None:
            raise NotFound("nudge", nudge_id)
        return _nudge(row)

    async def acknowledge(
        self, nudge_id: str, ack: int, at: datetime, decide: Callable[[Nudge], int | None]
    ) -> tuple[Nudge, bool]:
        """Apply an acknowledgement; `decide(current)` gives the new status, or
        None to leave it (a repeat). Returns the nudge and whether it changed."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_NUDGE_COLUMNS} FROM nudges WHERE nudge_id = $1 FOR UPDATE", nudge_id
            )
            if row is None:
                raise NotFound("nudge", nudge_id)
            current = _nudge(row)
            status = decide(current)
            if status is None:
                return current, False
            acted = at if ack in (ACK_ACCEPTED, ACK_DISMISSED) else current.acted_at
            seen = current.seen_at or at
            await conn.execute(
                "UPDATE nudges SET status = $2, seen_at = $3, acted_at = $4 WHERE nudge_id = $1",
                nudge_id,
                status,
                seen,
                acted,
            )
            updated = replace(current, status=status, seen_at=seen, acted_at=acted)
            await events.append(
                conn,
                SCHEMA,
                messages.NUDGE_ACKNOWLEDGED,
                messages.nudge_acknowledged(updated, ack),
                at,
                updated.guest_id,
            )
            return updated, True

    async def list_nudges(
        self,
        guest_id: str,
        period: Window | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Nudge]:
        args: list[Any] = [guest_id]
        sql = f"SELECT {_NUDGE_COLUMNS} FROM nudges WHERE guest_id = $1 "
        if period is not None:
            args += [period.start, period.end]
            sql += "AND created_at >= $2 AND created_at < $3 "
        if after is not None:
            args += [after[0], after[1]]
            n = len(args)
            sql += f"AND (created_at, nudge_id) < (${n - 1}, ${n}::uuid) "
        args.append(limit)
        sql += f"ORDER BY created_at DESC, nudge_id DESC LIMIT ${len(args)}"
        return [_nudge(r) for r in await self._pool.fetch(sql, *args)]

    async def nudges_on(self, day: date, guest_id: str | None = None) -> list[Nudge]:
        if guest_id is None:
            rows = await self._pool.fetch(
                f"SELECT {_NUDGE_COLUMNS} FROM nudges WHERE venue_date = $1 ORDER BY created_at",
                day,
            )
        else:
            rows = await self._pool.fetch(
                f"SELECT {_NUDGE_COLUMNS} FROM nudges WHERE venue_date = $1 AND guest_id = $2 "
                "ORDER BY created_at",
                day,
                guest_id,
            )
        return [_nudge(r) for r in rows]

    async def candidate_keys_on(self, day: date) -> list[tuple[str, str]]:
        rows = await self._pool.fetch(
            "SELECT guest_id, dedup_key FROM nudge_candidates WHERE venue_date = $1", day
        )
        return [(str(r["guest_id"]), r["dedup_key"]) for r in rows]

    async def kind_counts(self, period: Window, now: datetime) -> list[KindCounts]:
        rows = await self._pool.fetch(
            """
            SELECT kind,
                   count(*) AS sent,
                   count(*) FILTER (WHERE seen_at IS NOT NULL) AS seen,
                   count(*) FILTER (WHERE status = $3) AS accepted,
                   count(*) FILTER (WHERE status = $4) AS dismissed,
                   count(*) FILTER (WHERE status IN ($5, $6) AND expires_at <= $7) AS ignored,
                   count(*) FILTER (WHERE status = $8) AS withdrawn
            FROM nudges WHERE created_at >= $1 AND created_at < $2 GROUP BY kind
            """,
            period.start,
            period.end,
            ACCEPTED,
            DISMISSED,
            SENT,
            SEEN,
            now,
            WITHDRAWN,
        )
        cand_rows = await self._pool.fetch(
            """
            SELECT c.kind, count(*) AS candidates, count(n.nudge_id) AS sent
            FROM nudge_candidates c
            LEFT JOIN nudges n ON n.guest_id = c.guest_id AND n.venue_date = c.venue_date
                               AND n.dedup_key = c.dedup_key
            WHERE c.first_at >= $1 AND c.first_at < $2 GROUP BY c.kind
            """,
            period.start,
            period.end,
        )
        cands = {r["kind"]: (r["candidates"], r["candidates"] - r["sent"]) for r in cand_rows}
        found: dict[int, KindCounts] = {}
        for r in rows:
            c, w = cands.get(r["kind"], (0, 0))
            found[r["kind"]] = KindCounts(
                r["kind"],
                c,
                w,
                r["sent"],
                r["seen"],
                r["accepted"],
                r["dismissed"],
                r["ignored"],
                r["withdrawn"],
            )
        for kind, (c, w) in cands.items():
            if kind not in found:
                found[kind] = KindCounts(kind, c, w)
        return [found[k] for k in sorted(found)]

    async def send_times(self, period: Window) -> list[tuple[str, datetime, int]]:
        """(guest, created_at, kind) of every nudge in the period."""
        rows = await self._pool.fetch(
            "SELECT guest_id, created_at, kind FROM nudges WHERE created_at >= $1 "
            "AND created_at < $2 ORDER BY guest_id, created_at",
            period.start,
            period.end,
        )
        return [(str(r["guest_id"]), r["created_at"], r["kind"]) for r in rows]

    # --- preferences ---------------------------------------------------------

    async def get_preferences(self, guest_id: str) -> Preferences | None:
        row = await self._pool.fetchrow(
            "SELECT quiet_periods::text AS quiet, muted_kinds, max_per_hour "
            "FROM nudge_preferences WHERE guest_id = $1",
            guest_id,
        )
        if row is None:
            return None
        return _prefs(guest_id, row)

    async def all_preferences(self) -> list[Preferences]:
        rows = await self._pool.fetch(
            "SELECT guest_id, quiet_periods::text AS quiet, muted_kinds, max_per_hour "
            "FROM nudge_preferences"
        )
        return [_prefs(str(r["guest_id"]), r) for r in rows]

    async def set_preferences(self, prefs: Preferences, at: datetime) -> None:
        quiet = json.dumps([[w.start.isoformat(), w.end.isoformat()] for w in prefs.quiet_periods])
        await self._pool.execute(
            "INSERT INTO nudge_preferences (guest_id, quiet_periods, muted_kinds, max_per_hour, "
            "updated_at) VALUES ($1, $2::jsonb, $3, $4, $5) ON CONFLICT (guest_id) DO UPDATE "
            "SET quiet_periods = EXCLUDED.quiet_periods, muted_kinds = EXCLUDED.muted_kinds, "
            "max_per_hour = EXCLUDED.max_per_hour, updated_at = EXCLUDED.updated_at",
            prefs.guest_id,
            quiet,
            sorted(prefs.muted_kinds),
            prefs.max_per_hour,
            at,
        )

    # --- queue bookings ------------------------------------------------------

    async def upsert_queue_booking(self, b: QueueBooking) -> bool:
        """Apply a booking as the queue service last described it; an older
        description than the one held is ignored. True when it changed."""
        changed = await self._pool.fetchval(
            """
            INSERT INTO queue_bookings (booking_id, party_id, attraction_id, kind, active,
                window_start, window_end, guest_ids, called_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8::uuid[], $9, $10)
            ON CONFLICT (booking_id) DO UPDATE SET
                active = EXCLUDED.active, window_start = EXCLUDED.window_start,
                window_end = EXCLUDED.window_end, guest_ids = EXCLUDED.guest_ids,
                called_at = coalesce(EXCLUDED.called_at, queue_bookings.called_at),
                updated_at = EXCLUDED.updated_at
            WHERE queue_bookings.updated_at <= EXCLUDED.updated_at
              AND (queue_bookings.active, queue_bookings.window_start,
                   queue_bookings.window_end, queue_bookings.called_at)
                  IS DISTINCT FROM (EXCLUDED.active, EXCLUDED.window_start,
                   EXCLUDED.window_end, coalesce(EXCLUDED.called_at, queue_bookings.called_at))
            RETURNING true
            """,
            b.booking_id,
            b.party_id,
            b.attraction_id,
            b.kind,
            b.active,
            b.window.start if b.window else None,
            b.window.end if b.window else None,
            list(b.guest_ids),
            b.called_at,
            b.updated_at,
        )
        return bool(changed)

    async def queue_bookings_of(self, party_id: str) -> list[QueueBooking]:
        rows = await self._pool.fetch(
            "SELECT * FROM queue_bookings WHERE party_id = $1 AND active ORDER BY booking_id",
            party_id,
        )
        return [
            QueueBooking(
                r["booking_id"],
                str(r["party_id"]),
                r["attraction_id"],
                r["kind"],
                r["active"],
                _window(r["window_start"], r["window_end"]),
                tuple(str(g) for g in r["guest_ids"]),
                r["called_at"],
                r["updated_at"],
            )
            for r in rows
        ]

    # --- erasure -------------------------------------------------------------

    async def erase_guest(self, guest_id: str) -> None:
        """Everything the itinerary holds about one guest: their nudges (and
        the events that carried them), candidates and preferences."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM nudges WHERE guest_id = $1", guest_id)
            await conn.execute("DELETE FROM nudge_candidates WHERE guest_id = $1", guest_id)
            await conn.execute("DELETE FROM nudge_preferences WHERE guest_id = $1", guest_id)
            await conn.execute(
                "DELETE FROM events WHERE key = $1 AND kind = ANY($2::text[])",
                guest_id,
                [*messages.FEED_KINDS, messages.NUDGE_SENT, messages.NUDGE_ACKNOWLEDGED],
            )


def _prefs(guest_id: str, row: asyncpg.Record) -> Preferences:
    quiet = tuple(
        Window(datetime.fromisoformat(s), datetime.fromisoformat(e))
        for s, e in json.loads(row["quiet"])
    )
    return Preferences(guest_id, quiet, frozenset(row["muted_kinds"]), row["max_per_hour"])
