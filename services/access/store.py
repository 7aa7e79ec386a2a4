"""Access's SQL: every read and write of its schema, each write with its events
in the same transaction.

The two hot paths (Tap, Charge) are one read and one write each: the write is a
single call of a PL/pgSQL function (migrations/0001_access.sql) that records the
decision, its effects and its events atomically, and refuses (SQLSTATE VT409,
`Stale`) when the state the decision read has changed since. Their events are
written in the same call, which also NOTIFYs the stream's channel, so every
replica's event hub wakes at commit. The writes of concurrent calls are
group-committed (group_commit.py, migrations/0002_group_commit.sql): one round
trip and one commit carry every tap (or charge) that queued up while the
previous group was on its way, each in its own subtransaction, and each call's
reply waits for its group's commit. Everything else runs in ordinary
transactions.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import asyncpg
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from services.access import messages
from services.access.group_commit import GroupCommit
from services.access.ledger import Posting, wallet_account
from services.access.records import (
    AccessPointState,
    BandRule,
    ChargeRow,
    EntitlementRecord,
    Statement,
    StatementRow,
    WalletRecord,
    WalletState,
)
from services.platform import events, idempotency
from services.platform.errors import FailedPrecondition, NotFound
from services.platform.idempotency import Idem
from venue.access.v1 import access_pb2 as pb

T = TypeVar("T")

ACTIVE = pb.ENTITLEMENT_STATUS_ACTIVE
USED = pb.ENTITLEMENT_STATUS_USED
REVOKED = pb.ENTITLEMENT_STATUS_REVOKED
STALE_STATE = "VT409"
RECORDED, REPLAYED = 0, 1
# Further statuses of a write in a group (migrations/0002_group_commit.sql).
STALE, FAILED = 2, 3

_ENT_COLUMNS = (
    "entitlement_id, kind, status, guest_id, party_id, external_ref, park_id, valid_dates, "
    "days_allowed, entries_per_day, days_used, last_day, entries_last_day, attraction_id, "
    "booking_id, boarding_group, hotel_id, room_id, window_start, window_end, "
    "access_point_ids, valid_until, created_at, created_by, last_used_at, revoked_at, "
    "revocation_reason"
)
_ENT_PARAMS = ", ".join(f"${i}" for i in range(1, 28))
_ENT_E = ", ".join(f"e.{c.strip()}" for c in _ENT_COLUMNS.split(","))

_CHARGE_COLUMNS = (
    "charge_id, result, decline_reason, merchant_id, party_id, guest_id, band_id, items, "
    "amount_minor, currency, refunded_minor, charged_at, day, created_by"
)


class Stale(Exception):
    """The state a decision read changed before it could be recorded."""


def _is_stale(err: asyncpg.PostgresError) -> bool:
    return getattr(err, "sqlstate", None) == STALE_STATE


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _entitlement(row: asyncpg.Record) -> EntitlementRecord:
    return EntitlementRecord(
        entitlement_id=str(row["entitlement_id"]),
        kind=row["kind"],
        status=row["status"],
        guest_id=str(row["guest_id"]),
        party_id=str(row["party_id"]),
        external_ref=row["external_ref"],
        park_id=_str(row["park_id"]),
        valid_dates=tuple(row["valid_dates"] or ()),
        days_allowed=row["days_allowed"] or 0,
        entries_per_day=row["entries_per_day"] or 0,
        days_used=row["days_used"],
        last_day=row["last_day"],
        entries_last_day=row["entries_last_day"],
        attraction_id=_str(row["attraction_id"]),
        booking_id=_str(row["booking_id"]),
        boarding_group=row["boarding_group"] or 0,
        hotel_id=_str(row["hotel_id"]),
        room_id=_str(row["room_id"]),
        window_start=row["window_start"],
        window_end=row["window_end"],
        access_point_ids=tuple(row["access_point_ids"] or ()),
        valid_until=row["valid_until"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        revocation_reason=row["revocation_reason"],
    )


def _entitlement_values(record: EntitlementRecord) -> tuple[Any, ...]:
    """The values of _ENT_COLUMNS for a new entitlement."""
    return (
        record.entitlement_id,
        record.kind,
        record.status,
        record.guest_id,
        record.party_id,
        record.external_ref,
        record.park_id or None,
        list(record.valid_dates) or None,
        record.days_allowed if record.kind == pb.ENTITLEMENT_KIND_PARK_TICKET else None,
        record.entries_per_day if record.kind == pb.ENTITLEMENT_KIND_PARK_TICKET else None,
        record.days_used,
        record.last_day,
        record.entries_last_day,
        record.attraction_id or None,
        record.booking_id or None,
        record.boarding_group if record.kind == pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE else None,
        record.hotel_id or None,
        record.room_id or None,
        record.window_start,
        record.window_end,
        list(record.access_point_ids) if record.kind == pb.ENTITLEMENT_KIND_STAFF_ACCESS else None,
        record.valid_until,
        record.created_at,
        record.created_by,
        record.last_used_at,
        record.revoked_at,
        record.revocation_reason,
    )


def _charge(row: asyncpg.Record) -> ChargeRow:
    return ChargeRow(
        charge_id=str(row["charge_id"]),
        result=row["result"],
        decline_reason=row["decline_reason"],
        merchant_id=row["merchant_id"],
        party_id=_str(row["party_id"]),
        guest_id=_str(row["guest_id"]),
        band_id=_str(row["band_id"]),
        items=tuple(bytes(b) for b in row["items"]),
        amount_minor=row["amount_minor"],
        currency=row["currency"],
        refunded_minor=row["refunded_minor"],
        charged_at=row["charged_at"],
        day=row["day"],
        created_by=row["created_by"],
    )


@dataclass(frozen=True)
class HeldState:
    """A guest's presence and entitlements, with the version they were read at."""

    version: int
    inside: bool
    presence_day: date | None
    held: tuple[EntitlementRecord, ...]


