"""The attention budget: which candidates a guest actually receives.

Guests drowning in notifications is the main complaint about these systems, so
the budget is strict and pure:

- consent: with personalized nudges off, a guest gets only service messages
  they asked for (their virtual-queue group being called);
- muted kinds are never sent, not even service messages (the guest said so);
- quiet periods hold everything back except service messages;
- a message (dedup key) reaches a guest at most once a day, and one message
  per subject (a stop, a booking) per decision; a subject with a nudge still
  open on the guest's phone gets no second one until that one is acknowledged,
  expires or is withdrawn (a boarding call is never held back by it);
- learning: each kind's score is its minutes saved times (a + 1) / (a + d + 1)
  for a accepted and d dismissed nudges of that kind, so dismissed kinds need
  ever larger savings to be sent again;
- at most `max_per_hour` budgeted nudges in any 60-minute window (the venue's
  rule, or the guest's lower limit), and none within `min_gap` of the last one,
  except time-critical ones, which may break the gap but never the hourly cap.

Candidates are considered best first (highest score, then urgency), so the
budget goes to the nudges that save the most.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.itinerary.model import (
    BETTER_ROUTE,
    BOARDING_GROUP_CALLED,
    GO_NOW,
    HOUR,
    LEAVE_NOW,
    RIDE_DOWN_REPLAN,
    SERVICE_KINDS,
    SKIP_OR_MOVE,
    SNACK_BREAK,
    TIME_CRITICAL,
    Candidate,
    GuestNudgeState,
    KindFeedback,
    Preferences,
)

# The least score (seconds saved, after learning) worth a guest's attention.
MIN_SCORE_S: dict[int, float] = {
    SNACK_BREAK: 240.0,
    SKIP_OR_MOVE: 600.0,
    BETTER_ROUTE: 180.0,
    GO_NOW: 600.0,
    LEAVE_NOW: 300.0,
    RIDE_DOWN_REPLAN: 120.0,
    BOARDING_GROUP_CALLED: 0.0,
}

SENT_WHY = "sent"
DUPLICATE = "duplicate"
MUTED = "muted"
NO_CONSENT = "consent"
QUIET = "quiet"
LOW_VALUE = "low_value"
HOURLY_CAP = "hourly_cap"
MIN_GAP = "min_gap"
SAME_SUBJECT = "same_subject"


@dataclass(frozen=True, slots=True)
class Budget:
    """The venue's rule (venue file: rules.nudges)."""

    max_per_hour: int
    min_gap: timedelta

    def for_guest(self, prefs: Preferences | None) -> Budget:
        if prefs is None or prefs.max_per_hour <= 0:
            return self
        return Budget(min(self.max_per_hour, prefs.max_per_hour), self.min_gap)


@dataclass(frozen=True, slots=True)
class Decision:
    candidate: Candidate
    send: bool
    why: str


def acceptance(feedback: KindFeedback | None) -> float:
    if feedback is None:
        return 1.0
    return (feedback.accepted + 1) / (feedback.accepted + feedback.dismissed + 1)


def score(candidate: Candidate, state: GuestNudgeState) -> float:
    return candidate.time_saved_s * acceptance(state.feedback.get(candidate.kind))


def rank(candidates: Iterable[Candidate], state: GuestNudgeState) -> list[Candidate]:
    """Best first: service messages, then by score, then by urgency; stable."""
    return sorted(
        candidates,
        key=lambda c: (c.kind not in SERVICE_KINDS, -score(c, state), -c.urgency, c.dedup_key),
    )


def hourly_room(state: GuestNudgeState, at: datetime, cap: int) -> bool:
    """Whether one more budgeted nudge at `at` keeps every 60-minute window
    within the cap. Later nudges already sent count too, so the property holds
    even if decisions arrive out of time order."""
    times = [*state.budgeted_at, at]
    times.sort()
    # Only windows containing `at` can be newly violated.
    for start in times:
        if start > at:
            break
        if at - start >= HOUR:
            continue
        inside = sum(1 for t in times if start <= t < start + HOUR)
        if inside > cap:
            return False
    return True


def gap_ok(state: GuestNudgeState, at: datetime, min_gap: timedelta) -> bool:
    return all(abs(at - t) >= min_gap for t in state.budgeted_at)


def select(
    candidates: Sequence[Candidate],
    state: GuestNudgeState,
    prefs: Preferences | None,
    budget: Budget,
    consent: bool,
    now: datetime,
    withdrawing: frozenset[str] = frozenset(),
) -> list[Decision]:
    """Decide each candidate for one guest at `now`. Does not change `state`:
    the caller records what was sent once it is stored. `withdrawing`: ids of
    open nudges this evaluation withdraws (their subjects are free again)."""
    budget = budget.for_guest(prefs)
    muted = prefs.muted_kinds if prefs else frozenset()
    quiet = prefs.quiet_at(now) if prefs else False
    decisions: list[Decision] = []
    taken_keys: set[str] = set()
    taken_subjects: set[str] = set()
    # Subjects on the guest's phone now: any nudge holds back budgeted ones; only
    # a service message holds back another service message (a "leave now" must
    # not hold back the boarding call the guest asked for).
    showing: dict[str, bool] = {}
    for n in state.open_nudges.values():
        if n.subject and n.nudge_id not in withdrawing and n.is_open(now):
            showing[n.subject] = showing.get(n.subject, False) or n.kind in SERVICE_KINDS
    # A scratch copy so that earlier picks in this decision count against later ones.
    scratch = GuestNudgeState(state.guest_id, state.day, list(state.budgeted_at))
    for cand in rank(candidates, state):
        why = _refusal(cand, state, scratch, muted, quiet, consent, budget, now)
        if why is None and cand.dedup_key in taken_keys:
            why = DUPLICATE
        if why is None and cand.subject and cand.subject in taken_subjects:
            why = SAME_SUBJECT
        if (
            why is None
            and cand.subject in showing
            and (cand.kind not in SERVICE_KINDS or showing[cand.subject])
        ):
            why = SAME_SUBJECT
        if why is None:
            taken_keys.add(cand.dedup_key)
            if cand.subject:
                taken_subjects.add(cand.subject)
            if cand.kind not in SERVICE_KINDS:
                scratch.budgeted_at.append(now)
            decisions.append(Decision(cand, True, SENT_WHY))
        else:
            decisions.append(Decision(cand, False, why))
    return decisions


def _refusal(
    cand: Candidate,
    state: GuestNudgeState,
    scratch: GuestNudgeState,
    muted: frozenset[int],
    quiet: bool,
    consent: bool,
    budget: Budget,
    now: datetime,
) -> str | None:
    if cand.dedup_key in state.sent_keys:
        return DUPLICATE
    if cand.kind in muted:
        return MUTED
    if cand.kind in SERVICE_KINDS:
        return None
    if not consent:
        return NO_CONSENT
    if quiet:
        return QUIET
    if score(cand, state) < MIN_SCORE_S.get(cand.kind, 0.0):
        return LOW_VALUE
    if budget.max_per_hour <= 0 or not hourly_room(scratch, now, budget.max_per_hour):
        return HOURLY_CAP
    if cand.urgency != TIME_CRITICAL and not gap_ok(scratch, now, budget.min_gap):
        return MIN_GAP
    return None
