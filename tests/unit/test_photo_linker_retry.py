"""The linker keeps writing a decision whose riders identity's stream has not
brought yet, for ten venue minutes and at least two wall minutes: a suite whose
venue clock runs fast (or a busy one) sees identity many venue minutes late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.photo.linker import UNKNOWN_GUEST_WAIT, Linker
from services.photo.linking import LinkEngine, LinkRules, RideCamera, Tap

CAMERA = RideCamera(
    "cam", "ride", "board", delay=40.0, jitter=2.0, capacity=12, dispatch_interval=30.0
)
T0 = 1_800_000_000.0


class _Clock:
    def __init__(self) -> None:
        self.at = datetime.fromtimestamp(T0, UTC)

    def now(self) -> datetime:
        return self.at


class _Store:
    """apply_decision as the store answers it: the rider unknown until identity
    has told photo about them."""

    def __init__(self) -> None:
        self.known = False
        self.linked: list[str] = []

    async def apply_decision(self, photo_id: str, *_: Any) -> list[str]:
        if not self.known:
            return ["a"]
        self.linked.append(photo_id)
        return []


class _Hub:
    def poke(self) -> None:
        pass


async def test_a_rider_identity_brings_late_is_still_linked() -> None:
    engine = LinkEngine([CAMERA], LinkRules(dispatch_window=8.0, max_skew=5.0))
    engine.model("cam").seed([(44.0, 39.0)] * 8)
    store, clock = _Store(), _Clock()
    linker = Linker(engine, store, clock, _Hub())  # type: ignore[arg-type]
    engine.add_tap("board", Tap("t1", "a", "A", T0))
    engine.add_capture("cam", "p1", T0 + 41)
    engine.add_tap("board", Tap("t2", "b", "B", T0 + 300))
    clock.at += timedelta(seconds=400)
    assert await linker.step() == 1
    assert store.linked == []
    # Venue time runs past its ten minutes (a day played at 100x: six wall
    # seconds) before identity's stream brings the rider.
    clock.at += UNKNOWN_GUEST_WAIT * 3
    await linker.step()
    store.known = True
    await linker.step()
    assert store.linked == ["p1"]
