"""What the world's core asks of the outside: devices that report what happens, and
the apps guests carry. The core stays synchronous and deterministic; everything
here returns at once, and whatever the suite answers later comes back into the
core as an event at the venue time it arrived (World.inject).

`Offline` is the world with no suite attached: nothing is reported and the apps
show nothing, so the guests rely on their own eyes. It is what the core's unit
tests play, and a dry run of the world's parameters (`venue run --offline`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sim.geography import Heard
from sim.population import Member, Party


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    quantity: int
    unit_minor: int


@dataclass(frozen=True, slots=True)
class Seen:
    """What the tip board showed for one attraction: None where it said nothing."""

    open: bool | None
    posted_s: float | None
    age_s: float | None


@dataclass(slots=True)
class Pass:
    """A return time or virtual-queue pass the party holds, as the app shows it."""

    booking_id: str
    attraction: str
    window: tuple[float, float] | None  # None until a virtual-queue group is called
    virtual: bool
    used: bool = False


class Devices(Protocol):
    def tap(self, party: Party, member: Member, access_point: str, t: float) -> None: ...

    def charge(
        self,
        party: Party,
        member: Member,
        merchant: str,
        till: str,
        items: tuple[Item, ...],
        t: float,
        pin: str | None,
        category: str,
    ) -> None: ...

    def hear(self, party: Party, heard: tuple[Heard, ...], t: float) -> None: ...

    def capture(self, camera: str, capture_id: str, taken_s: float) -> None: ...

    def photographer_tap(self, camera: str, party: Party, member: Member, t: float) -> None: ...

    def kiosk(
        self, kiosk: str, attraction: str, party: Party, member: Member, capture_id: str, t: float
    ) -> None: ...

    def ride_status(
        self, attraction: str, status: str, t: float, expected_back_s: float | None
    ) -> None: ...


class Apps(Protocol):
    def seen(self, attraction: str, t: float) -> Seen: ...

    def arrived(self, party: Party, t: float, wishes: list[str]) -> None: ...

    def next_stop(self, party: Party, t: float, reply: Callable[[str | None], None]) -> bool: ...

    def did(self, party: Party, poi: str, t: float) -> None: ...

    def left(self, party: Party, t: float) -> None: ...


class OfflineDevices:
    def tap(self, party: Party, member: Member, access_point: str, t: float) -> None:
        pass

    def charge(
        self,
        party: Party,
        member: Member,
        merchant: str,
        till: str,
        items: tuple[Item, ...],
        t: float,
        pin: str | None,
        category: str,
    ) -> None:
        pass

    def hear(self, party: Party, heard: tuple[Heard, ...], t: float) -> None:
        pass

    def capture(self, camera: str, capture_id: str, taken_s: float) -> None:
        pass

    def photographer_tap(self, camera: str, party: Party, member: Member, t: float) -> None:
        pass

    def kiosk(
        self, kiosk: str, attraction: str, party: Party, member: Member, capture_id: str, t: float
    ) -> None:
        pass

    def ride_status(
        self, attraction: str, status: str, t: float, expected_back_s: float | None
    ) -> None:
        pass


class OfflineApps:
    NOTHING = Seen(None, None, None)

    def seen(self, attraction: str, t: float) -> Seen:
        return self.NOTHING

    def arrived(self, party: Party, t: float, wishes: list[str]) -> None:
        pass

    def next_stop(self, party: Party, t: float, reply: Callable[[str | None], None]) -> bool:
        return False

    def did(self, party: Party, poi: str, t: float) -> None:
        pass

    def left(self, party: Party, t: float) -> None:
        pass