# Not frozen: built once per call on the hot path, where a frozen dataclass's
# field-by-field object.__setattr__ costs more than the rest of its building.
@dataclass(slots=True)
class TapWrite:
    scope: str
    key: str
    digest: bytes
    reply: bytes
    tap_id: str
    access_point_id: str
    guest_id: str | None
    party_id: str | None
    decision: int
    reason: int
    entitlement_id: str | None
    tapped_at: datetime
    # Set when the decision read the guest's state.
    version: int | None = None
    inside: bool | None = None
    presence_day: date | None = None
    use_status: int | None = None
    use_days: int | None = None
    use_last_day: date | None = None
    use_entries: int | None = None
    events: tuple[tuple[str, str, bytes], ...] = ()


@dataclass(slots=True)
class ChargeWrite:
    scope: str
    key: str
    digest: bytes
    reply: bytes
    charge_id: str
    result: int
    reason: int
    merchant_id: str
    party_id: str | None
    guest_id: str | None
    band_id: str | None
    items: tuple[bytes, ...]
    amount_minor: int
    currency: str
    charged_at: datetime
    day: date
    created_by: str
    # The wallet version the decision read (0: no wallet); None: read none.
    version: int | None
    debit_minor: int = 0
    pin_failures: int | None = None
    pin_locked: bool | None = None
    entry_id: str | None = None
    postings: tuple[Posting, ...] = ()
    event: bytes | None = None


def _tap_fields(w: TapWrite, traceparent: str | None) -> tuple[Any, ...]:
    """The arguments of record_tap (but the channel), in the order of tap_write."""
    return (
        w.scope,
        w.key,
        w.digest,
        w.reply,
        w.tap_id,
        w.access_point_id,
        w.guest_id,
        w.party_id,
        w.decision,
        w.reason,
        w.entitlement_id,
        w.tapped_at,
        w.version,
        w.inside,
        w.presence_day,
        w.use_status,
        w.use_days,
        w.use_last_day,
        w.use_entries,
        [e[0] for e in w.events],
        [e[1] for e in w.events],
        [e[2] for e in w.events],
        traceparent,
    )


def _charge_fields(w: ChargeWrite, traceparent: str | None) -> tuple[Any, ...]:
    """The arguments of record_charge (but the channel), in the order of charge_write."""
    return (
        w.scope,
        w.key,
        w.digest,
        w.reply,
        w.charge_id,
        w.result,
        w.reason,
        w.merchant_id,
        w.party_id,
        w.guest_id,
        w.band_id,
        list(w.items),
        w.amount_minor,
        w.currency,
        w.charged_at,
        w.day,
        w.created_by,
        w.version,
        w.debit_minor,
        w.pin_failures,
        w.pin_locked,
        w.entry_id,
        [p.account_id for p in w.postings],
        [p.amount_minor for p in w.postings],
        w.event,
        traceparent,
    )


def _traceparent() -> str | None:
    """The current span's W3C traceparent: what `events.current_traceparent`
    injects, without a carrier dict and the global propagators' round."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def _wallet_state(row: asyncpg.Record) -> WalletState:
    return WalletState(
        version=row["version"] or 0,
        balance_minor=row["balance_minor"] or 0,
        pin_hash=None if row["pin_hash"] is None else bytes(row["pin_hash"]),
        pin_failures=row["pin_failures"] or 0,
        pin_locked=bool(row["pin_locked"]),
        charging_enabled=row["charging_enabled"],
        daily_limit_minor=row["daily_limit_minor"],
        spent_today_minor=row["spent_minor"] or 0,
    )


def _db_span(operation: str, schema: str) -> tuple[str, dict[str, str]]:
    """A group's CLIENT span (database semantic conventions)."""
    return (
        f"{operation} {schema}",
        {"db.system": "postgresql", "db.operation.name": operation, "db.namespace": schema},
    )


@dataclass(frozen=True)
class TopUpWrite:
    """A top-up inside a larger write (a party's set-up)."""

    postings: Sequence[Posting]
    amount_minor: int
    reference: str


