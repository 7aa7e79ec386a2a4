"""The simulated day's report reads the ride photos only once photo has decided
them (a park's end of day), not the moment the world stops."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

from services.platform.clock import VenueClock
from sim.clock import VenueTime
from sim.frame import DayFrame
from sim.suite.calls import Caller
from sim.suite.observer import Observer
from sim.suite.stats import CallStats
from venue.photo.v1 import photo_pb2 as ppb


class _Photo:
    """Photo as the report sees it: two photos still pending, then decided and linked."""

    def __init__(self) -> None:
        self.pending = [2, 1, 0]
        self.linked = False

    async def GetPhotoStats(self, request: Any, **_: Any) -> ppb.GetPhotoStatsResponse:
        left = self.pending.pop(0) if len(self.pending) > 1 else self.pending[0]
        self.linked = left == 0
        return ppb.GetPhotoStatsResponse(total=ppb.PhotoStats(pending=left))

    async def ListPhotos(self, request: Any, **_: Any) -> ppb.ListPhotosResponse:
        if not self.linked:
            return ppb.ListPhotosResponse()
        photo = ppb.Photo(photo_id="p1", capture_id="c1", guest_ids=["g1"])
        return ppb.ListPhotosResponse(photos=[photo])


async def test_the_report_waits_for_photo_to_decide_before_reading_links(monkeypatch: Any) -> None:
    # Only the report's own pause: patching asyncio.sleep itself would make every
    # other task of the session's loop spin without ever yielding.
    monkeypatch.setattr("sim.suite.observer.PHOTO_POLL_S", 0.0)
    photo = _Photo()
    frame = DayFrame.of(date(2026, 7, 4), "UTC")
    observer = Observer(
        SimpleNamespace(photo=photo),  # type: ignore[arg-type]
        Caller(CallStats(), 4),
        frame,
        VenueTime(VenueClock.real_time(), frame),
        "ops",
        {"photo"},
        300.0,
        1,
    )
    party = SimpleNamespace(party_id="party-1")
    await observer.closing([party], {"g1": 7})  # type: ignore[list-item]
    assert observer.seen.photos == {"p1": ("c1", (7,))}
