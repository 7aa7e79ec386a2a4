"""The Tap hot path: resolve the band from memory, decide, record in one round
trip (two when the decision reads the guest's state), answer.

A retried tap (same device, same key) is decided again but cannot be recorded
twice: the store finds the key taken and the first reply is returned. When the
guest's state changed between the read and the write (a revocation, another
gate), the tap is decided again on fresh state.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from services.access import decisions, messages
from services.access.bands import BandDirectory
from services.access.decisions import Decision, GuestState, Held, Wearer
from services.access.ids import new_id
from services.access.records import AccessPointState, EntitlementRecord
from services.access.store import RECORDED, AccessStore, HeldState, Stale, TapWrite
from services.access.telemetry import Tally, database_time
from services.access.venue_index import PointInfo, VenueIndex
from services.platform import semconv
from services.platform.errors import Aborted
from venue.access.v1 import access_pb2 as pb

log = logging.getLogger("venue.access.taps")

MAX_ATTEMPTS = 5
ALLOW, DENY = pb.TAP_DECISION_ALLOW, pb.TAP_DECISION_DENY


class PointStates:
    """Open or closed, per access point, in memory: written through by
    SetAccessPointState and kept in step with other replicas by the event hub."""

    def __init__(self, states: dict[str, AccessPointState]) -> None:
        self._states = states

    def get(self, access_point_id: str) -> AccessPointState | None:
        return self._states.get(access_point_id)

    def is_open(self, access_point_id: str) -> bool:
        state = self._states.get(access_point_id)
        return state is None or state.open

    def put(self, state: AccessPointState) -> None:
        current = self._states.get(state.access_point_id)
        if (
            current is None
            or current.changed_at is None
            or state.changed_at is None
            or state.changed_at >= current.changed_at
        ):
            self._states[state.access_point_id] = state


def held_of(record: EntitlementRecord) -> Held:
    return Held(
        entitlement_id=record.entitlement_id,
        kind=record.kind,
        status=record.status,
        park_id=record.park_id,
        valid_dates=frozenset(record.valid_dates),
        days_allowed=record.days_allowed,
        entries_per_day=record.entries_per_day,
        days_used=record.days_used,
        last_day=record.last_day,
        entries_last_day=record.entries_last_day,
        attraction_id=record.attraction_id,
        room_id=record.room_id,
        window_start=record.window_start,
        window_end=record.window_end,
        access_point_ids=frozenset(record.access_point_ids),
    )


@dataclass(frozen=True, slots=True)
class _Tap:
    point: PointInfo
    wearer: Wearer | None
    tapped_at: datetime
    scope: str
    key: str
    digest: bytes


class TapDesk:
    def __init__(
        self,
        store: AccessStore,
        directory: BandDirectory,
        venue: VenueIndex,
        states: PointStates,
    ) -> None:
        self._store = store
        self._directory = directory
        self._venue = venue
        self._states = states
        meter = metrics.get_meter("venue.access")
        self._decisions = Tally(meter, semconv.ACCESS_TAPS)

    def _count(self, point: PointInfo, reason: int) -> None:
        def attributes() -> dict[str, str]:
            kind = pb.AccessPointKind.Name(point.kind)  # type: ignore[arg-type]
            why = pb.DenyReason.Name(reason)  # type: ignore[arg-type]
            return {
                semconv.ACCESS_POINT: point.access_point_id,
                semconv.ACCESS_POINT_KIND: semconv.strip_enum(kind, "ACCESS_POINT_KIND_"),
                semconv.ATTRACTION: point.attraction_id or "",
                semconv.DECISION: "allow" if reason == 0 else "deny",
                semconv.DENY_REASON: semconv.strip_enum(why, "DENY_REASON_"),
            }

        self._decisions.add((point.access_point_id, reason), attributes)

    async def tap(
        self,
        point: PointInfo,
        band_uid: str,
        tapped_at: datetime,
        scope: str,
        key: str,
        digest: bytes,
    ) -> pb.TapResponse:
        wearer = await self._directory.wearer(band_uid)
        early = decisions.precheck(point, self._states.is_open(point.access_point_id), wearer)
        tap = _Tap(point, wearer, tapped_at, scope, key, digest)
        span = trace.get_current_span()
        started = time.perf_counter()
        retries = 0
        try:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    if attempt == 0 or early is not None or wearer is None:
                        return await self._attempt(tap, early, None, span)
                    # Lost a race with a change of this guest's state: decide again
                    # holding the guest's lock, which guarantees progress.
                    with suppress_instrumentation():
                        async with self._store.locked("holder", wearer.guest_id) as conn:
                            return await self._attempt(tap, early, conn, span)
                except Stale:
                    retries += 1
            raise Aborted("the guest's state kept changing; retry the tap", reason="CONFLICT")
        finally:
            database_time(span, started, retries)

    async def _attempt(
        self, tap: _Tap, early: Decision | None, conn: asyncpg.Connection | None, span: trace.Span
    ) -> pb.TapResponse:
        point, wearer = tap.point, tap.wearer
        state: HeldState | None = None
        decision = early
        if decision is None:
            assert wearer is not None
            state = await self._store.guest_state(
                wearer.guest_id,
                decisions.KINDS_READ[point.kind],
                point.attraction_id or None,
                point.room_id or None,
                conn,
            )
            decision = decisions.decide(
                point,
                wearer,
                GuestState(
                    state.version,
                    state.inside,
                    state.presence_day,
                    tuple(held_of(r) for r in state.held),
                ),
                tap.tapped_at,
                self._venue.day_of(tap.tapped_at),
                self._venue.grace,
                self._venue.clock_text,
            )
        reply = self._reply(decision, wearer)
        write = self._write(
            point, wearer, decision, state, reply, tap.tapped_at, tap.scope, tap.key, tap.digest
        )
        result = await self._store.record_tap(write, conn)
        if result != RECORDED:
            with suppress_instrumentation():
                stored = await self._store.stored_reply("taps", tap.scope, tap.key, tap.digest)
            return pb.TapResponse.FromString(stored)
        self._count(point, decision.reason)
        if span.is_recording():
            self._trace(span, point, decision, wearer)
        return reply

    def _reply(self, decision: Decision, wearer: Wearer | None) -> pb.TapResponse:
        reply = pb.TapResponse(
            tap_id=new_id(),
            decision=ALLOW if decision.allow else DENY,
            deny_reason=decision.reason,  # type: ignore[arg-type]
            display_message=decision.message,
            entitlement_id=decision.entitlement_id,
            entitlement_kind=decision.entitlement_kind,  # type: ignore[arg-type]
        )
        if wearer is not None:
            reply.guest_id = wearer.guest_id
            reply.party_id = wearer.party_id
        if decision.window is not None:
            reply.return_window.CopyFrom(messages.time_range(*decision.window))
        return reply

    def _write(
        self,
        point: PointInfo,
        wearer: Wearer | None,
        decision: Decision,
        state: HeldState | None,
        reply: pb.TapResponse,
        tapped_at: datetime,
        scope: str,
        key: str,
        digest: bytes,
    ) -> TapWrite:
        use = decision.use
        events: list[tuple[str, str, bytes]] = []
        if decision.allow and point.published and wearer is not None:
            events.append(
                (
                    "tap_recorded",
                    point.attraction_id,
                    messages.tap_recorded(
                        reply.tap_id,
                        point,
                        wearer.guest_id,
                        wearer.party_id,
                        tapped_at,
                        decision.entitlement_id if decision.entitlement_kind != 0 else "",
                        decision.entitlement_kind,
                    ),
                )
            )
        if use is not None and state is not None and wearer is not None:
            used = _after_use(state, use, tapped_at)
            if used is not None:
                events.append(
                    (
                        "entitlement_changed",
                        wearer.guest_id,
                        messages.entitlement_changed(
                            pb.ENTITLEMENT_CHANGE_USED, messages.entitlement_pb(used, tapped_at)
                        ),
                    )
                )
        return TapWrite(
            scope=scope,
            key=key,
            digest=digest,
            reply=reply.SerializeToString(),
            tap_id=reply.tap_id,
            access_point_id=point.access_point_id,
            guest_id=wearer.guest_id if wearer else None,
            party_id=wearer.party_id if wearer else None,
            decision=reply.decision,
            reason=decision.reason,
            entitlement_id=decision.entitlement_id or None,
            tapped_at=tapped_at,
            version=state.version if state is not None and decision.read_state else None,
            inside=decision.inside,
            presence_day=self._venue.day_of(tapped_at) if decision.inside is not None else None,
            use_status=use.status if use else None,
            use_days=use.days_used if use else None,
            use_last_day=use.last_day if use else None,
            use_entries=use.entries_last_day if use else None,
            events=tuple(events),
        )

    @staticmethod
    def _trace(
        span: trace.Span, point: PointInfo, decision: Decision, wearer: Wearer | None
    ) -> None:
        attributes = {
            semconv.ACCESS_POINT: point.access_point_id,
            semconv.DECISION: "allow" if decision.allow else "deny",
        }
        if point.attraction_id:
            attributes[semconv.ATTRACTION] = point.attraction_id
        if not decision.allow:
            why = pb.DenyReason.Name(decision.reason)  # type: ignore[arg-type]
            attributes[semconv.DENY_REASON] = semconv.strip_enum(why, "DENY_REASON_")
        if wearer is not None:
            attributes[semconv.GUEST] = wearer.guest_id
        span.set_attributes(attributes)


def _after_use(state: HeldState, use: decisions.Use, at: datetime) -> EntitlementRecord | None:
    for record in state.held:
        if record.entitlement_id == use.entitlement_id:
            return dataclasses.replace(
                record,
                status=use.status,
                days_used=record.days_used if use.days_used is None else use.days_used,
                last_day=record.last_day if use.last_day is None else use.last_day,
                entries_last_day=record.entries_last_day
                if use.entries_last_day is None
                else use.entries_last_day,
                last_used_at=at,
            )
    return None