class AccessStore:
    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self._pool = pool
        self._schema = schema
        self._channel = events.channel_for(schema)
        self._taps = GroupCommit(self._record_taps, span=_db_span("record_taps", schema))
        self._charges = GroupCommit(self._record_charges, span=_db_span("record_charges", schema))
        self._state_reads = GroupCommit(self._read_states, span=_db_span("read_states", schema))
        self._wallet_reads = GroupCommit(self._read_wallets, span=_db_span("read_wallets", schema))

    async def _event(
        self, conn: asyncpg.Connection, kind: str, payload: bytes, at: datetime, key: str
    ) -> None:
        await events.append(conn, self._schema, kind, payload, at, key)

    async def idempotent(
        self,
        idem: Idem | None,
        parse: Callable[[bytes], T],
        serialize: Callable[[T], bytes],
        work: Callable[[asyncpg.Connection], Awaitable[T]],
    ) -> T:
        """Run `work` in a transaction, once per idempotency key."""
        return await idempotency.once(self._pool, idem, parse, serialize, work)

    async def transaction(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async with self._pool.acquire() as conn, conn.transaction():
            return await work(conn)

    # --- access points ------------------------------------------------------------

    async def point_states(self) -> dict[str, AccessPointState]:
        rows = await self._pool.fetch("SELECT * FROM access_point_states")
        return {
            r["access_point_id"]: AccessPointState(
                r["access_point_id"],
                r["state"] == pb.ACCESS_POINT_STATE_OPEN,
                r["closed_reason"],
                r["changed_at"],
            )
            for r in rows
        }

    async def set_point_state(
        self,
        state: AccessPointState,
        by: str,
        key: str,
        payload: Callable[[AccessPointState], bytes],
    ) -> None:
        assert state.changed_at is not None
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO access_point_states (access_point_id, state, closed_reason, "
                "changed_at, changed_by) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (access_point_id) DO UPDATE SET state = EXCLUDED.state, "
                "closed_reason = EXCLUDED.closed_reason, changed_at = EXCLUDED.changed_at, "
                "changed_by = EXCLUDED.changed_by",
                state.access_point_id,
                pb.ACCESS_POINT_STATE_OPEN if state.open else pb.ACCESS_POINT_STATE_CLOSED,
                state.closed_reason,
                state.changed_at,
                by,
            )
            await self._event(
                conn, "access_point_state_changed", payload(state), state.changed_at, key
            )

    # --- entitlements -------------------------------------------------------------

    async def _bump_holder(self, conn: asyncpg.Connection, guest_id: str, party_id: str) -> None:
        await conn.execute(
            "INSERT INTO holders (guest_id, party_id) VALUES ($1, $2) "
            "ON CONFLICT (guest_id) DO UPDATE SET version = holders.version + 1",
            guest_id,
            party_id,
        )

    async def _entitlement_event(
        self, conn: asyncpg.Connection, change: int, record: EntitlementRecord, at: datetime
    ) -> None:
        payload = messages.entitlement_changed(change, messages.entitlement_pb(record, at))
        await self._event(conn, "entitlement_changed", payload, at, record.guest_id)

    async def create_entitlement(
        self, conn: asyncpg.Connection, record: EntitlementRecord
    ) -> EntitlementRecord:
        assert record.created_at is not None
        row = await conn.fetchrow(
            f"INSERT INTO entitlements ({_ENT_COLUMNS}) VALUES ({_ENT_PARAMS}) "
            f"RETURNING {_ENT_COLUMNS}",
            *_entitlement_values(record),
        )
        created = _entitlement(row)
        await self._bump_holder(conn, created.guest_id, created.party_id)
        await self._entitlement_event(
            conn, pb.ENTITLEMENT_CHANGE_CREATED, created, record.created_at
        )
        return created

    async def get_entitlement(self, entitlement_id: str) -> EntitlementRecord:
        row = await self._pool.fetchrow(
            f"SELECT {_ENT_COLUMNS} FROM entitlements WHERE entitlement_id = $1", entitlement_id
        )
        if row is None:
            raise NotFound("entitlement", entitlement_id)
        return _entitlement(row)

    async def list_entitlements(
        self,
        *,
        guest_id: str | None,
        party_id: str | None,
        kinds: Sequence[int],
        current_only: bool,
        now: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[EntitlementRecord]:
        args: list[Any] = []
        where: list[str] = []
        if guest_id is not None:
            args.append(guest_id)
            where.append(f"guest_id = ${len(args)}")
        else:
            args.append(party_id)
            where.append(f"party_id = ${len(args)}")
        if kinds:
            args.append(list(kinds))
            where.append(f"kind = ANY(${len(args)}::smallint[])")
        if current_only:
            args.append(now)
            where.append(f"status = 1 AND (valid_until IS NULL OR valid_until > ${len(args)})")
        if after is not None:
            args += [after[0], after[1]]
            where.append(f"(created_at, entitlement_id) > (${len(args) - 1}, ${len(args)}::uuid)")
        args.append(limit)
        rows = await self._pool.fetch(
            f"SELECT {_ENT_COLUMNS} FROM entitlements WHERE {' AND '.join(where)} "
            f"ORDER BY created_at, entitlement_id LIMIT ${len(args)}",
            *args,
        )
        return [_entitlement(r) for r in rows]

    async def change_entitlement(
        self,
        conn: asyncpg.Connection,
        entitlement_id: str,
        change: Callable[[EntitlementRecord], EntitlementRecord | None],
        at: datetime,
    ) -> EntitlementRecord:
        """Lock the entitlement, let `change` decide (None: leave it), write and
        publish the result."""
        row = await conn.fetchrow(
            f"SELECT {_ENT_COLUMNS} FROM entitlements WHERE entitlement_id = $1 FOR UPDATE",
            entitlement_id,
        )
        if row is None:
            raise NotFound("entitlement", entitlement_id)
        current = _entitlement(row)
        changed = change(current)
        if changed is None:
            return current
        row = await conn.fetchrow(
            "UPDATE entitlements SET status = $2, window_start = $3, window_end = $4, "
            "valid_until = $5, revoked_at = $6, revocation_reason = $7 "
            f"WHERE entitlement_id = $1 RETURNING {_ENT_COLUMNS}",
            entitlement_id,
            changed.status,
            changed.window_start,
            changed.window_end,
            changed.valid_until,
            changed.revoked_at,
            changed.revocation_reason,
        )
        updated = _entitlement(row)
        await self._bump_holder(conn, updated.guest_id, updated.party_id)
        kind = (
            pb.ENTITLEMENT_CHANGE_REVOKED
            if updated.status == REVOKED and current.status != REVOKED
            else pb.ENTITLEMENT_CHANGE_UPDATED
        )
        await self._entitlement_event(conn, kind, updated, at)
        return updated

    @contextlib.asynccontextmanager
    async def locked(self, what: str, ident: str) -> AsyncIterator[asyncpg.Connection]:
        """A transaction holding the lock of a guest's holder row or a party's
        wallet: the way forward when optimistic attempts keep meeting
        concurrent changes (two tills charging one family at once)."""
        sql = {
            "holder": "SELECT 1 FROM holders WHERE guest_id = $1 FOR UPDATE",
            "wallet": "SELECT 1 FROM wallets WHERE party_id = $1 FOR UPDATE",
        }[what]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(sql, ident)
            yield conn

    # --- taps ------------------------------------------------------------------------

    async def guest_state(
        self,
        guest_id: str,
        kinds: Sequence[int],
        attraction_id: str | None,
        room_id: str | None,
        conn: asyncpg.Connection | None = None,
    ) -> HeldState:
        """The guest's presence and the entitlements of these kinds (for this
        attraction or room). Without a connection the read shares a round trip
        with the concurrent taps' reads."""
        if conn is None:
            return await self._state_reads.submit((guest_id, kinds, attraction_id, room_id))
        rows = await conn.fetch(
            f"SELECT h.version, h.inside, h.presence_day, {_ENT_E} "
            "FROM (SELECT 1) AS one "
            "LEFT JOIN holders h ON h.guest_id = $1 "
            "LEFT JOIN entitlements e ON e.guest_id = $1 AND e.kind = ANY($2::smallint[]) "
            "AND e.status IN (1, 2) AND ($3::text IS NULL OR e.attraction_id = $3) "
            "AND ($4::text IS NULL OR e.room_id = $4)",
            guest_id,
            list(kinds),
            attraction_id,
            room_id,
        )
        first = rows[0]
        held = tuple(_entitlement(r) for r in rows if r["entitlement_id"] is not None)
        return HeldState(first["version"] or 0, bool(first["inside"]), first["presence_day"], held)

    async def _read_states(
        self, group: Sequence[tuple[str, Sequence[int], str | None, str | None]]
    ) -> list[HeldState]:
        # One statement, so one snapshot for every read of the group; each
        # read's kinds go as a bit mask (kinds are small enum numbers).
        rows = await self._pool.fetch(
            f"SELECT q.i, h.version, h.inside, h.presence_day, {_ENT_E} "
            "FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[]) "
            "WITH ORDINALITY AS q(guest_id, kinds, attraction_id, room_id, i) "
            "LEFT JOIN holders h ON h.guest_id = q.guest_id "
            "LEFT JOIN entitlements e ON e.guest_id = q.guest_id "
            "AND ((1::bigint << e.kind) & q.kinds) <> 0 AND e.status IN (1, 2) "
            "AND (q.attraction_id IS NULL OR e.attraction_id = q.attraction_id) "
            "AND (q.room_id IS NULL OR e.room_id = q.room_id)",
            [g[0] for g in group],
            [sum(1 << k for k in set(g[1])) for g in group],
            [g[2] for g in group],
            [g[3] for g in group],
        )
        firsts: dict[int, asyncpg.Record] = {}
        held: dict[int, list[EntitlementRecord]] = {}
        for r in rows:
            i = r["i"]
            firsts.setdefault(i, r)
            if r["entitlement_id"] is not None:
                held.setdefault(i, []).append(_entitlement(r))
        states = []
        for i in range(1, len(group) + 1):
            first = firsts[i]
            states.append(
                HeldState(
                    first["version"] or 0,
                    bool(first["inside"]),
                    first["presence_day"],
                    tuple(held.get(i, ())),
                )
            )
        return states

    async def record_tap(self, w: TapWrite, conn: asyncpg.Connection | None = None) -> int:
        """RECORDED, or REPLAYED when the key was used before; raises Stale.
        Without a connection, the tap joins the group commit of concurrent taps."""
        traceparent = _traceparent() if w.events else None
        if conn is None:
            status = await self._taps.submit((w, traceparent))
            if status == STALE:
                raise Stale
            if status != FAILED:
                return status
            # Something other than a lost race went wrong with this tap alone:
            # run it on its own to raise its error (or record it after all).
        try:
            with suppress_instrumentation():
                result = await (conn or self._pool).fetchval(
                    "SELECT record_tap($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
                    "$14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)",
                    *_tap_fields(w, traceparent),
                    self._channel,
                )
        except asyncpg.PostgresError as err:
            if _is_stale(err):
                raise Stale from None
            raise
        return int(result)

    async def _record_taps(self, group: Sequence[tuple[TapWrite, str | None]]) -> list[int]:
        # In guest order, so that two groups in flight lock holders in one order.
        order = sorted(range(len(group)), key=lambda i: group[i][0].guest_id or "")
        statuses = await self._pool.fetchval(
            "SELECT record_taps($1::tap_write[], $2)",
            [_tap_fields(*group[i]) for i in order],
            self._channel,
        )
        results = [0] * len(group)
        for i, status in zip(order, statuses, strict=True):
            results[i] = int(status)
        return results

    async def stored_reply(self, table: str, scope: str, key: str, digest: bytes) -> bytes:
        """The reply stored with a used key; refuses the key for another request."""
        assert table in ("taps", "charges")
        row = await self._pool.fetchrow(
            f"SELECT request_hash, reply FROM {table} WHERE scope = $1 AND idem_key = $2",
            scope,
            key,
        )
        if row is None:  # pragma: no cover - only a replayed key gets here
            raise FailedPrecondition("the key's request is unknown", reason="IDEMPOTENCY_LOST")
        if bytes(row["request_hash"]) != digest:
            raise FailedPrecondition(
                "idempotency key already used for a different request",
                reason="IDEMPOTENCY_KEY_REUSED",
                subject="idempotency_key",
            )
        return bytes(row["reply"])

    # --- wallets and the ledger --------------------------------------------------------

    async def ensure_accounts(self, accounts: Sequence[tuple[str, int]], currency: str) -> None:
        await self._pool.executemany(
            "INSERT INTO accounts (account_id, kind, currency) VALUES ($1, $2, $3) "
            "ON CONFLICT (account_id) DO NOTHING",
            [(account, kind, currency) for account, kind in accounts],
        )

    async def wallet_state(
        self,
        party_id: str,
        band_id: str | None,
        day: date,
        conn: asyncpg.Connection | None = None,
    ) -> WalletState:
        """What a charge decision reads. Without a connection the read shares a
        round trip with the concurrent charges' reads."""
        if conn is None:
            return await self._wallet_reads.submit((party_id, band_id, day))
        row = await conn.fetchrow(
            "SELECT w.version, w.balance_minor, w.pin_hash, w.pin_failures, w.pin_locked, "
            "r.charging_enabled, r.daily_limit_minor, s.spent_minor "
            "FROM (SELECT 1) AS one "
            "LEFT JOIN wallets w ON w.party_id = $1 "
            "LEFT JOIN band_rules r ON r.band_id = $2 "
            "LEFT JOIN band_spend s ON s.band_id = $2 AND s.day = $3",
            party_id,
            band_id,
            day,
        )
        return _wallet_state(row)

    async def _read_wallets(
        self, group: Sequence[tuple[str, str | None, date]]
    ) -> list[WalletState]:
        rows = await self._pool.fetch(
            "SELECT q.i, w.version, w.balance_minor, w.pin_hash, w.pin_failures, w.pin_locked, "
            "r.charging_enabled, r.daily_limit_minor, s.spent_minor "
            "FROM unnest($1::uuid[], $2::uuid[], $3::date[]) "
            "WITH ORDINALITY AS q(party_id, band_id, day, i) "
            "LEFT JOIN wallets w ON w.party_id = q.party_id "
            "LEFT JOIN band_rules r ON r.band_id = q.band_id "
            "LEFT JOIN band_spend s ON s.band_id = q.band_id AND s.day = q.day",
            [g[0] for g in group],
            [g[1] for g in group],
            [g[2] for g in group],
        )
        by_index = {r["i"]: r for r in rows}
        return [_wallet_state(by_index[i]) for i in range(1, len(group) + 1)]

    async def record_charge(self, w: ChargeWrite, conn: asyncpg.Connection | None = None) -> int:
        """RECORDED, or REPLAYED when the key was used before; raises Stale.
        Without a connection, the charge joins the group commit of concurrent
        charges."""
        traceparent = _traceparent() if w.event else None
        if conn is None:
            status = await self._charges.submit((w, traceparent))
            if status == STALE:
                raise Stale
            if status != FAILED:
                return status
        try:
            with suppress_instrumentation():
                result = await (conn or self._pool).fetchval(
                    "SELECT record_charge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
                    "$13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)",
                    *_charge_fields(w, traceparent),
                    self._channel,
                )
        except asyncpg.PostgresError as err:
            if _is_stale(err):
                raise Stale from None
            raise
        return int(result)

    async def _record_charges(self, group: Sequence[tuple[ChargeWrite, str | None]]) -> list[int]:
        # In party order, so that two groups in flight lock wallets in one order.
        order = sorted(range(len(group)), key=lambda i: group[i][0].party_id or "")
        statuses = await self._pool.fetchval(
            "SELECT record_charges($1::charge_write[], $2)",
            [_charge_fields(*group[i]) for i in order],
            self._channel,
        )
        results = [0] * len(group)
        for i, status in zip(order, statuses, strict=True):
            results[i] = int(status)
        return results

    async def _ensure_wallet(
        self, conn: asyncpg.Connection, party_id: str, currency: str, at: datetime
    ) -> None:
        await conn.execute(
            "INSERT INTO wallets (party_id, currency, updated_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (party_id) DO NOTHING",
            party_id,
            currency,
            at,
        )
        await conn.execute(
            "INSERT INTO accounts (account_id, kind, currency) VALUES ($1, 1, $2) "
            "ON CONFLICT (account_id) DO NOTHING",
            wallet_account(party_id),
            currency,
        )

    async def get_wallet(self, party_id: str) -> WalletRecord | None:
        row = await self._pool.fetchrow("SELECT * FROM wallets WHERE party_id = $1", party_id)
        if row is None:
            return None
        return WalletRecord(
            party_id=str(row["party_id"]),
            currency=row["currency"],
            balance_minor=row["balance_minor"],
            pin_set=row["pin_hash"] is not None,
            pin_locked=row["pin_locked"],
            updated_at=row["updated_at"],
        )

    async def _post(
        self,
        conn: asyncpg.Connection,
        *,
        entry_id: str,
        kind: int,
        party_id: str,
        postings: Sequence[Posting],
        currency: str,
        wallet_balance: int,
        at: datetime,
        charge_id: str | None = None,
        refund_id: str | None = None,
        reference: str = "",
    ) -> None:
        seq = await conn.fetchval(
            "INSERT INTO ledger_entries (entry_id, kind, party_id, charge_id, refund_id, "
            "reference, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
            entry_id,
            kind,
            party_id,
            charge_id,
            refund_id,
            reference,
            at,
        )
        wallet = wallet_account(party_id)
        await conn.execute(
            "INSERT INTO postings (entry_id, account_id, seq, amount_minor, currency, "
            "balance_after, occurred_at) "
            "SELECT $1, a, $2, amt, $3, CASE WHEN a = $4 THEN $5::bigint END, $6 "
            "FROM unnest($7::text[], $8::bigint[]) AS x(a, amt)",
            entry_id,
            seq,
            currency,
            wallet,
            wallet_balance,
            at,
            [p.account_id for p in postings],
            [p.amount_minor for p in postings],
        )

    async def top_up(
        self,
        conn: asyncpg.Connection,
        *,
        party_id: str,
        currency: str,
        postings: Sequence[Posting],
        amount_minor: int,
        reference: str,
        at: datetime,
    ) -> tuple[str, WalletRecord]:
        await self._ensure_wallet(conn, party_id, currency, at)
        balance = await conn.fetchval(
            "UPDATE wallets SET balance_minor = balance_minor + $2, version = version + 1, "
            "updated_at = $3 WHERE party_id = $1 RETURNING balance_minor",
            party_id,
            amount_minor,
            at,
        )
        entry_id = str(uuid.uuid4())
        await self._post(
            conn,
            entry_id=entry_id,
            kind=pb.LEDGER_ENTRY_KIND_TOP_UP,
            party_id=party_id,
            postings=postings,
            currency=currency,
            wallet_balance=balance,
            at=at,
            reference=reference,
        )
        wallet = await self._wallet_in(conn, party_id)
        return entry_id, wallet

    async def _wallet_in(self, conn: asyncpg.Connection, party_id: str) -> WalletRecord:
        row = await conn.fetchrow("SELECT * FROM wallets WHERE party_id = $1", party_id)
        return WalletRecord(
            party_id=str(row["party_id"]),
            currency=row["currency"],
            balance_minor=row["balance_minor"],
            pin_set=row["pin_hash"] is not None,
            pin_locked=row["pin_locked"],
            updated_at=row["updated_at"],
        )

    async def set_pin(
        self, party_id: str, pin_hash: bytes, currency: str, at: datetime
    ) -> WalletRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._ensure_wallet(conn, party_id, currency, at)
            await conn.execute(
                "UPDATE wallets SET pin_hash = $2, pin_failures = 0, pin_locked = false, "
                "version = version + 1, updated_at = $3 WHERE party_id = $1",
                party_id,
                pin_hash,
                at,
            )
            return await self._wallet_in(conn, party_id)

    async def set_up_party(
        self,
        conn: asyncpg.Connection,
        *,
        party_id: str,
        records: Sequence[EntitlementRecord],
        currency: str,
        top_up: TopUpWrite | None,
        pin_hash: bytes | None,
        at: datetime,
    ) -> tuple[list[EntitlementRecord], str]:
        """A party's visit set up in the caller's transaction: its entitlements
        (each with its entitlement_changed event), the top-up and the PIN.
        Returns the entitlements made and the top-up's ledger entry ("" if none)."""
        # In three round trips whatever the party's size: the rows, their holders
        # and their events, as create_entitlement writes them one by one.
        if records:
            await conn.executemany(
                f"INSERT INTO entitlements ({_ENT_COLUMNS}) VALUES ({_ENT_PARAMS})",
                [_entitlement_values(r) for r in records],
            )
            await conn.executemany(
                "INSERT INTO holders (guest_id, party_id) VALUES ($1, $2) "
                "ON CONFLICT (guest_id) DO UPDATE SET version = holders.version + 1",
                [(r.guest_id, r.party_id) for r in records],
            )
            await events.append_many(
                conn,
                self._schema,
                [
                    (
                        "entitlement_changed",
                        r.guest_id,
                        messages.entitlement_changed(
                            pb.ENTITLEMENT_CHANGE_CREATED, messages.entitlement_pb(r, at)
                        ),
                        at,
                    )
                    for r in records
                ],
            )
        created = list(records)
        entry_id = ""
        if top_up is not None:
            entry_id, _ = await self.top_up(
                conn,
                party_id=party_id,
                currency=currency,
                postings=top_up.postings,
                amount_minor=top_up.amount_minor,
                reference=top_up.reference,
                at=at,
            )
        if pin_hash is not None:
            if top_up is None:
                await self._ensure_wallet(conn, party_id, currency, at)
            await conn.execute(
                "UPDATE wallets SET pin_hash = $2, pin_failures = 0, pin_locked = false, "
                "version = version + 1, updated_at = $3 WHERE party_id = $1",
                party_id,
                pin_hash,
                at,
            )
        return created, entry_id

    async def set_band_rule(
        self, party_id: str, rule: BandRule, currency: str, at: datetime
    ) -> BandRule:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._ensure_wallet(conn, party_id, currency, at)
            # The wallet's version covers its bands' rules: a charge decided on
            # the old rule is refused and decided again.
            await conn.execute(
                "UPDATE wallets SET version = version + 1, updated_at = $2 WHERE party_id = $1",
                party_id,
                at,
            )
            await conn.execute(
                "INSERT INTO band_rules (band_id, party_id, guest_id, charging_enabled, "
                "daily_limit_minor, updated_at) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (band_id) DO UPDATE SET party_id = EXCLUDED.party_id, "
                "guest_id = EXCLUDED.guest_id, charging_enabled = EXCLUDED.charging_enabled, "
                "daily_limit_minor = EXCLUDED.daily_limit_minor, updated_at = EXCLUDED.updated_at",
                rule.band_id,
                party_id,
                rule.guest_id,
                rule.charging_enabled,
                rule.daily_limit_minor,
                at,
            )
        return rule

    async def band_rules(self, band_ids: Sequence[str]) -> dict[str, BandRule]:
        rows = await self._pool.fetch(
            "SELECT band_id, guest_id, charging_enabled, daily_limit_minor FROM band_rules "
            "WHERE band_id = ANY($1::uuid[])",
            list(band_ids),
        )
        return {
            str(r["band_id"]): BandRule(
                str(r["band_id"]),
                str(r["guest_id"]),
                r["charging_enabled"],
                r["daily_limit_minor"],
            )
            for r in rows
        }

    async def spent(self, band_ids: Sequence[str], day: date) -> dict[str, int]:
        rows = await self._pool.fetch(
            "SELECT band_id, spent_minor FROM band_spend WHERE band_id = ANY($1::uuid[]) "
            "AND day = $2",
            list(band_ids),
            day,
        )
        return {str(r["band_id"]): r["spent_minor"] for r in rows}

    async def get_charge(self, charge_id: str) -> ChargeRow:
        row = await self._pool.fetchrow(
            f"SELECT {_CHARGE_COLUMNS} FROM charges WHERE charge_id = $1", charge_id
        )
        if row is None:
            raise NotFound("charge", charge_id)
        return _charge(row)

    async def refund(
        self,
        conn: asyncpg.Connection,
        *,
        charge_id: str,
        decide: Callable[[ChargeRow], int],
        reason: str,
        at: datetime,
        by: str,
        postings: Callable[[ChargeRow, int], Sequence[Posting]],
    ) -> tuple[str, int, ChargeRow]:
        """Lock the charge, let `decide` authorize and size the refund, post it."""
        row = await conn.fetchrow(
            f"SELECT {_CHARGE_COLUMNS} FROM charges WHERE charge_id = $1 FOR UPDATE", charge_id
        )
        if row is None:
            raise NotFound("charge", charge_id)
        charge = _charge(row)
        amount = decide(charge)
        refund_id = str(uuid.uuid4())
        updated = await conn.fetchrow(
            "UPDATE charges SET refunded_minor = refunded_minor + $2 WHERE charge_id = $1 "
            f"RETURNING {_CHARGE_COLUMNS}",
            charge_id,
            amount,
        )
        balance = await conn.fetchval(
            "UPDATE wallets SET balance_minor = balance_minor + $2, version = version + 1, "
            "updated_at = $3 WHERE party_id = $1 RETURNING balance_minor",
            charge.party_id,
            amount,
            at,
        )
        if charge.band_id:
            await conn.execute(
                "UPDATE band_spend SET spent_minor = greatest(spent_minor - $3, 0) "
                "WHERE band_id = $1 AND day = $2",
                charge.band_id,
                charge.day,
                amount,
            )
        await conn.execute(
            "INSERT INTO refunds (refund_id, charge_id, amount_minor, reason, refunded_at, "
            "created_by) VALUES ($1, $2, $3, $4, $5, $6)",
            refund_id,
            charge_id,
            amount,
            reason,
            at,
            by,
        )
        await self._post(
            conn,
            entry_id=str(uuid.uuid4()),
            kind=pb.LEDGER_ENTRY_KIND_REFUND,
            party_id=charge.party_id,
            postings=postings(charge, amount),
            currency=charge.currency,
            wallet_balance=balance,
            at=at,
            charge_id=charge_id,
            refund_id=refund_id,
        )
        await self._event(
            conn,
            "refund_recorded",
            messages.refund_recorded(refund_id, charge, amount, at),
            at,
            charge.party_id,
        )
        return refund_id, amount, _charge(updated)

    async def statement(
        self,
        party_id: str,
        start: datetime | None,
        end: datetime | None,
        before_seq: int | None,
        limit: int,
    ) -> Statement:
        args: list[Any] = [wallet_account(party_id)]
        where = ["p.account_id = $1"]
        if start is not None:
            args.append(start)
            where.append(f"p.occurred_at >= ${len(args)}")
        if end is not None:
            args.append(end)
            where.append(f"p.occurred_at < ${len(args)}")
        if before_seq is not None:
            args.append(before_seq)
            where.append(f"p.seq < ${len(args)}")
        args.append(limit)
        rows = await self._pool.fetch(
            "SELECT p.entry_id, p.seq, e.kind, p.amount_minor, p.currency, p.balance_after, "
            "e.charge_id, c.merchant_id, c.items, c.guest_id, c.band_id, p.occurred_at "
            "FROM postings p JOIN ledger_entries e ON e.entry_id = p.entry_id "
            "LEFT JOIN charges c ON c.charge_id = e.charge_id "
            f"WHERE {' AND '.join(where)} ORDER BY p.seq DESC LIMIT ${len(args)}",
            *args,
        )
        balance = await self._pool.fetchval(
            "SELECT balance_minor FROM wallets WHERE party_id = $1", party_id
        )
        return Statement(
            [
                StatementRow(
                    entry_id=str(r["entry_id"]),
                    seq=r["seq"],
                    kind=r["kind"],
                    amount_minor=r["amount_minor"],
                    currency=r["currency"],
                    balance_after=r["balance_after"] or 0,
                    charge_id=_str(r["charge_id"]),
                    merchant_id=_str(r["merchant_id"]),
                    items=tuple(bytes(b) for b in r["items"] or ()),
                    guest_id=_str(r["guest_id"]),
                    band_id=_str(r["band_id"]),
                    occurred_at=r["occurred_at"],
                )
                for r in rows
            ],
            balance or 0,
        )

    # --- identity's changes ----------------------------------------------------------

    async def erase_guest(self, conn: asyncpg.Connection, guest_id: str, at: datetime) -> int:
        """Revoke what the erased guest held and forget their taps and presence.
        The ledger keeps its pseudonymous ids: the books must still balance."""
        rows = await conn.fetch(
            "UPDATE entitlements SET status = $2, revoked_at = $3, revocation_reason = $4 "
            f"WHERE guest_id = $1 AND status = $5 RETURNING {_ENT_COLUMNS}",
            guest_id,
            REVOKED,
            at,
            pb.REVOCATION_REASON_GUEST_ERASED,
            ACTIVE,
        )
        for row in rows:
            await self._entitlement_event(
                conn, pb.ENTITLEMENT_CHANGE_REVOKED, _entitlement(row), at
            )
        await conn.execute("DELETE FROM taps WHERE guest_id = $1", guest_id)
        await conn.execute("DELETE FROM holders WHERE guest_id = $1", guest_id)
        await conn.execute("DELETE FROM band_rules WHERE guest_id = $1", guest_id)
        return len(rows)

    async def move_to_party(
        self, conn: asyncpg.Connection, party_id: str, guest_ids: Sequence[str]
    ) -> None:
        """Members who joined another party take their entitlements along."""
        for table in ("entitlements", "holders", "band_rules"):
            await conn.execute(
                f"UPDATE {table} SET party_id = $1 WHERE guest_id = ANY($2::uuid[]) "
                "AND party_id <> $1",
                party_id,
                list(guest_ids),
            )
