"""The line twin against constructed tap sequences with known answers."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from services.queue.schedule import DOWN, OPEN, OpsStatus, VenueCalendar
from services.queue.twin import Hours, TapFact, TapKind, Twin
from tests.unit.test_queue_linesim import (
    CLOSES,
    OPENS,
    T_OPEN,
    TZ,
    Event,
    Stop,
    World,
    new_twin,
    play,
    simulate,
    spec,
)
from venue.queue.v1 import queue_pb2 as pb

A = "ride"
TECHNICAL = pb.STATUS_REASON_TECHNICAL


def flat(level: float) -> World:
    """A ride with steady demand at `level` of its capacity, no one turned away."""
    return World(
        spec(1200, 20, walk=60.0),
        true_interval=60.0,
        true_load=20,
        demand=lambda _hour: level,
        tolerance=(10_000.0, 10_001.0),
        close_hour=14.0,
        seed=11,
    )


def test_steady_state_obeys_littles_law() -> None:
    """The twin's line, averaged over time, is the arrival rate times the mean
    time in line (L = lambda W); and the posted wait is that time."""
    world = flat(0.8)
    day = simulate(world)
    twin = new_twin(world.spec)
    start, end = T_OPEN + 3600, T_OPEN + 4 * 3600  # past the opening transient
    area = 0.0
    last = start
    kind = {"standby": TapKind.STANDBY, "merge": TapKind.MERGE, "board": TapKind.BOARDING}
    for n, event in enumerate(day.events):
        if start < event.at:
            upto = min(event.at, end)
            if upto > last:
                area += len(twin.lines[A].standby) * (upto - last)
                last = upto
        twin.apply(TapFact(f"t{n}", kind[event.kind], A, event.guest, event.at))
    window = [(e, b) for e, b in day.truth.values() if start <= e < end]
    arrival_rate = len(window) / (end - start)
    mean_wait = sum(b - e for e, b in window) / len(window)
    mean_line = area / (end - start)
    assert abs(mean_line - arrival_rate * mean_wait) <= 0.03 * arrival_rate * mean_wait
    report = play(world, day)
    assert report.mae <= 1.0
    assert abs(report.bias) <= 0.5


def test_learns_the_rides_real_rate_not_the_nameplate() -> None:
    world = replace(flat(1.3), true_interval=80.0, true_load=18)  # 810/h against 1200/h
    report = play(world)
    assert abs(report.twin.lines[A].service_rate * 3600 - 810) < 40
    assert abs(report.twin.lines[A].dispatch_interval - 80.0) < 2.0
    assert report.mae <= 2.0


def test_learns_the_walk_to_the_load() -> None:
    world = replace(flat(0.3), spec=spec(1200, 20, walk=40.0), walk_spread=(2.0, 2.5))
    report = play(world)
    # Guests really take 80 to 100 s; the venue's geometry said 40 s.
    assert 75.0 <= report.twin.lines[A].walk.value <= 105.0


def test_guests_without_taps_and_leavers_are_counted() -> None:
    world = replace(flat(0.95), untapped_share=0.08, leave_share=0.05)
    report = play(world)
    line = report.twin.lines[A]
    assert 0.05 <= line.untapped.value <= 0.11
    assert line.left_unseen > 0
    assert report.mae <= 3.0


def _feed_until(twin: Twin, events: list[Event], until: float, start: int = 0) -> int:
    i = start
    kind = {"standby": TapKind.STANDBY, "merge": TapKind.MERGE, "board": TapKind.BOARDING}
    while i < len(events) and events[i].at < until:
        event = events[i]
        if event.kind == "ops":
            twin.set_ops(A, OpsStatus(event.status, TECHNICAL, "", event.at, event.expected))
            twin.refresh_status(A, event.at)
        else:
            twin.apply(TapFact(f"t{i}", kind[event.kind], A, event.guest, event.at))
        i += 1
    return i


def test_a_breakdown_grows_the_line_and_the_wait_and_recovery_drains_it() -> None:
    world = replace(flat(0.8), stops=[Stop(12.0, 30.0, expected_minutes=30.0)])
    day = simulate(world)
    twin = new_twin(world.spec)
    events = day.events
    stop = T_OPEN + 3 * 3600
    i = _feed_until(twin, events, stop - 1)
    before_line = len(twin.lines[A].standby)
    before = twin.estimate(A, stop - 1).posted
    i = _feed_until(twin, events, stop + 60, i)
    assert twin.status(A, stop + 60).status == DOWN
    early = twin.estimate(A, stop + 60).posted
    i = _feed_until(twin, events, stop + 25 * 60, i)
    late_line = len(twin.lines[A].standby)
    late = twin.estimate(A, stop + 25 * 60).posted
    assert before is not None and early is not None and late is not None
    # Down: the wait carries the rest of the stop, and the line grows with arrivals.
    assert early >= before + 25 * 60
    assert late_line > 2 * before_line
    assert late > before
    # Back: the line drains and the wait falls back.
    i = _feed_until(twin, events, stop + 31 * 60, i)
    assert twin.status(A, stop + 31 * 60).status == OPEN
    reopened_line = len(twin.lines[A].standby)
    reopened = twin.estimate(A, stop + 31 * 60).posted
    i = _feed_until(twin, events, stop + 150 * 60, i)
    drained_line = len(twin.lines[A].standby)
    drained = twin.estimate(A, stop + 150 * 60).posted
    assert reopened is not None and drained is not None
    assert drained_line < reopened_line / 2
    assert drained < reopened / 2
    assert abs(drained - before) < 5 * 60
    # The stop taught the venue how long stops last.
    assert twin.repairs.count == 1


def test_an_unannounced_stop_is_found_from_the_boarding_taps() -> None:
    world = replace(flat(0.9), stops=[Stop(12.0, 20.0, announced=False)])
    day = simulate(world)
    twin = new_twin(world.spec)
    stop = T_OPEN + 3 * 3600
    i = _feed_until(twin, day.events, stop + 8 * 60)
    running = twin.estimate(A, stop - 60)
    assert twin.lines[A].stalled_since(stop + 8 * 60) is not None
    stalled = twin.estimate(A, stop + 8 * 60, fresh=True)
    assert stalled.posted is not None and running.posted is not None
    _feed_until(twin, day.events, stop + 40 * 60, i)
    assert twin.lines[A].stalled_since(stop + 40 * 60) is None
    assert any(end is not None and end - start >= 15 * 60 for start, end in twin.lines[A].stops)


# --- handling facts twice changes nothing -------------------------------------------------


def fingerprint(twin: Twin) -> tuple[object, ...]:
    parts: list[object] = [sorted(twin.where.items()), twin.population.inside]
    for attraction in sorted(twin.lines):
        line = twin.lines[attraction]
        parts.append(
            (
                sorted((g, e.at, e.ahead, e.raw, e.posted) for g, e in line.standby.items()),
                sorted(line.returning.items()),
                line.entered,
                line.boarded_standby,
                line.boarded_return,
                line.boarded_untapped,
                line.left_seen,
                line.left_unseen,
                round(line.service_rate, 9),
                line.dispatch_interval,
                round(line.walk.value, 9),
                round(line.untapped.value, 9),
                round(line.residuals.correction, 9),
                list(line.stops),
                len(line.seen),
            )
        )
    return tuple(parts)


facts = st.lists(
    st.tuples(
        st.sampled_from([TapKind.STANDBY, TapKind.MERGE, TapKind.BOARDING, TapKind.EXIT]),
        st.integers(0, 11),  # guest
        st.floats(0.5, 90.0),  # seconds after the previous fact
        st.sampled_from(["ride", "boats"]),
    ),
    min_size=1,
    max_size=120,
)


def _twin() -> Twin:
    specs = {"ride": spec(1200, 20, name="ride"), "boats": spec(3000, 10, name="boats")}
    return Twin(specs, {a: Hours(OPENS, CLOSES) for a in specs}, VenueCalendar(TZ))


def _facts(raw: list[tuple[TapKind, int, float, str]]) -> list[TapFact]:
    t = T_OPEN + 600
    found = []
    for n, (kind, guest, gap, attraction) in enumerate(raw):
        t += gap
        found.append(
            TapFact(f"tap-{n}", kind, "" if kind is TapKind.EXIT else attraction, f"g{guest}", t)
        )
    return found


@settings(max_examples=60, deadline=None)
@given(facts, st.randoms(use_true_random=False))
def test_replayed_and_duplicated_facts_leave_the_twin_as_once(
    raw: list[tuple[TapKind, int, float, str]], rng: random.Random
) -> None:
    stream = _facts(raw)
    once = _twin()
    recorded = []
    for fact in stream:
        applied = once.apply(fact)
        recorded.append((applied.raw, applied.posted))
    # The stream again, each fact handled once or more, and earlier facts
    # redelivered later (a consumer resuming from an older cursor).
    twice = _twin()
    for n, fact in enumerate(stream):
        for _ in range(rng.randint(1, 3)):
            twice.apply(fact)
        if n and rng.random() < 0.3:
            twice.apply(stream[rng.randrange(n)])
    assert fingerprint(twice) == fingerprint(once)
    # A restart: the stored facts replayed in order with what was posted then.
    restarted = _twin()
    for fact, estimate in zip(stream, recorded, strict=True):
        restarted.apply(fact, recorded=estimate)
    assert fingerprint(restarted) == fingerprint(once)


@settings(max_examples=60, deadline=None)
@given(facts)
def test_the_standby_line_conserves_its_guests(raw: list[tuple[TapKind, int, float, str]]) -> None:
    """Every guest who tapped in is in the line, has boarded from it, or has
    left it (seen elsewhere, tapped in again, merged, or passed by later
    guests); and every distinct boarding tap is one rider, from standby, the
    return merge, or without a tap before."""
    stream = _facts(raw)
    twin = _twin()
    for fact in stream:
        twin.apply(fact)
        twin.apply(fact)  # redelivered: counts once
    for attraction, line in twin.lines.items():
        out = line.boarded_standby + line.left_seen + line.left_unseen
        assert line.entered == len(line.standby) + out
        assert len(line.standby) == len(line.standby_times())
        boardings = sum(
            1 for f in stream if f.kind is TapKind.BOARDING and f.attraction_id == attraction
        )
        riders = line.boarded_standby + line.boarded_return + line.boarded_untapped
        assert riders == boardings
        assert line.line_length() >= len(line.standby)
