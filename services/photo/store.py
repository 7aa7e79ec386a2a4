"""Photo's SQL: every read and write of its schema, each write with its events
in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import asyncpg

from services.photo import messages as ev
from services.photo.captures import CheckedCapture
from services.photo.records import (
    ACCEPTED,
    AMBIGUOUS,
    MATCHED,
    NO_MATCH,
    OFFERED,
    PENDING,
    PURCHASE_APPROVED,
    PURCHASE_DECLINED,
    PURCHASE_PENDING,
    PURCHASE_REFUNDED,
    REJECTED,
    CapturedEvent,
    GuestInfo,
    LinkRecord,
    PhotoRecord,
    PhotoView,
    PurchaseRecord,
    Rider,
    SessionRecord,
    StatsRow,
    SuggestionRecord,
)
from services.platform import events, idempotency
from services.platform.errors import FailedPrecondition, NotFound
from services.platform.idempotency import Idem
from venue.photo.v1 import photo_pb2 as pb

SCHEMA = "photo"
T = TypeVar("T")

_PHOTO = (
    "p.photo_id, p.camera_id, p.capture_id, p.device_id, p.source, p.attraction_id, "
    "p.captured_at, p.vehicle_id, p.row_number, p.image_uri, p.image_sha256, p.match_state"
)
# The day a photo belongs to (packages are per venue day): $tz is the venue's zone.
_PHOTO_DAY = "(p.captured_at AT TIME ZONE {tz})::date"

BOARDING = pb.LINK_SOURCE_BOARDING_MATCH
RIDE_CAMERA = pb.CAPTURE_SOURCE_RIDE_CAMERA


def _photo(row: asyncpg.Record) -> PhotoRecord:
    return PhotoRecord(
        photo_id=str(row["photo_id"]),
        camera_id=row["camera_id"],
        capture_id=row["capture_id"],
        device_id=row["device_id"],
        source=row["source"],
        attraction_id=row["attraction_id"],
        captured_at=row["captured_at"],
        vehicle_id=row["vehicle_id"],
        row=row["row_number"],
        image_uri=row["image_uri"],
        image_sha256=row["image_sha256"],
        match_state=row["match_state"],
    )


def _purchase(row: asyncpg.Record) -> PurchaseRecord:
    return PurchaseRecord(
        purchase_id=str(row["purchase_id"]),
        scope=row["scope"],
        key=row["key"],
        request_hash=bytes(row["request_hash"]),
        party_id=str(row["party_id"]),
        guest_id=str(row["guest_id"]) if row["guest_id"] else None,
        photo_id=str(row["photo_id"]) if row["photo_id"] else None,
        package_date=row["package_date"],
        price_minor=row["price_minor"],
        currency=row["currency"],
        charge_key=row["charge_key"],
        charged_at=row["charged_at"],
        state=row["state"],
        charge_id=row["charge_id"],
        decline_reason=row["decline_reason"],
        display_message=row["display_message"],
        decided_at=row["decided_at"],
    )


def _session(row: asyncpg.Record) -> SessionRecord:
    return SessionRecord(
        session_id=str(row["session_id"]),
        device_id=row["device_id"],
        camera_id=row["camera_id"],
        guest_id=str(row["guest_id"]) if row["guest_id"] else None,
        party_id=str(row["party_id"]) if row["party_id"] else None,
        started_at=row["started_at"],
        expires_at=row["expires_at"],
    )


@dataclass(frozen=True)
class IngestResult:
    # One per capture, in order: (photo_id, CaptureOutcome, CaptureRejectReason).
    acks: list[tuple[str, int, int]]
    # New photos, for the linker.
    captured: list[CapturedEvent]


@dataclass(frozen=True)
class LinkingState:
    """What the linker rebuilds its memory from after a restart."""

    taps: list[tuple[str, str, str, str, datetime]]  # tap_id, point, guest, party, at
    # photo_id, camera, captured_at, row, match_state, boarding riders, first, last
    photos: list[
        tuple[str, str, datetime, int, int, frozenset[str], datetime | None, datetime | None]
    ]
    # camera -> (captured_at, first, last) of its latest matched photos
    samples: dict[str, list[tuple[datetime, datetime, datetime]]]


class PhotoStore:
    def __init__(self, pool: asyncpg.Pool, timezone: str) -> None:
        self._pool = pool
        self._tz = timezone

    async def idempotent(
        self,
        idem: Idem | None,
        parse: Callable[[bytes], T],
        serialize: Callable[[T], bytes],
        work: Callable[[asyncpg.Connection], Awaitable[T]],
    ) -> T:
        """Run `work` in a transaction, once per idempotency key."""
        return await idempotency.once(self._pool, idem, parse, serialize, work)

    # --- ingest --------------------------------------------------------------

    async def ingest(
        self,
        device_id: str,
        captures: Sequence[CheckedCapture | None],
        linkable: frozenset[str],
        now: datetime,
    ) -> IngestResult:
        """Store a batch (None marks a capture refused by the checks). A capture
        already stored, by id or by image checksum, is a duplicate; by id with
        other content, a conflicting duplicate."""
        wanted = [c for c in captures if c is not None]
        acks: list[tuple[str, int, int]] = []
        captured: list[CapturedEvent] = []
        async with self._pool.acquire() as conn, conn.transaction():
            by_id = await self._existing(conn, wanted)
            fresh: dict[tuple[str, str], PhotoRecord] = {}
            rows: list[tuple[str, int, int]] = []
            for capture in captures:
                if capture is None:
                    rows.append(("", 0, 0))
                    continue
                ident = (capture.camera.camera_id, capture.capture_id)
                known = by_id.get(ident) or fresh.get(ident)
                if known is not None:
                    same = _content(known) == capture.content()
                    rows.append(
                        (known.photo_id, pb.CAPTURE_OUTCOME_DUPLICATE, 0)
                        if same
                        else (
                            "",
                            pb.CAPTURE_OUTCOME_REJECTED,
                            pb.CAPTURE_REJECT_REASON_CONFLICTING_DUPLICATE,
                        )
                    )
                    continue
                twin = await conn.fetchrow(
                    f"SELECT {_PHOTO} FROM photos p WHERE camera_id = $1 AND image_sha256 = $2 "
                    "LIMIT 1",
                    capture.camera.camera_id,
                    capture.image_sha256,
                )
                if twin is not None:
                    rows.append((str(twin["photo_id"]), pb.CAPTURE_OUTCOME_DUPLICATE, 0))
                    continue
                photo = await self._insert_photo(conn, device_id, capture, linkable, now)
                if photo is None:  # a concurrent batch stored it first
                    raced = await self._existing(conn, [capture])
                    known = raced[ident]
                    same = _content(known) == capture.content()
                    rows.append(
                        (known.photo_id, pb.CAPTURE_OUTCOME_DUPLICATE, 0)
                        if same
                        else (
                            "",
                            pb.CAPTURE_OUTCOME_REJECTED,
                            pb.CAPTURE_REJECT_REASON_CONFLICTING_DUPLICATE,
                        )
                    )
                    continue
                fresh[ident] = photo
                rows.append((photo.photo_id, pb.CAPTURE_OUTCOME_ACCEPTED, 0))
                await events.append(
                    conn,
                    SCHEMA,
                    "photo_captured",
                    ev.photo_captured(photo),
                    now,
                    photo.attraction_id,
                )
                if photo.source == pb.CAPTURE_SOURCE_PHOTOGRAPHER:
                    await self._link_to_session(conn, photo, now)
                captured.append(
                    CapturedEvent(
                        photo.photo_id,
                        photo.camera_id,
                        photo.captured_at,
                        photo.row,
                        photo.match_state == PENDING,
                    )
                )
            acks = rows
        return IngestResult(acks, captured)

    async def _existing(
        self, conn: asyncpg.Connection, captures: Sequence[CheckedCapture]
    ) -> dict[tuple[str, str], PhotoRecord]:
        if not captures:
            return {}
        rows = await conn.fetch(
            f"SELECT {_PHOTO} FROM photos p JOIN unnest($1::text[], $2::text[]) AS k(cam, cid) "
            "ON p.camera_id = k.cam AND p.capture_id = k.cid",
            [c.camera.camera_id for c in captures],
            [c.capture_id for c in captures],
        )
        return {(r["camera_id"], r["capture_id"]): _photo(r) for r in rows}

    async def _insert_photo(
        self,
        conn: asyncpg.Connection,
        device_id: str,
        capture: CheckedCapture,
        linkable: frozenset[str],
        now: datetime,
    ) -> PhotoRecord | None:
        camera = capture.camera
        state = PENDING if camera.camera_id in linkable else NO_MATCH
        row = await conn.fetchrow(
            "INSERT INTO photos (photo_id, camera_id, capture_id, device_id, source, "
            "attraction_id, captured_at, vehicle_id, row_number, image_uri, image_sha256, "
            "match_state, ingested_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
            f"ON CONFLICT (camera_id, capture_id) DO NOTHING RETURNING {_PHOTO.replace('p.', '')}",
            uuid.uuid4(),
            camera.camera_id,
            capture.capture_id,
            device_id,
            camera.source,
            camera.attraction_id,
            capture.captured_at,
            capture.vehicle_id,
            capture.row,
            capture.image_uri,
            capture.image_sha256,
            state,
            now,
        )
        return None if row is None else _photo(row)

    # --- links ---------------------------------------------------------------

    async def _link(
        self,
        conn: asyncpg.Connection,
        photo: PhotoRecord,
        party_id: str,
        guest_ids: Sequence[str],
        source: int,
        now: datetime,
        explicit: bool,
    ) -> list[str] | None:
        """Put a photo in a party's account. An automatic link never undoes the
        party's removal of it; an explicit one (a tap, a claim, a "yes") does.
        Returns the guests newly linked (with an event), or None if refused."""
        current = await conn.fetchrow(
            "SELECT removed_at FROM photo_links WHERE photo_id = $1 AND party_id = $2 FOR UPDATE",
            photo.photo_id,
            party_id,
        )
        fresh_link = current is None or current["removed_at"] is not None
        if current is None:
            await conn.execute(
                "INSERT INTO photo_links (photo_id, party_id, source, linked_at) "
                "VALUES ($1, $2, $3, $4)",
                photo.photo_id,
                party_id,
                source,
                now,
            )
        elif current["removed_at"] is not None:
            if not explicit:
                return None
            await conn.execute(
                "UPDATE photo_links SET source = $3, linked_at = $4, removed_at = NULL, "
                "removed_reason = 0 WHERE photo_id = $1 AND party_id = $2",
                photo.photo_id,
                party_id,
                source,
                now,
            )
        added = await conn.fetch(
            "INSERT INTO photo_link_guests (photo_id, party_id, guest_id) "
            "SELECT $1, $2, g FROM unnest($3::uuid[]) AS g "
            "ON CONFLICT DO NOTHING RETURNING guest_id",
            photo.photo_id,
            party_id,
            list(guest_ids),
        )
        new = [str(r["guest_id"]) for r in added]
        if fresh_link or new:
            await events.append(
                conn,
                SCHEMA,
                "photo_linked",
                ev.photo_linked(photo, party_id, new, source),
                now,
                photo.attraction_id,
            )
        return new

    async def _link_to_session(
        self, conn: asyncpg.Connection, photo: PhotoRecord, now: datetime
    ) -> None:
        session = await conn.fetchrow(
            "SELECT * FROM photographer_sessions WHERE device_id = $1 AND started_at <= $2 "
            "ORDER BY started_at DESC LIMIT 1",
            photo.device_id,
            photo.captured_at,
        )
        if (
            session is None
            or session["party_id"] is None
            or photo.captured_at >= session["expires_at"]
        ):
            return
        await self._link(
            conn,
            photo,
            str(session["party_id"]),
            [str(session["guest_id"])],
            pb.LINK_SOURCE_PHOTOGRAPHER_TAP,
            now,
            explicit=True,
        )
        await conn.execute(
            "UPDATE photos SET match_state = $2 WHERE photo_id = $1", photo.photo_id, MATCHED
        )

    async def guests(
        self, conn: asyncpg.Connection | None, guest_ids: Sequence[str]
    ) -> dict[str, GuestInfo]:
        rows = await (conn or self._pool).fetch(
            "SELECT guest_id, party_id, photo_linking, erased FROM guests "
            "WHERE guest_id = ANY($1::uuid[])",
            list(guest_ids),
        )
        return {
            str(r["guest_id"]): GuestInfo(
                str(r["guest_id"]),
                str(r["party_id"]) if r["party_id"] else None,
                r["photo_linking"],
                r["erased"],
            )
            for r in rows
        }

    async def apply_decision(
        self,
        photo_id: str,
        state: int,
        riders: Sequence[Rider],
        reason: str,
        span: tuple[datetime, datetime] | None,
        now: datetime,
    ) -> list[str] | None:
        """Record the linker's decision on a ride photo. MATCHED links every
        rider with photo linking on (by party); AMBIGUOUS offers the photo to
        each candidate party with such a member. Returns the riders identity's
        stream has not told us about yet (to try again), or None if the photo
        is gone (deleted meanwhile)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_PHOTO} FROM photos p WHERE photo_id = $1 FOR UPDATE", photo_id
            )
            if row is None:
                return None
            photo = _photo(row)
            known = await self.guests(conn, [r.guest_id for r in riders])
            unknown = sorted({r.guest_id for r in riders} - known.keys())
            parties: dict[str, list[str]] = {}
            boarded: dict[str, datetime] = {}
            for rider in riders:
                guest = known.get(rider.guest_id)
                if guest is None or guest.erased or not guest.photo_linking:
                    continue
                party = guest.party_id or rider.party_id
                members = parties.setdefault(party, [])
                if rider.guest_id not in members:
                    members.append(rider.guest_id)
                boarded[party] = min(boarded.get(party, rider.at), rider.at)
            if state == MATCHED:
                for party, guest_ids in parties.items():
                    if await self._refused(conn, photo_id, party):
                        continue
                    await self._link(conn, photo, party, guest_ids, BOARDING, now, explicit=False)
                await conn.execute(
                    "UPDATE photos SET match_state = $2, match_reason = $3, match_first = $4, "
                    "match_last = $5 WHERE photo_id = $1",
                    photo_id,
                    MATCHED,
                    reason,
                    span[0] if span else None,
                    span[1] if span else None,
                )
                return unknown
            if photo.match_state == MATCHED:
                return []
            await conn.execute(
                "UPDATE photos SET match_state = $2, match_reason = $3 WHERE photo_id = $1",
                photo_id,
                state,
                reason,
            )
            if state == AMBIGUOUS:
                for party, guest_ids in parties.items():
                    await conn.execute(
                        "INSERT INTO suggestions (suggestion_id, photo_id, party_id, guest_ids, "
                        "boarded_at, state, offered_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                        "ON CONFLICT (photo_id, party_id) DO UPDATE SET guest_ids = "
                        "EXCLUDED.guest_ids WHERE suggestions.state = $6",
                        uuid.uuid4(),
                        photo_id,
                        party,
                        guest_ids,
                        boarded[party],
                        OFFERED,
                        now,
                    )
            return unknown

    async def _refused(self, conn: asyncpg.Connection, photo_id: str, party_id: str) -> bool:
        """The party removed the photo or answered "not us"."""
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM photo_links WHERE photo_id = $1 AND party_id = $2 "
                "AND removed_at IS NOT NULL) OR EXISTS (SELECT 1 FROM suggestions "
                "WHERE photo_id = $1 AND party_id = $2 AND state = $3)",
                photo_id,
                party_id,
                REJECTED,
            )
        )

    async def latest_tap(self) -> datetime | None:
        """The venue time of the latest boarding tap kept: how far the tap
        stream had got before a restart."""
        found: datetime | None = await self._pool.fetchval(
            "SELECT max(tapped_at) FROM boarding_taps"
        )
        return found

    async def linking_state(self, since: datetime, per_camera: int) -> LinkingState:
        taps = await self._pool.fetch(
            "SELECT tap_id, access_point_id, guest_id, party_id, tapped_at FROM boarding_taps "
            "WHERE tapped_at >= $1 ORDER BY tapped_at",
            since,
        )
        photos = await self._pool.fetch(
            "SELECT p.photo_id, p.camera_id, p.captured_at, p.row_number, p.match_state, "
            "p.match_first, p.match_last, ARRAY(SELECT g.guest_id::text FROM photo_link_guests g "
            "JOIN photo_links l USING (photo_id, party_id) WHERE g.photo_id = p.photo_id "
            "AND l.source = $3) AS riders "
            "FROM photos p WHERE p.source = $2 AND (p.captured_at >= $1 OR p.match_state = $4) "
            "ORDER BY p.captured_at",
            since,
            RIDE_CAMERA,
            BOARDING,
            PENDING,
        )
        samples = await self._pool.fetch(
            "SELECT camera_id, captured_at, match_first, match_last FROM ("
            "SELECT camera_id, captured_at, match_first, match_last, row_number() OVER "
            "(PARTITION BY camera_id ORDER BY captured_at DESC) AS n FROM photos "
            "WHERE match_state = $1 AND match_first IS NOT NULL) s WHERE n <= $2",
            MATCHED,
            per_camera,
        )
        by_camera: dict[str, list[tuple[datetime, datetime, datetime]]] = {}
        for r in samples:
            by_camera.setdefault(r["camera_id"], []).append(
                (r["captured_at"], r["match_first"], r["match_last"])
            )
        return LinkingState(
            [
                (
                    r["tap_id"],
                    r["access_point_id"],
                    str(r["guest_id"]),
                    str(r["party_id"]),
                    r["tapped_at"],
                )
                for r in taps
            ],
            [
                (
                    str(r["photo_id"]),
                    r["camera_id"],
                    r["captured_at"],
                    r["row_number"],
                    r["match_state"],
                    frozenset(r["riders"]),
                    r["match_first"],
                    r["match_last"],
                )
                for r in photos
            ],
            by_camera,
        )

    # --- what photo follows of access and identity --------------------------

    async def record_tap(
        self,
        conn: asyncpg.Connection,
        tap_id: str,
        access_point_id: str,
        guest_id: str,
        party_id: str,
        tapped_at: datetime,
    ) -> bool:
        """Keep a boarding tap; False if seen before or the guest was erased."""
        erased = await conn.fetchval("SELECT erased FROM guests WHERE guest_id = $1", guest_id)
        if erased:
            return False
        return (
            await conn.fetchval(
                "INSERT INTO boarding_taps "
                "(tap_id, access_point_id, guest_id, party_id, tapped_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
                tap_id,
                access_point_id,
                guest_id,
                party_id,
                tapped_at,
            )
            is not None
        )

    async def upsert_guest(
        self,
        conn: asyncpg.Connection,
        guest_id: str,
        party_id: str | None,
        photo_linking: bool | None,
    ) -> None:
        await conn.execute(
            "INSERT INTO guests (guest_id, party_id, photo_linking) "
            "VALUES ($1, $2, coalesce($3, false)) ON CONFLICT (guest_id) DO UPDATE SET "
            "party_id = coalesce(EXCLUDED.party_id, guests.party_id), "
            "photo_linking = coalesce($3, guests.photo_linking) WHERE NOT guests.erased",
            guest_id,
            party_id,
            photo_linking,
        )

    async def party_changed(
        self, conn: asyncpg.Connection, party_id: str, members: Sequence[str]
    ) -> None:
        for guest_id in members:
            await self.upsert_guest(conn, guest_id, party_id, None)

    async def erase_guest(self, conn: asyncpg.Connection, guest_id: str) -> None:
        """Remove a guest from photo: their links (and a party's link that showed
        only them), suggestions, taps and sessions; their purchases keep only
        the party."""
        touched = await conn.fetch(
            "DELETE FROM photo_link_guests WHERE guest_id = $1 RETURNING photo_id, party_id",
            guest_id,
        )
        if touched:
            await conn.execute(
                "DELETE FROM photo_links l USING unnest($1::uuid[], $2::uuid[]) AS t(ph, pa) "
                "WHERE l.photo_id = t.ph AND l.party_id = t.pa AND l.removed_at IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM photo_link_guests g WHERE g.photo_id = l.photo_id "
                "AND g.party_id = l.party_id)",
                [r["photo_id"] for r in touched],
                [r["party_id"] for r in touched],
            )
        await conn.execute(
            "UPDATE suggestions SET guest_ids = array_remove(guest_ids, $1::uuid) "
            "WHERE $1::uuid = ANY(guest_ids)",
            guest_id,
        )
        await conn.execute("DELETE FROM suggestions WHERE cardinality(guest_ids) = 0")
        await conn.execute("DELETE FROM boarding_taps WHERE guest_id = $1", guest_id)
        await conn.execute(
            "UPDATE photographer_sessions SET guest_id = NULL, party_id = NULL WHERE guest_id = $1",
            guest_id,
        )
        await conn.execute("UPDATE purchases SET guest_id = NULL WHERE guest_id = $1", guest_id)
        await conn.execute(
            "INSERT INTO guests (guest_id, party_id, photo_linking, erased) "
            "VALUES ($1, NULL, false, true) ON CONFLICT (guest_id) DO UPDATE SET "
            "party_id = NULL, photo_linking = false, erased = true",
            guest_id,
        )

    # --- photographers -------------------------------------------------------

    async def start_session(
        self,
        conn: asyncpg.Connection,
        device_id: str,
        camera_id: str,
        guest_id: str | None,
        party_id: str | None,
        started_at: datetime,
        expires_at: datetime,
        now: datetime,
    ) -> tuple[SessionRecord, list[CapturedEvent]]:
        """A photographer's tap: its session, and the device's unlinked photos
        it covers that arrived before the tap did."""
        row = await conn.fetchrow(
            "INSERT INTO photographer_sessions (session_id, device_id, camera_id, guest_id, "
            "party_id, started_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
            uuid.uuid4(),
            device_id,
            camera_id,
            guest_id,
            party_id,
            started_at,
            expires_at,
        )
        session = _session(row)
        await self._supersede(conn, device_id, started_at, party_id, now)
        if party_id is None or guest_id is None:
            return session, []
        until = await conn.fetchval(
            "SELECT min(started_at) FROM photographer_sessions WHERE device_id = $1 "
            "AND started_at > $2",
            device_id,
            started_at,
        )
        end = min(expires_at, until) if until is not None else expires_at
        rows = await conn.fetch(
            f"SELECT {_PHOTO} FROM photos p WHERE device_id = $1 AND captured_at >= $2 "
            "AND captured_at < $3 AND source = $4 AND NOT EXISTS "
            "(SELECT 1 FROM photo_links l WHERE l.photo_id = p.photo_id "
            "AND (l.removed_at IS NULL OR l.party_id = $5)) FOR UPDATE",
            device_id,
            started_at,
            end,
            pb.CAPTURE_SOURCE_PHOTOGRAPHER,
            party_id,
        )
        linked = []
        for r in rows:
            photo = _photo(r)
            await self._link(
                conn,
                photo,
                party_id,
                [guest_id],
                pb.LINK_SOURCE_PHOTOGRAPHER_TAP,
                now,
                explicit=True,
            )
            await conn.execute(
                "UPDATE photos SET match_state = $2 WHERE photo_id = $1", photo.photo_id, MATCHED
            )
            linked.append(
                CapturedEvent(photo.photo_id, photo.camera_id, photo.captured_at, photo.row, False)
            )
        return session, linked

    async def _supersede(
        self,
        conn: asyncpg.Connection,
        device_id: str,
        started_at: datetime,
        party_id: str | None,
        now: datetime,
    ) -> None:
        """A tap that arrived after photos taken since it (a device sends its
        captures in batches): the session before it gave them to its own party.
        Taken back, so the tap's venue time decides and not the arrival order."""
        until = await conn.fetchval(
            "SELECT min(started_at) FROM photographer_sessions WHERE device_id = $1 "
            "AND started_at > $2",
            device_id,
            started_at,
        )
        links = await conn.fetch(
            "SELECT l.photo_id, l.party_id FROM photo_links l JOIN photos p USING (photo_id) "
            "WHERE p.device_id = $1 AND p.source = $2 AND p.captured_at >= $3 "
            "AND ($4::timestamptz IS NULL OR p.captured_at < $4) "
            "AND l.source = $5 AND l.removed_at IS NULL "
            "AND ($6::uuid IS NULL OR l.party_id <> $6) FOR UPDATE OF l",
            device_id,
            pb.CAPTURE_SOURCE_PHOTOGRAPHER,
            started_at,
            until,
            pb.LINK_SOURCE_PHOTOGRAPHER_TAP,
            party_id,
        )
        for link in links:
            guests = await conn.fetch(
                "DELETE FROM photo_link_guests WHERE photo_id = $1 AND party_id = $2 "
                "RETURNING guest_id",
                link["photo_id"],
                link["party_id"],
            )
            await conn.execute(
                "UPDATE photo_links SET removed_at = $3, removed_reason = $4 "
                "WHERE photo_id = $1 AND party_id = $2",
                link["photo_id"],
                link["party_id"],
                now,
                pb.UNLINK_REASON_SUPERSEDED,
            )
            await conn.execute(
                "UPDATE photos SET match_state = $2 WHERE photo_id = $1 AND NOT EXISTS "
                "(SELECT 1 FROM photo_links l WHERE l.photo_id = $1 AND l.removed_at IS NULL)",
                link["photo_id"],
                NO_MATCH,
            )
            await events.append(
                conn,
                SCHEMA,
                "photo_unlinked",
                ev.photo_unlinked(
                    str(link["photo_id"]),
                    str(link["party_id"]),
                    [str(g["guest_id"]) for g in guests],
                    pb.UNLINK_REASON_SUPERSEDED,
                ),
                now,
                await conn.fetchval(
                    "SELECT attraction_id FROM photos WHERE photo_id = $1", link["photo_id"]
                ),
            )

    # --- reading photos ------------------------------------------------------

    async def get_photo(self, photo_id: str) -> PhotoRecord:
        row = await self._pool.fetchrow(
            f"SELECT {_PHOTO} FROM photos p WHERE photo_id = $1", photo_id
        )
        if row is None:
            raise NotFound("photo", photo_id)
        return _photo(row)

    async def photo_for_update(self, conn: asyncpg.Connection, photo_id: str) -> PhotoRecord | None:
        row = await conn.fetchrow(
            f"SELECT {_PHOTO} FROM photos p WHERE photo_id = $1 FOR UPDATE", photo_id
        )
        return None if row is None else _photo(row)

    async def view(self, photo_id: str, party_id: str | None) -> PhotoView:
        """One photo with the links the asker may see: one party's, or all."""
        photo = await self.get_photo(photo_id)
        rows = await self._pool.fetch(
            "SELECT l.party_id, l.source, l.linked_at, ARRAY(SELECT g.guest_id::text FROM "
            "photo_link_guests g WHERE g.photo_id = l.photo_id AND g.party_id = l.party_id "
            "ORDER BY g.guest_id) AS guest_ids FROM photo_links l WHERE l.photo_id = $1 "
            "AND l.removed_at IS NULL ORDER BY l.linked_at",
            photo_id,
        )
        links = tuple(
            LinkRecord(str(r["party_id"]), r["source"], r["linked_at"], tuple(r["guest_ids"]))
            for r in rows
        )
        parties = [link.party_id for link in links]
        mine = tuple(link for link in links if party_id is None or link.party_id == party_id)
        buyers = [party_id] if party_id is not None else parties
        purchased = await self._purchased(photo, buyers)
        any_purchase = await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM purchases WHERE photo_id = $1 AND state = $2)",
            photo_id,
            PURCHASE_APPROVED,
        )
        return PhotoView(photo, mine, purchased, bool(links) or bool(any_purchase))

    async def _purchased(self, photo: PhotoRecord, parties: Sequence[str]) -> bool:
        if not parties:
            return False
        return bool(
            await self._pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM purchases WHERE party_id = ANY($1::uuid[]) "
                "AND state = $2 AND (photo_id = $3 OR package_date = "
                "($4::timestamptz AT TIME ZONE $5)::date))",
                list(parties),
                PURCHASE_APPROVED,
                photo.photo_id,
                photo.captured_at,
                self._tz,
            )
        )

    async def party_photos(
        self,
        party_id: str,
        attraction_id: str,
        start: datetime | None,
        end: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[PhotoView]:
        args: list[Any] = [party_id, PURCHASE_APPROVED, self._tz]
        sql = (
            f"SELECT {_PHOTO}, l.party_id, l.source AS link_source, l.linked_at, "
            "ARRAY(SELECT g.guest_id::text FROM photo_link_guests g WHERE g.photo_id = p.photo_id "
            "AND g.party_id = l.party_id ORDER BY g.guest_id) AS guest_ids, "
            "EXISTS (SELECT 1 FROM purchases u WHERE u.party_id = l.party_id AND u.state = $2 "
            f"AND (u.photo_id = p.photo_id OR u.package_date = {_PHOTO_DAY.format(tz='$3')})) "
            "AS purchased FROM photo_links l JOIN photos p USING (photo_id) "
            "WHERE l.party_id = $1 AND l.removed_at IS NULL "
        )
        if attraction_id:
            args.append(attraction_id)
            sql += f"AND p.attraction_id = ${len(args)} "
        if start is not None:
            args.append(start)
            sql += f"AND p.captured_at >= ${len(args)} "
        if end is not None:
            args.append(end)
            sql += f"AND p.captured_at < ${len(args)} "
        if after is not None:
            args += [after[0], after[1]]
            sql += f"AND (p.captured_at, p.photo_id) < (${len(args) - 1}, ${len(args)}::uuid) "
        args.append(limit)
        sql += f"ORDER BY p.captured_at DESC, p.photo_id DESC LIMIT ${len(args)}"
        rows = await self._pool.fetch(sql, *args)
        return [
            PhotoView(
                _photo(r),
                (
                    LinkRecord(
                        str(r["party_id"]), r["link_source"], r["linked_at"], tuple(r["guest_ids"])
                    ),
                ),
                r["purchased"],
                True,
            )
            for r in rows
        ]

    async def kiosk_photos(
        self, attraction_id: str, since: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[PhotoRecord]:
        args: list[Any] = [attraction_id, since]
        sql = f"SELECT {_PHOTO} FROM photos p WHERE attraction_id = $1 AND captured_at >= $2 "
        if after is not None:
            args += [after[0], after[1]]
            sql += "AND (captured_at, photo_id) < ($3, $4::uuid) "
        args.append(limit)
        sql += f"ORDER BY captured_at DESC, photo_id DESC LIMIT ${len(args)}"
        return [_photo(r) for r in await self._pool.fetch(sql, *args)]

    # --- claims, suggestions, unlinking --------------------------------------

    async def claim(
        self,
        conn: asyncpg.Connection,
        photo: PhotoRecord,
        party_id: str,
        guest_id: str,
        source: int,
        now: datetime,
    ) -> bool:
        """Link a photo a guest claimed; False if the party already had it."""
        had = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM photo_links WHERE photo_id = $1 AND party_id = $2 "
            "AND removed_at IS NULL)",
            photo.photo_id,
            party_id,
        )
        await self._link(conn, photo, party_id, [guest_id], source, now, explicit=True)
        await conn.execute(
            "UPDATE suggestions SET state = $3, answered_at = $4 WHERE photo_id = $1 "
            "AND party_id = $2 AND state = $5",
            photo.photo_id,
            party_id,
            ACCEPTED,
            now,
            OFFERED,
        )
        return not had

    async def suggestions(
        self, party_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[SuggestionRecord]:
        args: list[Any] = [party_id, OFFERED]
        sql = (
            f"SELECT s.suggestion_id, s.party_id, s.guest_ids, s.boarded_at, s.state, {_PHOTO} "
            "FROM suggestions s JOIN photos p USING (photo_id) WHERE s.party_id = $1 "
            "AND s.state = $2 AND NOT EXISTS (SELECT 1 FROM photo_links l "
            "WHERE l.photo_id = s.photo_id AND l.party_id = s.party_id) "
        )
        if after is not None:
            args += [after[0], after[1]]
            sql += "AND (s.boarded_at, s.suggestion_id) < ($3, $4::uuid) "
        args.append(limit)
        sql += f"ORDER BY s.boarded_at DESC, s.suggestion_id DESC LIMIT ${len(args)}"
        return [_suggestion(r) for r in await self._pool.fetch(sql, *args)]

    async def get_suggestion(self, suggestion_id: str) -> SuggestionRecord:
        row = await self._pool.fetchrow(
            f"SELECT s.suggestion_id, s.party_id, s.guest_ids, s.boarded_at, s.state, {_PHOTO} "
            "FROM suggestions s JOIN photos p USING (photo_id) WHERE s.suggestion_id = $1",
            suggestion_id,
        )
        if row is None:
            raise NotFound("suggestion", suggestion_id)
        return _suggestion(row)

    async def answer_suggestion(
        self,
        suggestion: SuggestionRecord,
        accept: bool,
        guest_ids: Sequence[str],
        now: datetime,
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            state = await conn.fetchval(
                "SELECT state FROM suggestions WHERE suggestion_id = $1 FOR UPDATE",
                suggestion.suggestion_id,
            )
            if state is None:
                raise NotFound("suggestion", suggestion.suggestion_id)
            wanted = ACCEPTED if accept else REJECTED
            if state == wanted:
                return
            if state != OFFERED:
                raise FailedPrecondition(
                    "this suggestion was already answered the other way",
                    reason="ALREADY_ANSWERED",
                    subject="answer",
                )
            await conn.execute(
                "UPDATE suggestions SET state = $2, answered_at = $3 WHERE suggestion_id = $1",
                suggestion.suggestion_id,
                wanted,
                now,
            )
            if accept:
                await self._link(
                    conn,
                    suggestion.photo,
                    suggestion.party_id,
                    guest_ids,
                    pb.LINK_SOURCE_SUGGESTION_CONFIRMED,
                    now,
                    explicit=True,
                )

    async def unlink(self, photo: PhotoRecord, party_id: str, reason: int, now: datetime) -> bool:
        """Take a photo out of a party's account; False if it never was in it."""
        async with self._pool.acquire() as conn, conn.transaction():
            link = await conn.fetchrow(
                "SELECT removed_at FROM photo_links WHERE photo_id = $1 AND party_id = $2 "
                "FOR UPDATE",
                photo.photo_id,
                party_id,
            )
            if link is None:
                return False
            if link["removed_at"] is not None:
                return True
            guests = await conn.fetch(
                "DELETE FROM photo_link_guests WHERE photo_id = $1 AND party_id = $2 "
                "RETURNING guest_id",
                photo.photo_id,
                party_id,
            )
            await conn.execute(
                "UPDATE photo_links SET removed_at = $3, removed_reason = $4 "
                "WHERE photo_id = $1 AND party_id = $2",
                photo.photo_id,
                party_id,
                now,
                reason,
            )
            await events.append(
                conn,
                SCHEMA,
                "photo_unlinked",
                ev.photo_unlinked(
                    photo.photo_id, party_id, [str(g["guest_id"]) for g in guests], reason
                ),
                now,
                photo.attraction_id,
            )
            return True

    async def party_members(self, party_id: str) -> dict[str, GuestInfo]:
        rows = await self._pool.fetch(
            "SELECT guest_id, party_id, photo_linking, erased FROM guests "
            "WHERE party_id = $1 AND NOT erased",
            party_id,
        )
        return {
            str(r["guest_id"]): GuestInfo(str(r["guest_id"]), party_id, r["photo_linking"], False)
            for r in rows
        }

    # --- purchases -----------------------------------------------------------

    async def begin_purchase(
        self,
        *,
        scope: str,
        key: str,
        digest: bytes,
        party_id: str,
        guest_id: str,
        photo_id: str | None,
        package_date: date | None,
        price_minor: int,
        currency: str,
        charge_key: str,
        now: datetime,
    ) -> PurchaseRecord:
        """The purchase of this key: a new pending one, or the one a retry resumes."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM purchases WHERE scope = $1 AND key = $2 FOR UPDATE", scope, key
            )
            if row is not None:
                record = _purchase(row)
                if record.request_hash != digest:
                    raise FailedPrecondition(
                        "idempotency key already used for a different request",
                        reason="IDEMPOTENCY_KEY_REUSED",
                        subject="idempotency_key",
                    )
                return record
            if await self._already_bought(conn, party_id, photo_id, package_date):
                raise FailedPrecondition(
                    "already bought (or being bought) by this party",
                    reason="ALREADY_PURCHASED",
                    subject="photo_id" if photo_id else "date",
                )
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(
                        "INSERT INTO purchases (purchase_id, scope, key, request_hash, party_id, "
                        "guest_id, photo_id, package_date, price_minor, currency, charge_key, "
                        "charged_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                        "$12, $13) RETURNING *",
                        uuid.uuid4(),
                        scope,
                        key,
                        digest,
                        party_id,
                        guest_id,
                        photo_id,
                        package_date,
                        price_minor,
                        currency,
                        charge_key,
                        now,
                        PURCHASE_PENDING,
                    )
            except asyncpg.UniqueViolationError:
                raise FailedPrecondition(
                    "already bought (or being bought) by this party",
                    reason="ALREADY_PURCHASED",
                    subject="photo_id" if photo_id else "date",
                ) from None
            return _purchase(row)

    async def _already_bought(
        self,
        conn: asyncpg.Connection,
        party_id: str,
        photo_id: str | None,
        package_date: date | None,
    ) -> bool:
        if package_date is not None:
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM purchases WHERE party_id = $1 "
                    "AND package_date = $2 AND state IN ($3, $4))",
                    party_id,
                    package_date,
                    PURCHASE_PENDING,
                    PURCHASE_APPROVED,
                )
            )
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM purchases u JOIN photos p ON p.photo_id = $2 "
                "WHERE u.party_id = $1 AND u.state IN ($3, $4) AND (u.photo_id = p.photo_id "
                f"OR u.package_date = {_PHOTO_DAY.format(tz='$5')}))",
                party_id,
                photo_id,
                PURCHASE_PENDING,
                PURCHASE_APPROVED,
                self._tz,
            )
        )

    async def finish_purchase(
        self,
        purchase_id: str,
        approved: bool,
        charge_id: str,
        decline_reason: int,
        message: str,
        now: datetime,
    ) -> PurchaseRecord:
        """Record the wallet's answer (once: a concurrent retry finds it done)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE purchases SET state = $2, charge_id = $3, decline_reason = $4, "
                "display_message = $5, decided_at = $6 WHERE purchase_id = $1 AND state = $7 "
                "RETURNING *",
                purchase_id,
                PURCHASE_APPROVED if approved else PURCHASE_DECLINED,
                charge_id,
                decline_reason,
                message,
                now,
                PURCHASE_PENDING,
            )
            if row is None:
                row = await conn.fetchrow(
                    "SELECT * FROM purchases WHERE purchase_id = $1", purchase_id
                )
                return _purchase(row)
            record = _purchase(row)
            if approved:
                key = ""
                if record.photo_id is not None:
                    key = str(
                        await conn.fetchval(
                            "SELECT attraction_id FROM photos WHERE photo_id = $1", record.photo_id
                        )
                        or ""
                    )
                await events.append(
                    conn, SCHEMA, "photo_purchased", ev.photo_purchased(record), now, key
                )
            return record

    async def pending_purchases(self, before: datetime, limit: int = 50) -> list[PurchaseRecord]:
        rows = await self._pool.fetch(
            "SELECT * FROM purchases WHERE state = $1 AND charged_at < $2 "
            "ORDER BY charged_at LIMIT $3",
            PURCHASE_PENDING,
            before,
            limit,
        )
        return [_purchase(r) for r in rows]

    async def single_purchase(self, party_id: str, photo_id: str) -> PurchaseRecord | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM purchases WHERE party_id = $1 AND photo_id = $2 AND state = $3",
            party_id,
            photo_id,
            PURCHASE_APPROVED,
        )
        return None if row is None else _purchase(row)

    async def superseded_purchases(self, limit: int = 50) -> list[PurchaseRecord]:
        """Photos bought on their own through a link the service took back
        (UNLINK_REASON_SUPERSEDED) and not refunded yet: the party paid for a
        photo that is no longer theirs."""
        rows = await self._pool.fetch(
            "SELECT u.* FROM purchases u JOIN photo_links l ON l.photo_id = u.photo_id "
            "AND l.party_id = u.party_id WHERE u.state = $1 AND l.removed_at IS NOT NULL "
            "AND l.removed_reason = $2 ORDER BY u.decided_at LIMIT $3",
            PURCHASE_APPROVED,
            pb.UNLINK_REASON_SUPERSEDED,
            limit,
        )
        return [_purchase(r) for r in rows]

    async def mark_refunded(self, purchase_id: str, now: datetime) -> None:
        await self._pool.execute(
            "UPDATE purchases SET state = $2, decided_at = $3 "
            "WHERE purchase_id = $1 AND state = $4",
            purchase_id,
            PURCHASE_REFUNDED,
            now,
            PURCHASE_APPROVED,
        )

    # --- figures and housekeeping --------------------------------------------

    async def stats(self, start: datetime, end: datetime) -> list[StatsRow]:
        """Figures of the photos captured in [start, end), by attraction."""
        window = (
            "SELECT photo_id, attraction_id FROM photos "
            "WHERE captured_at >= $1 AND captured_at < $2"
        )
        figures: dict[str, dict[str, int]] = {}

        def add(attraction: str, name: str, count: int) -> None:
            figures.setdefault(attraction, {})
            figures[attraction][name] = figures[attraction].get(name, 0) + count

        for r in await self._pool.fetch(
            "SELECT p.attraction_id, count(*) AS captures, "
            "count(*) FILTER (WHERE NOT l.linked AND p.match_state = $3) AS pending, "
            "count(*) FILTER (WHERE NOT l.linked AND p.match_state = $4) AS ambiguous, "
            "count(*) FILTER (WHERE NOT l.linked AND p.match_state IN ($5, $6)) AS unlinked "
            "FROM photos p CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM photo_links k "
            "WHERE k.photo_id = p.photo_id AND k.removed_at IS NULL) AS linked) l "
            "WHERE p.captured_at >= $1 AND p.captured_at < $2 GROUP BY p.attraction_id",
            start,
            end,
            PENDING,
            AMBIGUOUS,
            MATCHED,
            NO_MATCH,
        ):
            for name in ("captures", "pending", "ambiguous", "unlinked"):
                add(r["attraction_id"], name, r[name])
        by_source = {
            BOARDING: "linked_by_boarding",
            pb.LINK_SOURCE_PHOTOGRAPHER_TAP: "linked_by_photographer",
            pb.LINK_SOURCE_KIOSK_CLAIM: "linked_by_kiosk",
            pb.LINK_SOURCE_SUGGESTION_CONFIRMED: "linked_by_suggestion",
        }
        for r in await self._pool.fetch(
            f"SELECT w.attraction_id, l.source, count(*) FILTER (WHERE l.removed_at IS NULL) "
            f"AS active, count(*) FILTER (WHERE l.removed_reason = $3) AS wrong "
            f"FROM photo_links l JOIN ({window}) w USING (photo_id) GROUP BY 1, 2",
            start,
            end,
            pb.UNLINK_REASON_NOT_US,
        ):
            if r["source"] in by_source:
                add(r["attraction_id"], by_source[r["source"]], r["active"])
            add(r["attraction_id"], "unlinked_as_wrong", r["wrong"])
        by_state = {
            ACCEPTED: "suggestions_confirmed",
            REJECTED: "suggestions_rejected",
        }
        for r in await self._pool.fetch(
            f"SELECT w.attraction_id, g.state, count(*) AS n FROM suggestions g "
            f"JOIN ({window}) w USING (photo_id) GROUP BY 1, 2",
            start,
            end,
        ):
            add(r["attraction_id"], "suggestions_offered", r["n"])
            if r["state"] in by_state:
                add(r["attraction_id"], by_state[r["state"]], r["n"])
        for r in await self._pool.fetch(
            f"SELECT w.attraction_id, count(*) AS n FROM purchases u "
            f"JOIN ({window}) w USING (photo_id) WHERE u.state = $3 GROUP BY 1",
            start,
            end,
            PURCHASE_APPROVED,
        ):
            add(r["attraction_id"], "purchases", r["n"])
        return [StatsRow(attraction, **counts) for attraction, counts in sorted(figures.items())]

    async def packages_bought(self, start: date, end: date) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM purchases WHERE package_date >= $1 AND package_date < $2 "
                "AND state = $3",
                start,
                end,
                PURCHASE_APPROVED,
            )
        )

    async def delete_expired(self, captured_before: datetime, limit: int = 1000) -> int:
        """Delete photos past retention that no party has and nobody bought."""
        rows = await self._pool.fetch(
            "DELETE FROM photos WHERE photo_id IN (SELECT p.photo_id FROM photos p "
            "WHERE p.captured_at < $1 AND NOT EXISTS (SELECT 1 FROM photo_links l "
            "WHERE l.photo_id = p.photo_id AND l.removed_at IS NULL) AND NOT EXISTS "
            "(SELECT 1 FROM purchases u WHERE u.photo_id = p.photo_id AND u.state IN ($2, $3)) "
            "ORDER BY p.captured_at LIMIT $4) RETURNING photo_id",
            captured_before,
            PURCHASE_PENDING,
            PURCHASE_APPROVED,
            limit,
        )
        return len(rows)

    async def forget_old(self, before: datetime) -> None:
        """Boarding taps and photographer sessions outlive linking by a margin only."""
        await self._pool.execute("DELETE FROM boarding_taps WHERE tapped_at < $1", before)
        await self._pool.execute("DELETE FROM photographer_sessions WHERE expires_at < $1", before)


def _content(photo: PhotoRecord) -> tuple[datetime, str, str, str, int]:
    return (photo.captured_at, photo.image_uri, photo.image_sha256, photo.vehicle_id, photo.row)


def _suggestion(row: asyncpg.Record) -> SuggestionRecord:
    return SuggestionRecord(
        suggestion_id=str(row["suggestion_id"]),
        photo=_photo(row),
        party_id=str(row["party_id"]),
        guest_ids=tuple(str(g) for g in row["guest_ids"]),
        boarded_at=row["boarded_at"],
        state=row["state"],
    )
