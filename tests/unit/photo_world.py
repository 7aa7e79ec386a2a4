"""A synthetic day of the venue's camera rides, for measuring the linker (pure).

Each camera ride runs FIFO lines of parties with the venue's vehicle size and
dispatch interval (stretched at random, with breakdowns), under a load that
rises from a quiet morning to a saturated afternoon. Riders tap at boarding
under one of several models of how a boarding point is used; some taps are
lost, some reach the service late; scanners and cameras have their own clock
skew (and a slow drift); the camera fires `delay` ± jitter after dispatch. The
day keeps the ground truth (who is in each capture) for scoring, which the
linker never sees.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.photo.linking import LinkEngine, LinkRules, RideCamera, Tap, Verdict
from services.venue_model import Venue
from sim.config import WorldConfig
from sim.day import offline_world
from sim.frame import DayFrame


@dataclass(frozen=True)
class WorldKnobs:
    # How riders tap: "together" (within ~1.5 s of dispatch), "spread" (any
    # time in the dispatch window before it), "file" (one after another),
    # "world" (as the simulated world of sim/ does: 1 s to 0.6 of a dispatch
    # interval, at most 20 s, before it: wider than the venue's window).
    tap_model: str = "spread"
    camera_skew: float = 3.0
    scanner_skew: float = 3.0
    # Seconds of extra skew a clock gains over the day.
    drift: float = 1.0
    missing_taps: float = 0.01
    late_taps: float = 0.02
    duplicate_captures: float = 0.01
    consent: float = 0.9
    # Peak load as a share of the ride's capacity (above 1: a standing line).
    peak_load: float = 1.3
    hours: float = 12.0
    breakdowns_per_day: float = 1.0
    # Vehicles that leave empty are photographed too (a real camera would).
    capture_empty: bool = False
    # Each dispatch interval is the nameplate one times U(1 - faster, 1 + this).
    irregularity: float = 0.15
    faster: float = 0.0
    # A camera clock that is reset once in the day jumps by up to this much.
    clock_jump: float = 0.0
    # Every tap and capture reaches the service this much later (venue
    # seconds): a service catching up with a backlog.
    lag: float = 0.0


@dataclass
class Arrival:
    """Something reaching the service: a tap or a capture, at a venue time."""

    at: float
    kind: str  # "tap" or "capture"
    access_point_id: str = ""
    tap: Tap | None = None
    camera_id: str = ""
    capture_key: str = ""
    captured_at: float = 0.0


@dataclass
class Day:
    arrivals: list[Arrival]
    # capture key -> guests in it (ground truth)
    truth: dict[str, frozenset[str]]
    consenting: set[str]
    start: float
    end: float


@dataclass
class Score:
    captures: int = 0
    # (capture, guest) pairs of consenting guests in the photos.
    wanted: int = 0
    links: int = 0
    wrong: int = 0
    held: int = 0
    decisions: dict[str, int] = field(default_factory=dict)

    @property
    def precision(self) -> float:
        return 1.0 if not self.links else (self.links - self.wrong) / self.links

    @property
    def recall(self) -> float:
        return 1.0 if not self.wanted else (self.links - self.wrong) / self.wanted


def ride_cameras(venue: Venue) -> list[RideCamera]:
    out = []
    for camera in venue.cameras:
        if camera.attraction is None or camera.boarding_access_point is None:
            continue
        queue = venue.queue_of(camera.attraction)
        out.append(
            RideCamera(
                camera.id,
                camera.attraction,
                camera.boarding_access_point,
                camera.delay_seconds or 0.0,
                camera.jitter_seconds or 2.0,
                queue.vehicle_capacity,
                queue.dispatch_interval_seconds,
            )
        )
    return out


def _load(t: float, day: float, peak: float) -> float:
    """Share of capacity that arrives: quiet at opening, a standing line from
    late morning to late afternoon, quieter again in the evening."""
    x = t / day
    return peak * (0.25 + 0.75 * math.sin(math.pi * min(1.0, x * 1.15)) ** 2)


def _taps_for(
    riders: list[tuple[str, str]],
    dispatch: float,
    model: str,
    window: float,
    interval: float,
    rng: random.Random,
) -> list[tuple[str, str, float]]:
    if model == "world":
        spread = max(min(20.0, 0.6 * interval), 2.0)
        return [(g, p, dispatch - rng.uniform(1.0, spread)) for g, p in riders]
    if model == "together":
        return [(g, p, dispatch - rng.uniform(0, 1.5)) for g, p in riders]
    if model == "file":
        gap = min(1.2, (window - 0.5) / max(1, len(riders)))
        start = dispatch - rng.uniform(0.5, 1.0) - gap * len(riders)
        return [(g, p, start + i * gap + rng.uniform(0, 0.3)) for i, (g, p) in enumerate(riders)]
    return [(g, p, dispatch - rng.uniform(0, window)) for g, p in riders]


def simulate_day(venue: Venue, knobs: WorldKnobs, seed: int, start: float = 1.8e9) -> Day:
    rng = random.Random(seed)
    window = venue.rules.photo_dispatch_window_seconds
    arrivals: list[Arrival] = []
    truth: dict[str, frozenset[str]] = {}
    consenting: set[str] = set()
    day = knobs.hours * 3600
    guest_seq = 0
    for camera in ride_cameras(venue):
        cam_skew = rng.uniform(-knobs.camera_skew, knobs.camera_skew)
        scan_skew = rng.uniform(-knobs.scanner_skew, knobs.scanner_skew)
        cam_drift = rng.uniform(-knobs.drift, knobs.drift)
        jump_at, jump = rng.uniform(0.3, 0.7), rng.uniform(-knobs.clock_jump, knobs.clock_jump)
        scan_drift = rng.uniform(-knobs.drift, knobs.drift)
        line: deque[list[tuple[str, str]]] = deque()
        t = 0.0
        next_arrival = 0.0
        breakdowns = sorted(rng.uniform(0, day) for _ in range(int(knobs.breakdowns_per_day)))
        vehicle = 0
        while t < day:
            # Parties join the line up to now.
            while next_arrival <= t:
                size = rng.choice((1, 2, 2, 3, 4, 4, 5, 6))
                party = f"party-{guest_seq}"
                members = []
                for _ in range(min(size, camera.capacity)):
                    guest = f"g-{guest_seq}"
                    guest_seq += 1
                    members.append((guest, party))
                    if rng.random() < knobs.consent:
                        consenting.add(guest)
                line.append(members)
                rate = _load(next_arrival, day, knobs.peak_load) * 3600 / camera.dispatch_interval
                rate_parties = rate * camera.capacity / 3.4 / 3600
                next_arrival += rng.expovariate(max(rate_parties, 1e-6))
            if breakdowns and t >= breakdowns[0]:
                t += rng.uniform(600, 2400)
                breakdowns.pop(0)
                continue
            riders: list[tuple[str, str]] = []
            while line and len(riders) + len(line[0]) <= camera.capacity:
                riders += line.popleft()
            dispatch = start + t
            vehicle += 1
            if riders or knobs.capture_empty:
                frac = t / day
                for guest, party, at in _taps_for(
                    riders, dispatch, knobs.tap_model, window, camera.dispatch_interval, rng
                ):
                    if rng.random() < knobs.missing_taps:
                        continue
                    tapped = at + scan_skew + scan_drift * frac
                    delivered = tapped + knobs.lag + rng.uniform(0.1, 2.0)
                    if rng.random() < knobs.late_taps:
                        delivered += rng.uniform(30, 300)
                    tap = Tap(f"tap-{guest}-{vehicle}-{camera.camera_id}", guest, party, tapped)
                    arrivals.append(
                        Arrival(
                            delivered, "tap", access_point_id=camera.boarding_access_point, tap=tap
                        )
                    )
                shot = (
                    dispatch
                    + camera.delay
                    + rng.uniform(-camera.jitter, camera.jitter)
                    + cam_skew
                    + cam_drift * frac
                    + (jump if frac > jump_at else 0.0)
                )
                key = f"{camera.camera_id}/{vehicle}"
                truth[key] = frozenset(g for g, _ in riders)
                sent = shot + knobs.lag + rng.uniform(1, 30)
                arrivals.append(
                    Arrival(
                        sent,
                        "capture",
                        camera_id=camera.camera_id,
                        capture_key=key,
                        captured_at=shot,
                    )
                )
                if rng.random() < knobs.duplicate_captures:
                    arrivals.append(
                        Arrival(
                            sent + rng.uniform(1, 60),
                            "capture",
                            camera_id=camera.camera_id,
                            capture_key=key,
                            captured_at=shot,
                        )
                    )
            t += camera.dispatch_interval * rng.uniform(
                1.0 - knobs.faster, 1.0 + knobs.irregularity
            )
    arrivals.sort(key=lambda a: a.at)
    return Day(arrivals, truth, consenting, start, start + day)


def play(
    day: Day, cameras: list[RideCamera], rules: LinkRules, tick: float = 10.0
) -> tuple[Score, LinkEngine]:
    """Feed the day to a fresh engine in arrival order and score its links.

    As the service's linker does: while taps flow, the engine decides and
    forgets on the taps' own times (the venue clock is not passed); once the
    stream is quiet at the end, the venue clock decides what is left."""
    engine = LinkEngine(cameras, rules)
    linked: dict[str, set[str]] = {}
    verdicts: dict[str, Verdict] = {}
    pruned = -math.inf

    def collect(now: float | None) -> None:
        nonlocal pruned
        if engine.watermark - pruned > 300:
            engine.prune(engine.watermark)
            pruned = engine.watermark
        for decision in engine.decide(now):
            verdicts[decision.capture_key] = decision.verdict
            if decision.verdict is Verdict.MATCHED:
                got = linked.setdefault(decision.capture_key, set())
                got.update(g for g in decision.guest_ids if g in day.consenting)

    next_tick = day.start
    for arrival in _with_ticks(day, tick):
        if arrival is None:
            continue
        while next_tick <= arrival.at:
            collect(None)
            next_tick += tick
        if arrival.kind == "tap":
            assert arrival.tap is not None
            engine.add_tap(arrival.access_point_id, arrival.tap)
        else:
            engine.add_capture(arrival.camera_id, arrival.capture_key, arrival.captured_at)
    for _ in range(200):
        collect(next_tick)
        next_tick += tick
    score = Score(captures=len(day.truth))
    for key, guests in day.truth.items():
        wanted = guests & day.consenting
        score.wanted += len(wanted)
        got = linked.get(key, set())
        score.links += len(got)
        score.wrong += len(got - guests)
        verdict = verdicts.get(key)
        name = verdict.value if verdict else "pending"
        score.decisions[name] = score.decisions.get(name, 0) + 1
        if verdict is Verdict.AMBIGUOUS:
            score.held += 1
    return score, engine


def _with_ticks(day: Day, tick: float) -> Iterator[Arrival | None]:
    yield from day.arrivals


# --- the simulated world of sim/ itself, offline -----------------------------


class _Recorder:
    """sim's devices port, keeping what photo would hear: boarding taps at
    the camera rides and ride captures, each at the venue time it is sent."""

    def __init__(
        self,
        world_now: Callable[[], float],
        points: set[str],
        midnight: float,
        delivery: Callable[[], float],
        tap_delivery: Callable[[], float],
    ) -> None:
        self.tap_delivery = tap_delivery
        self.now = world_now
        self.delivery = delivery
        self.points = points
        self.midnight = midnight
        self.arrivals: list[Arrival] = []
        self.seq = 0

    def tap(self, party: Any, member: Any, access_point: str, t: float) -> None:
        if access_point not in self.points:
            return
        self.seq += 1
        tap = Tap(f"tap-{self.seq}", f"g-{member.index}", f"party-{party.index}", self.midnight + t)
        # Sent when the world reports it (a boarding tap: at the dispatch).
        sent = self.midnight + self.now() + self.tap_delivery()
        self.arrivals.append(Arrival(sent, "tap", access_point_id=access_point, tap=tap))

    def capture(self, camera: str, capture_id: str, taken_s: float) -> None:
        sent = self.midnight + self.now() + self.delivery()
        self.arrivals.append(
            Arrival(
                sent,
                "capture",
                camera_id=camera,
                capture_key=capture_id,
                captured_at=self.midnight + taken_s,
            )
        )

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def sim_day(
    venue: Venue,
    guests: int = 10_000,
    hours: float | None = None,
    seed: int = 1,
    spread: float = 0.0,
    tap_spread: float = 0.0,
) -> Day:
    """A day of sim's own world (offline: no apps), as photo would hear it.
    `spread`: each message reaches photo up to this many venue seconds after
    it is sent (a suite played at 100x on a busy machine: a wall second of
    queueing is 100 venue seconds), so taps and photos arrive out of order;
    `tap_spread`, more for taps (each party's taps queue behind the party's
    earlier calls, a camera's photos do not)."""
    rng = random.Random(seed)
    config = WorldConfig(guests=guests, hours=hours, seed=seed)
    frame = DayFrame.of(date(2026, 7, 4), venue.timezone)
    world = offline_world(venue, config, frame)
    points = {c.boarding_access_point for c in ride_cameras(venue)}
    recorder = _Recorder(
        lambda: world.engine.now,
        points,
        frame.midnight,
        lambda: rng.uniform(0.2, 1.0 + spread),
        lambda: rng.uniform(0.2, 1.0 + spread + tap_spread),
    )
    world.devices = recorder
    world.start()
    # As `venue run` plays it: the world stops at the end of the hours asked for.
    world.engine.run_until(world.end_s)
    truth: dict[str, frozenset[str]] = {}
    for key, cap in world.truth.captures.items():
        if cap.attraction:
            truth[key] = frozenset(f"g-{g}" for g in cap.guests)
    consenting = {f"g-{m.index}" for a in world.agents for m in a.party.members if m.consent.photos}
    arrivals = sorted(
        (a for a in recorder.arrivals if a.kind == "tap" or a.capture_key in truth),
        key=lambda a: a.at,
    )
    start = frame.midnight + world.open_s
    return Day(arrivals, truth, consenting, start, frame.midnight + world.engine.now)
