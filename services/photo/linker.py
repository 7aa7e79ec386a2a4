"""The link engine at work in the service: fed by the boarding-tap consumer and
by capture ingest, deciding on venue time, writing each decision to the store.

The engine lives in memory and is rebuilt from the store at start (the taps and
ride photos within its horizon, and each camera's latest matches for its
model). It runs in one process: photo is deployed as a single replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from opentelemetry import trace

from services.photo.linking import Decision, LinkEngine, Tap, Verdict
from services.photo.records import AMBIGUOUS, MATCHED, NO_MATCH, CapturedEvent, Rider
from services.photo.store import PhotoStore
from services.photo.telemetry import PhotoMetrics
from services.platform import semconv
from services.platform.clock import VenueClock
from services.platform.events import EventHub

log = logging.getLogger("venue.photo.linker")
_tracer = trace.get_tracer("venue.photo")

_STATE = {Verdict.MATCHED: MATCHED, Verdict.AMBIGUOUS: AMBIGUOUS, Verdict.NO_MATCH: NO_MATCH}
_VERDICT = {v: k for k, v in _STATE.items()}
_OUTCOME = {Verdict.MATCHED: "linked", Verdict.AMBIGUOUS: "held", Verdict.NO_MATCH: "unmatched"}
# Riders identity has not told us about are retried for this long (venue), and
# at least this many wall seconds: a suite played faster than real time (or a
# busy one) may have identity's stream many venue minutes behind the taps.
UNKNOWN_GUEST_WAIT = timedelta(minutes=10)
UNKNOWN_GUEST_WALL = 120.0
# Wall seconds without a new boarding tap after which the tap stream counts as
# quiet (the end of the day, a closed park): only then may the venue clock, and
# not the taps' own times, make a capture due. A stream that is merely behind
# (photo catching up under load) still delivers taps, and its times rule.
QUIET_WALL = 2.0


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class _Retry:
    decision: Decision
    until: datetime
    # time.monotonic() bound.
    wall_until: float


class Linker:
    def __init__(
        self,
        engine: LinkEngine,
        store: PhotoStore,
        clock: VenueClock,
        hub: EventHub,
        telemetry: PhotoMetrics | None = None,
    ) -> None:
        self.engine = engine
        self._store = store
        self._clock = clock
        self._hub = hub
        self._wake = asyncio.Event()
        self._retry: list[_Retry] = []
        self._pruned = -math.inf
        self._last_tap = 0.0
        self.applied = 0
        self._metrics = telemetry or PhotoMetrics()
        # The verdict each open capture was last counted under.
        self._counted: dict[str, Verdict] = {}

    def pending(self) -> int:
        """Ride photos the engine has not decided yet."""
        return sum(1 for s in self.engine.open_captures() if s.pending)

    # --- feeding -------------------------------------------------------------

    async def restore(self) -> None:
        rules = self.engine.rules
        reach = timedelta(seconds=rules.horizon + 600.0)
        # The engine's memory is counted back from the taps' own times: a
        # linker that was hours behind the clock must get back what it had.
        latest = await self._store.latest_tap()
        now = self._clock.now()
        base = now if latest is None else min(now, latest)
        state = await self._store.linking_state(base - reach, rules.max_samples)
        for camera_id, samples in state.samples.items():
            try:
                model = self.engine.model(camera_id)
            except KeyError:
                continue
            model.seed(
                (c.timestamp() - f.timestamp(), c.timestamp() - last.timestamp())
                for c, f, last in reversed(samples)
            )
        for tap_id, point, guest_id, party_id, at in state.taps:
            self.engine.add_tap(point, Tap(tap_id, guest_id, party_id, at.timestamp()))
        for photo_id, camera_id, at, row, match_state, riders, _, _ in state.photos:
            self.engine.restore(
                camera_id, photo_id, at.timestamp(), row, _VERDICT.get(match_state), riders
            )
        log.info(
            "linker restored",
            extra={"taps": len(state.taps), "photos": len(state.photos)},
        )

    def tap(self, access_point_id: str, tap: Tap) -> None:
        if self.engine.add_tap(access_point_id, tap):
            self._last_tap = time.monotonic()
            self._wake.set()

    def captured(self, photos: Iterable[CapturedEvent]) -> None:
        for photo in photos:
            if photo.pending:
                self.engine.add_capture(
                    photo.camera_id, photo.photo_id, photo.captured_at.timestamp(), photo.row
                )
                self._wake.set()
        self._metrics.pending(self.pending())

    def forget_guest(self, guest_id: str) -> None:
        self.engine.forget_guest(guest_id)

    # --- deciding ------------------------------------------------------------

    async def run(self, interval: float = 0.5) -> None:
        """Decide what is due whenever something arrives, and at least every
        `interval` wall seconds (time alone makes captures due)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("linking step failed; retrying", exc_info=True)
                await asyncio.sleep(interval)

    async def step(self) -> int:
        """One round: the engine's due decisions, written. Returns how many."""
        now = self._clock.now()
        quiet = time.monotonic() - self._last_tap >= QUIET_WALL
        decisions = self.engine.decide(now.timestamp() if quiet else None)
        retries, self._retry = self._retry, []
        done = 0
        wall_until = time.monotonic() + UNKNOWN_GUEST_WALL
        for decision in decisions:
            await self._apply(decision, now, _Retry(decision, now + UNKNOWN_GUEST_WAIT, wall_until))
            done += 1
        for retry in retries:
            await self._apply(retry.decision, now, retry)
        if done or retries:
            self._hub.poke()
        # Memory follows the taps' own times: a linker hours behind the venue
        # clock (catching up under load) must not forget what it has yet to use.
        mark = self.engine.watermark
        if mark - self._pruned > 300:
            self.engine.prune(mark)
            self._pruned = mark
            self._counted = {k: v for k, v in self._counted.items() if self.engine.state(k)}
        self.applied += done
        self._metrics.pending(self.pending())
        return done

    def _count(self, decision: Decision) -> None:
        """Count a capture under its new outcome, once per change of verdict (a
        re-decision adding a late rider is not a new outcome)."""
        if self._counted.get(decision.capture_key) is decision.verdict:
            return
        self._counted[decision.capture_key] = decision.verdict
        self._metrics.captures(_OUTCOME[decision.verdict])

    async def _apply(self, decision: Decision, now: datetime, retry: _Retry) -> None:
        riders = [Rider(t.guest_id, t.party_id, _time(t.at)) for t in decision.taps]
        span = None
        if decision.first is not None and decision.last is not None:
            span = (_time(decision.first), _time(decision.last))
        with _tracer.start_as_current_span("photo link decision") as span_:
            span_.set_attribute("venue.photo.id", decision.capture_key)
            span_.set_attribute(semconv.CAMERA, decision.camera_id)
            span_.set_attribute(semconv.OUTCOME, _OUTCOME[decision.verdict])
            unknown = await self._store.apply_decision(
                decision.capture_key,
                _STATE[decision.verdict],
                riders,
                decision.reason,
                span,
                now,
            )
        self._count(decision)
        if unknown and (now < retry.until or time.monotonic() < retry.wall_until):
            # Identity's stream has not caught up with these riders yet.
            self._retry.append(retry)
