"""The attention budget as properties over whole random days, and its rules one by one."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.itinerary import budget
from services.itinerary.budget import Budget, select
from services.itinerary.model import (
    BETTER_ROUTE,
    BOARDING_GROUP_CALLED,
    GO_NOW,
    HOUR,
    LEAVE_NOW,
    NORMAL,
    NUDGE_KINDS,
    SENT,
    SERVICE_KINDS,
    SKIP_OR_MOVE,
    SNACK_BREAK,
    TIME_CRITICAL,
    Candidate,
    GuestNudgeState,
    KindFeedback,
    Nudge,
    OpenPlan,
    Preferences,
    Window,
)
from tests.unit.test_itinerary_kit import DAY, at

VENUE = Budget(4, timedelta(minutes=10))


def cand(
    kind: int = GO_NOW,
    key: str = "k",
    saved_min: float = 20,
    urgency: int = NORMAL,
    subject: str = "",
) -> Candidate:
    return Candidate(
        kind=kind,
        dedup_key=key,
        subject=subject,
        title="t",
        body="b",
        reason="r",
        action=OpenPlan(1),
        time_saved_s=saved_min * 60,
        urgency=urgency,
        expires_at=at(21),
    )


def sent_nudge(c: Candidate, when: datetime, n: int) -> Nudge:
    return Nudge(
        nudge_id=f"n{n}",
        guest_id="g",
        party_id="p",
        plan_id="",
        kind=c.kind,
        dedup_key=c.dedup_key,
        subject=c.subject,
        title=c.title,
        body=c.body,
        reason=c.reason,
        action=c.action,
        time_saved_s=c.time_saved_s,
        urgency=c.urgency,
        status=SENT,
        created_at=when,
        expires_at=c.expires_at,
    )


def state() -> GuestNudgeState:
    return GuestNudgeState("g", DAY)


candidates_st = st.lists(
    st.builds(
        cand,
        kind=st.sampled_from(NUDGE_KINDS),
        key=st.sampled_from([f"key{i}" for i in range(12)]),
        saved_min=st.floats(0, 60),
        urgency=st.sampled_from([1, 2, 3]),
        subject=st.sampled_from(["", "s1", "s2", "s3"]),
    ),
    max_size=5,
)


@st.composite
def days(draw: st.DrawFn) -> tuple[list[tuple[datetime, list[Candidate]]], Preferences, bool]:
    minutes = sorted(draw(st.lists(st.integers(0, 12 * 60), min_size=1, max_size=60)))
    evaluations = [(at(9) + timedelta(minutes=m), draw(candidates_st)) for m in minutes]
    quiet = draw(st.lists(st.tuples(st.integers(0, 700), st.integers(1, 120)), max_size=2))
    prefs = Preferences(
        "g",
        quiet_periods=tuple(
            Window(at(9) + timedelta(minutes=s), at(9) + timedelta(minutes=s + d)) for s, d in quiet
        ),
        muted_kinds=frozenset(draw(st.lists(st.sampled_from(NUDGE_KINDS), max_size=2))),
        max_per_hour=draw(st.integers(0, 6)),
    )
    return evaluations, prefs, draw(st.booleans())


def play(
    evaluations: list[tuple[datetime, list[Candidate]]], prefs: Preferences, consent: bool
) -> list[Nudge]:
    guest = state()
    sent: list[Nudge] = []
    for when, cands in evaluations:
        for decision in select(cands, guest, prefs, VENUE, consent, when):
            if decision.send:
                nudge = sent_nudge(decision.candidate, when, len(sent))
                guest.record_sent(nudge)
                sent.append(nudge)
    return sent


@settings(max_examples=120, deadline=None)
@given(days())
def test_never_over_budget_in_any_window_of_the_day(
    day: tuple[list[tuple[datetime, list[Candidate]]], Preferences, bool],
) -> None:
    evaluations, prefs, consent = day
    sent = play(evaluations, prefs, consent)
    cap = VENUE.for_guest(prefs).max_per_hour
    budgeted = sorted(n.created_at for n in sent if n.budgeted)
    for start in budgeted:
        assert sum(1 for t in budgeted if start <= t < start + HOUR) <= cap
    for n in sent:
        if n.budgeted and n.urgency != TIME_CRITICAL:
            earlier = [t for t in budgeted if t < n.created_at]
            assert not earlier or n.created_at - max(earlier) >= VENUE.min_gap


@settings(max_examples=120, deadline=None)
@given(days())
def test_no_duplicates_consent_muted_and_quiet_are_honoured(
    day: tuple[list[tuple[datetime, list[Candidate]]], Preferences, bool],
) -> None:
    evaluations, prefs, consent = day
    sent = play(evaluations, prefs, consent)
    keys = [n.dedup_key for n in sent]
    assert len(keys) == len(set(keys))
    for n in sent:
        assert n.kind not in prefs.muted_kinds
        if not consent or prefs.quiet_at(n.created_at):
            assert n.kind in SERVICE_KINDS


@settings(max_examples=80, deadline=None)
@given(days())
def test_consent_off_sends_nothing_but_service_messages(
    day: tuple[list[tuple[datetime, list[Candidate]]], Preferences, bool],
) -> None:
    evaluations, prefs, _ = day
    sent = play(evaluations, prefs, False)
    assert all(n.kind == BOARDING_GROUP_CALLED for n in sent)
    # ...and every service message not muted gets through, budget or not (one
    # per subject at a time).
    if BOARDING_GROUP_CALLED in prefs.muted_kinds:
        return
    keys = {n.dedup_key for n in sent}
    for when, cands in evaluations:
        # Held back only by a call on the same subject sent now or still showing.
        showing = {(n.subject or n.dedup_key) for n in sent if n.created_at <= when}
        for c in cands:
            if c.kind == BOARDING_GROUP_CALLED:
                assert c.dedup_key in keys or (c.subject or c.dedup_key) in showing


@settings(max_examples=200, deadline=None)
@given(
    saved=st.floats(0, 120),
    accepted=st.integers(0, 5),
    dismissed=st.integers(0, 8),
    kind=st.sampled_from([GO_NOW, SKIP_OR_MOVE, BETTER_ROUTE, LEAVE_NOW, SNACK_BREAK]),
)
def test_a_dismissal_never_makes_a_kind_more_likely(
    saved: float, accepted: int, dismissed: int, kind: int
) -> None:
    def sends(d: int) -> bool:
        guest = state()
        guest.feedback[kind] = KindFeedback(accepted, d)
        return select([cand(kind, saved_min=saved)], guest, None, VENUE, True, at(12))[0].send

    if not sends(dismissed):
        assert not sends(dismissed + 1)


def test_dismissed_kind_needs_a_bigger_saving() -> None:
    guest = state()
    assert select([cand(GO_NOW, saved_min=15)], guest, None, VENUE, True, at(12))[0].send
    guest.feedback[GO_NOW] = KindFeedback(0, 1)
    decision = select([cand(GO_NOW, saved_min=15)], guest, None, VENUE, True, at(12))[0]
    assert (decision.send, decision.why) == (False, budget.LOW_VALUE)
    assert select([cand(GO_NOW, saved_min=25)], guest, None, VENUE, True, at(12))[0].send


def test_best_saving_wins_the_only_slot() -> None:
    guest = state()
    decisions = select(
        [cand(GO_NOW, "a", 12), cand(SKIP_OR_MOVE, "b", 40), cand(BETTER_ROUTE, "c", 5)],
        guest,
        None,
        VENUE,
        True,
        at(12),
    )
    sent = [d.candidate.dedup_key for d in decisions if d.send]
    assert sent == ["b"]
    assert {d.why for d in decisions if not d.send} == {budget.MIN_GAP}


def test_time_critical_breaks_the_gap_but_never_the_hourly_cap() -> None:
    guest = state()
    for i, minute in enumerate((0, 15, 30, 55)):
        guest.record_sent(sent_nudge(cand(key=f"old{i}"), at(12, minute), i))
    urgent = cand(LEAVE_NOW, "leave", 30, TIME_CRITICAL)
    decision = select([urgent], guest, None, VENUE, True, at(12, 58))[0]
    assert (decision.send, decision.why) == (False, budget.HOURLY_CAP)
    # Once the 12:00 one leaves the window there is room: the urgent one may come
    # 6 minutes after the last although the gap is 10; a normal one may not.
    decision = select([urgent], guest, None, VENUE, True, at(13, 1))[0]
    assert decision.send
    normal = cand(GO_NOW, "go", 30)
    decision = select([normal], guest, None, VENUE, True, at(13, 1))[0]
    assert decision.why == budget.MIN_GAP


def test_guest_limit_lowers_the_venue_budget_and_cannot_raise_it() -> None:
    guest = state()
    guest.record_sent(sent_nudge(cand(key="old"), at(12), 0))
    strict = Preferences("g", max_per_hour=1)
    assert select([cand(key="x")], guest, strict, VENUE, True, at(12, 30))[0].why == (
        budget.HOURLY_CAP
    )
    loose = Preferences("g", max_per_hour=50)
    assert VENUE.for_guest(loose).max_per_hour == VENUE.max_per_hour


def test_quiet_period_holds_everything_but_a_boarding_call() -> None:
    quiet = Preferences("g", quiet_periods=(Window(at(12), at(13)),))
    decisions = select(
        [cand(LEAVE_NOW, "l", 30, TIME_CRITICAL), cand(BOARDING_GROUP_CALLED, "b", 0)],
        state(),
        quiet,
        VENUE,
        True,
        at(12, 30),
    )
    assert {(d.candidate.dedup_key, d.send, d.why) for d in decisions} == {
        ("l", False, budget.QUIET),
        ("b", True, budget.SENT_WHY),
    }


def test_an_open_nudge_holds_its_subject_until_it_closes() -> None:
    guest = state()
    board = cand(BOARDING_GROUP_CALLED, "board", 0, subject="stop1")
    guest.record_sent(sent_nudge(board, at(12), 0))
    leave = cand(LEAVE_NOW, "leave", 30, TIME_CRITICAL, subject="stop1")
    assert select([leave], guest, None, VENUE, True, at(12, 5))[0].why == budget.SAME_SUBJECT
    # Withdrawn in this very evaluation: the subject is free.
    assert select([leave], guest, None, VENUE, True, at(12, 5), frozenset({"n0"}))[0].send
    # Another subject is not held.
    other = cand(LEAVE_NOW, "leave2", 30, TIME_CRITICAL, subject="stop2")
    assert select([other], guest, None, VENUE, True, at(12, 5))[0].send
    # A leave-now showing never holds back the boarding call for its stop.
    guest = state()
    guest.record_sent(sent_nudge(leave, at(12), 0))
    assert select([board], guest, None, VENUE, True, at(12, 5))[0].send


def test_one_message_per_subject_and_per_key() -> None:
    decisions = select(
        [
            cand(BOARDING_GROUP_CALLED, "b1", subject="stop1"),
            cand(LEAVE_NOW, "l1", 40, TIME_CRITICAL, subject="stop1"),
            cand(BOARDING_GROUP_CALLED, "b1", subject="stop2"),
        ],
        state(),
        None,
        VENUE,
        True,
        at(12),
    )
    assert [(d.candidate.subject, d.why) for d in decisions] == [
        ("stop1", budget.SENT_WHY),
        ("stop2", budget.DUPLICATE),
        ("stop1", budget.SAME_SUBJECT),
    ]


def test_a_key_is_sent_once_a_day() -> None:
    guest = state()
    guest.record_sent(sent_nudge(cand(key="go"), at(10), 0))
    assert select([cand(key="go")], guest, None, VENUE, True, at(15))[0].why == budget.DUPLICATE
    assert select([replace(cand(), dedup_key="other")], guest, None, VENUE, True, at(15))[0].send


# --- more properties: urgent exceptions, learned dismissals, dedup under replay ---------

history_st = st.lists(st.integers(0, 180), max_size=8)


def with_history(minutes: list[int]) -> GuestNudgeState:
    """A guest who already received budgeted nudges at these minutes after 11:00."""
    guest = state()
    for i, m in enumerate(sorted(set(minutes))):
        guest.record_sent(sent_nudge(cand(key=f"old{i}"), at(11) + timedelta(minutes=m), i))
    return guest


@settings(max_examples=80, deadline=None)
@given(
    history=history_st,
    minute=st.integers(0, 180),
    kind=st.sampled_from([GO_NOW, SKIP_OR_MOVE, BETTER_ROUTE, LEAVE_NOW, SNACK_BREAK]),
    saved=st.floats(0, 90),
)
def test_time_critical_is_excused_the_gap_and_nothing_else(
    history: list[int], minute: int, kind: int, saved: float
) -> None:
    guest = with_history(history)
    now = at(11) + timedelta(minutes=minute)
    normal = select([cand(kind, "x", saved, NORMAL)], guest, None, VENUE, True, now)[0]
    urgent = select([cand(kind, "x", saved, TIME_CRITICAL)], guest, None, VENUE, True, now)[0]
    assert urgent.why != budget.MIN_GAP
    if normal.why == budget.MIN_GAP:
        # Held back only by the gap: the urgent one goes.
        assert urgent.send
    elif normal.send:
        assert urgent.send
    else:
        # Cap, value, consent ...: the same for both.
        assert urgent.why == normal.why


@settings(max_examples=80, deadline=None)
@given(
    history=history_st,
    minute=st.integers(0, 180),
    kind=st.sampled_from([GO_NOW, SKIP_OR_MOVE, BETTER_ROUTE, LEAVE_NOW, SNACK_BREAK]),
    saved=st.floats(0, 90),
    accepted=st.integers(0, 5),
    dismissed=st.integers(0, 8),
    urgency=st.sampled_from([NORMAL, TIME_CRITICAL]),
)
def test_more_dismissals_never_let_more_through_at_any_point_of_the_day(
    history: list[int],
    minute: int,
    kind: int,
    saved: float,
    accepted: int,
    dismissed: int,
    urgency: int,
) -> None:
    now = at(11) + timedelta(minutes=minute)

    def sends(d: int) -> bool:
        guest = with_history(history)
        guest.feedback[kind] = KindFeedback(accepted, d)
        c = cand(kind, "x", saved, urgency)
        return select([c], guest, None, VENUE, True, now)[0].send

    if sends(dismissed + 1):
        assert sends(dismissed)


@settings(max_examples=40, deadline=None)
@given(days())
def test_a_dismissed_kind_is_sent_no_more_over_a_day(
    day: tuple[list[tuple[datetime, list[Candidate]]], Preferences, bool],
) -> None:
    """The same day played for a guest who has dismissed GO_NOW three times
    and for one who has not: the dismisser never gets more of them."""
    evaluations, _, _ = day
    only_go = [(when, [c for c in cands if c.kind == GO_NOW]) for when, cands in evaluations]

    def count(dismissed: int) -> int:
        guest = state()
        guest.feedback[GO_NOW] = KindFeedback(0, dismissed)
        n = 0
        for when, cands in only_go:
            for decision in select(cands, guest, None, VENUE, True, when):
                if decision.send:
                    guest.record_sent(sent_nudge(decision.candidate, when, n))
                    n += 1
        return n

    assert count(3) <= count(0)


@settings(max_examples=40, deadline=None)
@given(days())
def test_replayed_evaluations_send_nothing_new(
    day: tuple[list[tuple[datetime, list[Candidate]]], Preferences, bool],
) -> None:
    """Dedup: each evaluation run twice (a replayed event, a restart) sends
    exactly what running it once sends, and no key twice."""
    evaluations, prefs, consent = day
    once = play(evaluations, prefs, consent)
    doubled = [e for e in evaluations for _ in range(2)]
    twice = play(doubled, prefs, consent)
    assert [(n.dedup_key, n.created_at) for n in twice] == [
        (n.dedup_key, n.created_at) for n in once
    ]


@settings(max_examples=40, deadline=None)
@given(cands=candidates_st, minute=st.integers(0, 600), consent=st.booleans())
def test_one_decision_sends_each_key_and_subject_once_whatever_the_order(
    cands: list[Candidate], minute: int, consent: bool
) -> None:
    # One candidate per key (a rule makes one message per key).
    cands = list({c.dedup_key: c for c in cands}.values())
    now = at(9) + timedelta(minutes=minute)
    forward = select(cands, state(), None, VENUE, consent, now)
    backward = select(list(reversed(cands)), state(), None, VENUE, consent, now)
    for decisions in (forward, backward):
        sent = [d.candidate for d in decisions if d.send]
        assert len({c.dedup_key for c in sent}) == len(sent)
        subjects = [c.subject for c in sent if c.subject]
        assert len(set(subjects)) == len(subjects)
    # Ranking is by value, not by arrival order: the same keys go out.
    assert {d.candidate.dedup_key for d in forward if d.send} == {
        d.candidate.dedup_key for d in backward if d.send
    }
