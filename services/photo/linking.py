"""Which guests a ride capture shows, from boarding taps and time alone (pure).

The evidence is thin on purpose: the boarding scanner reports who tapped and
when (by its clock), the camera reports when it fired (by its clock). A
vehicle's riders tap within the venue's dispatch window W before it leaves; the
camera fires about `delay` seconds after the dispatch, give or take its jitter,
and either clock may be a few seconds off. So the taps of the vehicle that a
capture at time c shows lie in a window [c - B, c - A] of tap time, where A and
B are properties of the camera that the engine learns from the day's data:

- Before it has learned them, the window is the prior from the venue file,
  wide enough for the worst skew: A0 = delay - K - J, B0 = delay + K + J + W.
- It bootstraps by alignment: over a run of captures it finds the shift of the
  prior delay (within the skew bound, so never a whole dispatch away) under
  which the capture windows cover the most taps, keeps the captures whose
  windows then hold one isolated vehicle, and takes their offsets
  (capture minus first tap, capture minus last tap) as samples.
- From then on every clean match adds a sample, and the window is the range of
  recent samples plus a margin: it follows drifts of the clocks over the day.

A capture is linked only when the evidence is clear: some taps in its window,
no taps in the guard zones either side of it (a vehicle boundary we are not
sure of), no more riders than a vehicle holds, no spread wider than one
dispatch, no party with members both inside and just outside the window, and
no other capture of the same camera with another row in the same window (a ride
that photographs rows separately: we cannot tell who sat in which row).
Everything else is held as AMBIGUOUS with its candidate riders, to be offered
as "is this you?" and claimed at the exit kiosk. Precision first: hold rather
than guess.

A vehicle is one capture's only if no other capture of the camera could show
it instead: when a neighbouring capture's window holds nothing but (some of)
the same taps, one of the two shows a vehicle whose taps we do not have (lost,
or still in flight under load), and the taps cannot say which: both are held.

Everything runs on the events' own venue times, never on the time they arrive:
captures are decided once their boarding point's tap stream has moved past
their window (the point's watermark: its latest tap time seen, less a settling
time for taps still in flight), or once the whole tap stream has moved a
give-up time past them (a ride gone quiet). Only when no tap arrives at all
(the end of the day) may the caller pass the venue clock instead. Decided
captures stay open for a horizon of event time: a late tap near one re-decides
it, and a better-learned camera re-decides the ones it held. Re-decisions only
ever add links, so the same events give the same links however late they come.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True, slots=True)
class Tap:
    """One boarding tap, as the access stream reports it."""

    tap_id: str
    guest_id: str
    party_id: str
    # Venue time of the tap by the scanner's clock (epoch seconds).
    at: float


@dataclass(frozen=True, slots=True)
class RideCamera:
    """A ride camera and what the venue file says about its ride."""

    camera_id: str
    attraction_id: str
    boarding_access_point: str
    # Seconds from dispatch to exposure, and its spread, from the venue file.
    delay: float
    jitter: float
    # Riders per vehicle, and the nameplate seconds between dispatches.
    capacity: int
    dispatch_interval: float


@dataclass(frozen=True, slots=True)
class LinkRules:
    # W: the taps of one vehicle lie within this many seconds (venue rule).
    dispatch_window: float
    # K: how far a camera's clock may be off from its boarding scanner's (both
    # skews together), in seconds.
    max_skew: float = 6.0
    # Seconds either side of the window that must hold no tap for a link.
    guard: float = 2.0
    # Added to each edge of a learned window.
    margin: float = 0.75
    # Venue seconds to wait after a window closes for taps still in flight.
    settle: float = 60.0
    # Decide anyway this long after the capture (the stream may be quiet).
    give_up: float = 600.0
    # Samples needed before the learned window replaces the prior one (a
    # quiet ride photographs a few vehicles an hour: it must not wait all day).
    min_samples: int = 8
    max_samples: int = 300
    # Re-decide held captures after this many new samples.
    relearn_every: int = 25
    # Captures needed before an alignment is tried, and the most it looks at.
    bootstrap_captures: int = 8
    align_captures: int = 120
    # While a camera is not calibrated and its prior window could hold two
    # vehicles, its captures wait this long for calibration, then are held.
    calibration_wait: float = 3600.0
    # A calibrated camera whose recent captures are held this often (a clock
    # reset moved its window) is aligned afresh.
    stuck_share: float = 0.3
    stuck_run: int = 20
    # How long (venue seconds) a decided capture may still be re-decided.
    horizon: float = 4 * 3600.0
    # Step of the alignment's search over shifts, in seconds.
    align_step: float = 0.25
    # Dispatches may come this much faster than the nameplate interval.
    faster: float = 0.2


class Verdict(Enum):
    MATCHED = "matched"
    AMBIGUOUS = "ambiguous"
    NO_MATCH = "no_match"


@dataclass(frozen=True, slots=True)
class Decision:
    capture_key: str
    camera_id: str
    verdict: Verdict
    # MATCHED: the vehicle's taps. AMBIGUOUS: every plausible rider's taps.
    taps: tuple[Tap, ...]
    reason: str
    # MATCHED: the first and last tap of the vehicle (what the model learns from).
    first: float | None = None
    last: float | None = None

    @property
    def guest_ids(self) -> frozenset[str]:
        return frozenset(t.guest_id for t in self.taps)


def _quantile(ordered: Sequence[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, math.floor(q * (len(ordered) - 1) + 0.5)))
    return ordered[index]


REFRESH_EVERY = 10


class Timeline:
    """The taps at one boarding point, in time order, each once."""

    def __init__(self) -> None:
        self._times: list[float] = []
        self._taps: list[Tap] = []
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._taps)

    def add(self, tap: Tap) -> bool:
        if tap.tap_id in self._ids:
            return False
        self._ids.add(tap.tap_id)
        index = bisect.bisect_right(self._times, tap.at)
        self._times.insert(index, tap.at)
        self._taps.insert(index, tap)
        return True

    def between(self, lo: float, hi: float) -> list[Tap]:
        """Taps with lo <= at <= hi."""
        return self._taps[
            bisect.bisect_left(self._times, lo) : bisect.bisect_right(self._times, hi)
        ]

    def count(self, lo: float, hi: float) -> int:
        return bisect.bisect_right(self._times, hi) - bisect.bisect_left(self._times, lo)

    def forget(self, guest_id: str) -> None:
        kept = [t for t in self._taps if t.guest_id != guest_id]
        if len(kept) != len(self._taps):
            self._taps = kept
            self._times = [t.at for t in kept]
            self._ids = {t.tap_id for t in kept}

    def prune(self, before: float) -> None:
        cut = bisect.bisect_left(self._times, before)
        for tap in self._taps[:cut]:
            self._ids.discard(tap.tap_id)
        del self._times[:cut]
        del self._taps[:cut]


class CameraModel:
    """Where, relative to a capture, the taps of the vehicle it shows lie."""

    def __init__(self, camera: RideCamera, rules: LinkRules) -> None:
        self.camera = camera
        self.rules = rules
        self._samples: deque[tuple[float, float]] = deque(maxlen=rules.max_samples)
        self.added_since_relearn = 0
        self._unrefreshed = 0
        skew, jitter, window = rules.max_skew, camera.jitter, rules.dispatch_window
        self.prior = (camera.delay - skew - jitter, camera.delay + skew + jitter + window)
        self._window = self.prior
        self.span = boarding_span(camera, rules)

    @property
    def learned(self) -> bool:
        return len(self._samples) >= self.rules.min_samples

    @property
    def samples(self) -> int:
        return len(self._samples)

    def window(self) -> tuple[float, float]:
        """(A, B): the vehicle's taps lie in [c - B, c - A] for a capture at c."""
        return self._window

    def spread(self) -> float:
        """How far apart the taps of one vehicle may lie: the venue's dispatch
        window while the prior stands; once the camera is calibrated, anything
        since the vehicle before left (riders may tap well before their
        vehicle does: the venue's window is a rule of thumb, not a bound)."""
        if self.learned:
            return self.span
        return self.rules.dispatch_window + self.camera.jitter

    def add(self, first_offset: float, last_offset: float) -> None:
        self._samples.append((first_offset, last_offset))
        self.added_since_relearn += 1
        self._unrefreshed += 1
        # The window moves slowly: recomputing it every few samples is enough.
        if self._unrefreshed >= REFRESH_EVERY or len(self._samples) == self.rules.min_samples:
            self._refresh()

    def seed(self, samples: Iterable[tuple[float, float]]) -> None:
        for first_offset, last_offset in samples:
            self._samples.append((first_offset, last_offset))
        self._refresh()

    def reset(self, samples: Iterable[tuple[float, float]]) -> None:
        self._samples.clear()
        self.seed(samples)

    def alone_window(self) -> tuple[float, float]:
        """The prior, reaching back on the early side to the vehicle before:
        where a capture's vehicle's taps lie when no other capture of the
        camera is near enough to show any of them (every vehicle with riders
        is photographed, so taps near a lone capture are its vehicle's)."""
        low, high = self.prior
        return low, high - self.rules.dispatch_window + max(self.rules.dispatch_window, self.span)

    def alone_reach(self) -> float:
        """How close another capture may be for its vehicle's taps to fall in a
        lone capture's window (its own window and guards, and a vehicle's spread)."""
        low, high = self.alone_window()
        return high - low + 2 * self.rules.guard + self.span

    def one_vehicle_only(self) -> bool:
        """True if the window and its guards are too narrow to hold taps of two
        dispatches: even a capture whose own vehicle has no taps (empty, or every
        tap lost) cannot then be matched to a neighbour."""
        low, high = self._window
        width = high - low + 2 * self.rules.guard
        if self.learned:
            return width < self.camera.dispatch_interval + self.rules.guard
        # The prior may sit anywhere within the skew bound of the truth.
        return width <= self.camera.dispatch_interval - self.rules.dispatch_window

    def _refresh(self) -> None:
        self._unrefreshed = 0
        if not self.learned:
            self._window = self.prior
            return
        # A capture is later than every tap of its vehicle by at least
        # (capture - last tap) and at most (capture - first tap). Samples far
        # from the median (a match that was wrong after all) do not count.
        reach = self.rules.dispatch_window + 2 * self.camera.jitter
        mid = sorted(s[1] for s in self._samples)[len(self._samples) // 2]
        kept = [s for s in self._samples if abs(s[1] - mid) <= reach]
        lasts = sorted(s[1] for s in kept)
        margin = self.rules.margin
        # The latest tap of a vehicle is at c - A or before: A is learned, and
        # within the prior (the prior's skew bound holds every honest case).
        top = self.camera.delay + self.rules.max_skew + self.camera.jitter
        low = min(max(_quantile(lasts, 0.02) - margin, self.prior[0]), top)
        # Its earliest is after the vehicle before it left, which was at least
        # a (fast) dispatch interval earlier: a bound from the ride, not from
        # how early riders happened to tap in the samples so far.
        self._window = (low, low + self.span)


def boarding_span(camera: RideCamera, rules: LinkRules) -> float:
    """Seconds before its dispatch within which a vehicle's riders tap: since
    the vehicle before it left, at least a fast dispatch interval earlier (and
    never less than the venue's dispatch window)."""
    return max(rules.dispatch_window, (1.0 - rules.faster) * camera.dispatch_interval)


def judge(
    at: float,
    window: tuple[float, float],
    taps: Sequence[Tap],
    camera: RideCamera,
    rules: LinkRules,
    spread: float | None = None,
    party_reach: float | None = None,
) -> tuple[Verdict, tuple[Tap, ...], str]:
    """The verdict on a capture at `at` given the taps around its window (at
    least `party_reach` + guard beyond each edge). `spread`: how far apart one
    vehicle's taps may lie; `party_reach`: how far from the window a party
    member's tap may still be the same dispatch's (both the venue's dispatch
    window by default)."""
    low, high = window
    lo, hi = at - high, at - low
    guard = rules.guard
    inside = [t for t in taps if lo <= t.at <= hi]
    edge = [t for t in taps if lo - guard <= t.at < lo or hi < t.at <= hi + guard]
    if not inside:
        if edge:
            return Verdict.AMBIGUOUS, tuple(edge), "taps only at the edge of the window"
        return Verdict.NO_MATCH, (), "no boarding taps in the window"
    if edge:
        return Verdict.AMBIGUOUS, tuple(inside + edge), "taps at the edge of the window"
    riders = {t.guest_id for t in inside}
    if len(riders) > camera.capacity:
        return Verdict.AMBIGUOUS, tuple(inside), "more riders than a vehicle holds"
    if spread is None:
        spread = rules.dispatch_window + camera.jitter
    if inside[-1].at - inside[0].at > spread:
        return Verdict.AMBIGUOUS, tuple(inside), "taps spread wider than one dispatch"
    parties = {t.party_id for t in inside}
    reach = (rules.dispatch_window if party_reach is None else party_reach) + guard
    for tap in taps:
        near = lo - reach <= tap.at <= hi + reach and not lo <= tap.at <= hi
        if near and tap.party_id in parties and tap.guest_id not in riders:
            return Verdict.AMBIGUOUS, tuple(inside), "a party split across vehicles"
    return Verdict.MATCHED, tuple(inside), "one vehicle in the window"


def align(
    captures: Sequence[float],
    timeline: Timeline,
    camera: RideCamera,
    rules: LinkRules,
) -> list[tuple[float, float]]:
    """Samples (capture - first tap, capture - last tap) from a run of captures,
    by matching the sequence of captures to the sequence of vehicles.

    Each candidate offset of the delay (within the clock-skew bound: the truth
    is always in range) is scored by how many boarding taps the captures'
    windows then cover, and how many windows hold some. The best offsets form
    one run; a second run nearly as good, apart from it, is the same sequence
    one vehicle off (a ride that dispatches like clockwork, in a range wider than
    a dispatch), and then the data cannot tell: nothing is learned. Only windows
    holding one isolated vehicle give samples.
    """
    if not captures:
        return []
    window, jitter = rules.dispatch_window, camera.jitter
    reach = rules.max_skew + jitter
    steps = round(2 * reach / rules.align_step)
    scores: list[tuple[int, int]] = []
    for i in range(steps + 1):
        delay = camera.delay - reach + i * rules.align_step
        covered: set[str] = set()
        nonempty = 0
        for c in captures:
            found = timeline.between(c - delay - window - jitter, c - delay + jitter)
            if found:
                nonempty += 1
                covered.update(t.tap_id for t in found)
        scores.append((len(covered), nonempty))
    best = max(scores)
    if best[0] == 0:
        return []
    # Runs of offsets scoring within 5% of the best: exactly one may stand.
    good = [s[0] >= 0.95 * best[0] and s[1] >= 0.95 * best[1] for s in scores]
    runs = [i for i in range(len(good)) if good[i] and (i == 0 or not good[i - 1])]
    if len(runs) != 1:
        return []
    top = [i for i, s in enumerate(scores) if s == best]
    centre = top[len(top) // 2]
    # Where the range spans a dispatch (allowing for dispatches a fifth faster
    # than the nameplate), the same sequence one vehicle off is in range too:
    # it must fall clearly short.
    if 2 * reach >= 0.8 * camera.dispatch_interval:
        near = 0.8 * camera.dispatch_interval / rules.align_step
        far = 1.2 * camera.dispatch_interval / rules.align_step
        rivals = [s[0] for i, s in enumerate(scores) if near <= abs(i - centre) <= far]
        if rivals and max(rivals) > 0.85 * best[0]:
            return []
    delay = camera.delay - reach + centre * rules.align_step
    isolation = 2 * rules.guard
    # Riders may tap earlier than the venue's window says: a vehicle is the
    # cluster of taps before the dispatch, within what the ride allows.
    span = boarding_span(camera, rules)
    samples: list[tuple[float, float]] = []
    for c in captures:
        inside = timeline.between(c - delay - window - jitter, c - delay + jitter)
        if not inside:
            continue
        group = _group_of(inside[-1], timeline, span, isolation)
        if group is None or len({t.guest_id for t in group}) > camera.capacity:
            continue
        if group[0].at < c - delay - span - jitter:
            continue  # the vehicle reaches out of the window: not a clean sample
        samples.append((c - group[0].at, c - group[-1].at))
    return samples


def _group_of(anchor: Tap, timeline: Timeline, window: float, isolation: float) -> list[Tap] | None:
    """The taps around `anchor` with no gap wider than `isolation`, if they span
    at most one dispatch window and stand apart from every other tap."""
    near = timeline.between(anchor.at - window - isolation, anchor.at + window + isolation)
    index = next(i for i, t in enumerate(near) if t.tap_id == anchor.tap_id)
    first = last = index
    while first > 0 and near[first].at - near[first - 1].at <= isolation:
        first -= 1
    while last < len(near) - 1 and near[last + 1].at - near[last].at <= isolation:
        last += 1
    group = near[first : last + 1]
    if group[-1].at - group[0].at > window:
        return None
    if timeline.count(group[0].at - isolation, group[-1].at + isolation) != len(group):
        return None
    return group


@dataclass(slots=True)
class CaptureState:
    key: str
    camera_id: str
    at: float
    row: int = 0
    verdict: Verdict | None = None
    # Guests linked by the latest MATCHED decision (re-decisions add to it).
    riders: frozenset[str] = frozenset()
    # Candidates of the latest AMBIGUOUS decision.
    candidates: frozenset[str] = frozenset()

    @property
    def pending(self) -> bool:
        return self.verdict is None


@dataclass
class _CameraState:
    camera: RideCamera
    model: CameraModel
    times: list[float] = field(default_factory=list)
    captures: list[CaptureState] = field(default_factory=list)
    pending: set[str] = field(default_factory=set)
    # Whether each of the latest new decisions was held, and decisions since
    # the last alignment.
    recent_held: deque[bool] = field(default_factory=lambda: deque(maxlen=20))
    since_alignment: int = 0
    # Closed captures when an alignment was last tried.
    tried_with: int = 0

    def insert(self, state: CaptureState) -> None:
        index = bisect.bisect_right(self.times, state.at)
        self.times.insert(index, state.at)
        self.captures.insert(index, state)

    def around(self, lo: float, hi: float) -> list[CaptureState]:
        return self.captures[
            bisect.bisect_left(self.times, lo) : bisect.bisect_right(self.times, hi)
        ]


class LinkEngine:
    """Every ride camera's model, the boarding taps and the open captures.

    Feed it taps and captures in any order; `decide(now)` returns the decisions
    that are due: new ones, and re-decisions that add links or change a held
    capture's candidates. One engine per linking process.
    """

    def __init__(self, cameras: Iterable[RideCamera], rules: LinkRules) -> None:
        self.rules = rules
        self._cameras: dict[str, _CameraState] = {}
        self._by_point: dict[str, list[_CameraState]] = {}
        self._timelines: dict[str, Timeline] = {}
        self._keys: dict[str, CaptureState] = {}
        self._dirty: set[str] = set()
        # The latest tap time seen, over every boarding point and per point.
        self.watermark = -math.inf
        self._marks: dict[str, float] = {}
        for camera in cameras:
            state = _CameraState(camera, CameraModel(camera, rules))
            self._cameras[camera.camera_id] = state
            self._by_point.setdefault(camera.boarding_access_point, []).append(state)
            self._timelines.setdefault(camera.boarding_access_point, Timeline())

    # --- what it is fed -----------------------------------------------------

    def follows(self, access_point_id: str) -> bool:
        return access_point_id in self._timelines

    def model(self, camera_id: str) -> CameraModel:
        return self._cameras[camera_id].model

    def add_tap(self, access_point_id: str, tap: Tap) -> bool:
        """Record a boarding tap; False if it is not one we follow or seen before."""
        timeline = self._timelines.get(access_point_id)
        if timeline is None or not timeline.add(tap):
            return False
        self.watermark = max(self.watermark, tap.at)
        self._marks[access_point_id] = max(self._marks.get(access_point_id, -math.inf), tap.at)
        guard = self.rules.guard
        for cam in self._by_point[access_point_id]:
            low, high = cam.model.window()
            # Decided captures whose window or guard zone holds this tap, and
            # their neighbours (a rival's window it changes).
            width = high - low
            for state in cam.around(tap.at + low - guard - width, tap.at + high + guard + width):
                if not state.pending:
                    self._dirty.add(state.key)
        return True

    def add_capture(self, camera_id: str, key: str, at: float, row: int = 0) -> bool:
        """A new capture to decide; False for a camera we do not link or a key seen."""
        cam = self._cameras.get(camera_id)
        if cam is None or key in self._keys:
            return False
        state = CaptureState(key, camera_id, at, row)
        cam.insert(state)
        cam.pending.add(key)
        self._keys[key] = state
        return True

    def restore(
        self,
        camera_id: str,
        key: str,
        at: float,
        row: int,
        verdict: Verdict | None,
        riders: frozenset[str] = frozenset(),
        span: tuple[float, float] | None = None,
    ) -> None:
        """A capture decided before a restart (span: its vehicle's first and last tap)."""
        if not self.add_capture(camera_id, key, at, row):
            return
        state = self._keys[key]
        if verdict is not None:
            self._cameras[camera_id].pending.discard(key)
            state.verdict = verdict
            state.riders = riders
            if verdict is Verdict.MATCHED and span is not None:
                model = self._cameras[camera_id].model
                model.seed([(at - span[0], at - span[1])])

    def state(self, key: str) -> CaptureState | None:
        return self._keys.get(key)

    # --- deciding -----------------------------------------------------------

    def _due(
        self, cam: _CameraState, state: CaptureState, upto: float, quiet: float | None
    ) -> bool:
        low, _ = cam.model.window()
        closes = state.at - low + self.rules.guard + self.rules.settle
        mark = self._marks.get(cam.camera.boarding_access_point, -math.inf)
        if mark >= closes or upto >= state.at + self.rules.give_up:
            return True
        # A quiet stream: nothing more is on its way, so the clock may stand in
        # for the taps that would have shown the stream passing.
        return quiet is not None and quiet >= closes

    def _alone(self, cam: _CameraState, state: CaptureState, clock: float | None) -> bool:
        """True if the camera is not calibrated yet and no other capture of it
        is near enough to show a vehicle whose taps fall in this one's window:
        the camera's later captures have arrived past that reach (cameras send
        in order), or the quiet stream's clock has passed it well. A ride that
        dispatches rarely (a quiet day) needs no calibration to be linked."""
        if cam.model.learned:
            return False
        reach = cam.model.alone_reach()
        for other in cam.around(state.at - reach, state.at + reach):
            if other.key != state.key and other.at != state.at:
                return False
        if cam.times and cam.times[-1] > state.at + reach:
            return True
        return clock is not None and clock >= state.at + reach + self.rules.settle

    def _judge(self, cam: _CameraState, state: CaptureState, alone: bool = False) -> Decision:
        camera, rules = cam.camera, self.rules
        window = cam.model.alone_window() if alone else cam.model.window()
        low, high = window
        # A party member who tapped up to a dispatch interval away may have
        # been held back for the next vehicle (or gone ahead in the one before).
        span = cam.model.span
        reach = span + rules.guard
        taps = self._timelines[camera.boarding_access_point].between(
            state.at - high - reach, state.at - low + reach
        )
        spread = span if alone else cam.model.spread()
        verdict, chosen, reason = judge(state.at, window, taps, camera, rules, spread, span)
        if verdict is Verdict.MATCHED and alone:
            reason = "one vehicle near a lone photo of the ride"
        elif verdict is Verdict.MATCHED and not cam.model.one_vehicle_only():
            verdict = Verdict.AMBIGUOUS
            reason = "camera not calibrated: the window could hold two vehicles"
        if verdict is Verdict.MATCHED and state.row:
            # A ride that photographs rows separately shows each rider in one
            # of them only; taps do not say which.
            span = high - low
            for other in cam.around(state.at - span, state.at + span):
                if other.key != state.key and other.row and other.row != state.row:
                    verdict, reason = Verdict.AMBIGUOUS, "one of several row photos of a vehicle"
                    break
        if verdict is Verdict.MATCHED and self._rival(cam, state, window, chosen):
            verdict, reason = Verdict.AMBIGUOUS, "another photo of the ride fits the same vehicle"
        if verdict is Verdict.MATCHED:
            return Decision(
                state.key, camera.camera_id, verdict, chosen, reason, chosen[0].at, chosen[-1].at
            )
        return Decision(state.key, camera.camera_id, verdict, chosen, reason)

    def _rival(
        self,
        cam: _CameraState,
        state: CaptureState,
        window: tuple[float, float],
        vehicle: Sequence[Tap],
    ) -> bool:
        """True if another capture of the camera sees nothing but (some of) the
        same taps: each vehicle is photographed once, so one of the two shows a
        vehicle whose taps are missing or not here yet, and a capture this one
        vehicle is equally the other's."""
        low, high = window
        ids = {t.tap_id for t in vehicle}
        timeline = self._timelines[cam.camera.boarding_access_point]
        for other in cam.around(vehicle[0].at + low, vehicle[-1].at + high):
            if other.key == state.key or other.at == state.at:
                continue
            seen = timeline.between(other.at - high, other.at - low)
            if seen and all(t.tap_id in ids for t in seen):
                return True
        return False

    def _apply(self, cam: _CameraState, state: CaptureState, decision: Decision) -> bool:
        """Record a decision; True if it changes what the capture links or offers."""
        if decision.verdict is Verdict.MATCHED:
            new_riders = decision.guest_ids - state.riders
            first_match = state.verdict is not Verdict.MATCHED
            state.verdict = Verdict.MATCHED
            state.riders = state.riders | decision.guest_ids
            if first_match and decision.first is not None and decision.last is not None:
                cam.model.add(state.at - decision.first, state.at - decision.last)
            return first_match or bool(new_riders)
        if state.verdict is Verdict.MATCHED:
            # Never take back a link: later doubt is for the guest to act on.
            return False
        candidates = decision.guest_ids
        changed = state.verdict is not decision.verdict or candidates != state.candidates
        state.verdict = decision.verdict
        state.candidates = candidates
        return changed

    def decide(self, now: float | None = None) -> list[Decision]:
        """Decisions now due, in capture time order per camera.

        Time is the tap stream's own (its watermark). `now`, the venue clock, is
        for a caller whose stream has gone quiet (no tap has arrived for a
        while): captures whose window has closed by the clock are then decided
        even though no later tap says the stream has passed them.
        """
        upto = self.watermark if now is None else max(now, self.watermark)
        out: list[Decision] = []
        for cam in self._cameras.values():
            out += self._decide_camera(cam, upto, now)
        for key in sorted(self._dirty, key=lambda k: self._keys[k].at if k in self._keys else 0):
            state = self._keys.get(key)
            if state is None or state.pending:
                continue
            cam = self._cameras[state.camera_id]
            decision = self._judge(cam, state, self._alone(cam, state, now))
            if self._apply(cam, state, decision):
                out.append(decision)
        self._dirty.clear()
        return out

    def _decide_camera(self, cam: _CameraState, now: float, quiet: float | None) -> list[Decision]:
        out: list[Decision] = []
        due = sorted(
            (self._keys[k] for k in cam.pending if self._due(cam, self._keys[k], now, quiet)),
            key=lambda s: s.at,
        )
        relearn = False
        if not cam.model.learned and due:
            relearn = self._bootstrap(cam, due)
        model = cam.model
        for state in due:
            alone = self._alone(cam, state, quiet)
            waiting = not model.learned and not model.one_vehicle_only() and not alone
            if waiting and now < state.at + self.rules.calibration_wait:
                continue
            cam.pending.discard(state.key)
            was_learned = model.learned
            decision = self._judge(cam, state, alone)
            self._apply(cam, state, decision)
            out.append(decision)
            relearn |= model.learned and not was_learned
            cam.recent_held.append(decision.verdict is Verdict.AMBIGUOUS)
            cam.since_alignment += 1
        if self._stuck(cam):
            relearn |= self._realign(cam)
        if relearn or model.added_since_relearn >= self.rules.relearn_every:
            model.added_since_relearn = 0
            for state in cam.captures:
                if state.verdict in (Verdict.AMBIGUOUS, Verdict.NO_MATCH):
                    self._dirty.add(state.key)
        return out

    def _stuck(self, cam: _CameraState) -> bool:
        run = self.rules.stuck_run
        return (
            cam.model.learned
            and cam.since_alignment >= run
            and len(cam.recent_held) >= run
            and sum(cam.recent_held) >= self.rules.stuck_share * run
        )

    def _realign(self, cam: _CameraState) -> bool:
        cam.since_alignment = 0
        cam.recent_held.clear()
        closed = [s.at for s in cam.captures if not s.pending]
        recent = closed[-self.rules.align_captures :]
        timeline = self._timelines[cam.camera.boarding_access_point]
        samples = align(recent, timeline, cam.camera, self.rules)
        if len(samples) < self.rules.min_samples:
            return False
        cam.model.reset(samples)
        return True

    def _bootstrap(self, cam: _CameraState, due: list[CaptureState]) -> bool:
        closed = sorted({s.at for s in cam.captures if not s.pending} | {s.at for s in due})
        # A failed alignment is retried only once more captures have closed.
        enough = max(
            self.rules.bootstrap_captures, cam.tried_with + self.rules.bootstrap_captures // 2
        )
        if len(closed) < enough:
            return False
        cam.tried_with = len(closed)
        recent = closed[-self.rules.align_captures :]
        timeline = self._timelines[cam.camera.boarding_access_point]
        samples = align(recent, timeline, cam.camera, self.rules)
        if len(samples) < self.rules.min_samples:
            return False
        cam.model.seed(samples)
        return cam.model.learned

    # --- housekeeping -------------------------------------------------------

    def prune(self, now: float) -> None:
        """Forget captures past the horizon and taps no window can reach."""
        horizon = now - self.rules.horizon
        for cam in self._cameras.values():
            cut = bisect.bisect_left(cam.times, horizon)
            for state in cam.captures[:cut]:
                if state.pending:
                    continue
                self._keys.pop(state.key, None)
            keep = [s for s in cam.captures[:cut] if s.pending] + cam.captures[cut:]
            cam.captures = keep
            cam.times = [s.at for s in keep]
        models = [c.model for c in self._cameras.values()]
        reach = max((max(m.prior[1], m.prior[0] + m.span) for m in models), default=0.0)
        for timeline in self._timelines.values():
            timeline.prune(horizon - reach - self.rules.dispatch_window - self.rules.guard)

    def forget_guest(self, guest_id: str) -> None:
        """An erased guest: their taps are no evidence any more."""
        for timeline in self._timelines.values():
            timeline.forget(guest_id)
        for state in self._keys.values():
            state.riders = state.riders - {guest_id}
            state.candidates = state.candidates - {guest_id}

    def open_captures(self) -> Iterator[CaptureState]:
        for cam in self._cameras.values():
            yield from cam.captures
