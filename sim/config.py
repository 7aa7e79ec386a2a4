"""What a simulated day is made of: the scale, the clock, the seed and the shares of
guests who behave one way or another. Every default is the realistic one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.platform.config import DEFAULT_VENUE_FILE


@dataclass(frozen=True)
class Shares:
    """Probabilities the world draws each party's habits from (by seed)."""

    # Parties whose lead adult signs in to the venue's app.
    app: float = 0.7
    # App parties who follow the plan and act on its nudges; the rest ignore them.
    follow: float = 0.5
    # App parties who book a return time or join a virtual queue when they arrive.
    book: float = 0.5
    # Consent choices, per guest (children take their adult's choices).
    location_consent: float = 0.85
    nudge_consent: float = 0.8
    photo_consent: float = 0.8
    # A party that rode a ride with a photo kiosk looks at the kiosk's screen.
    kiosk: float = 0.3
    # A party checks its "is this you?" suggestions in the app before leaving.
    suggestions: float = 0.5
    # A party buys its photos in the app before leaving (one, or the day's package).
    buy_photo: float = 0.1
    buy_package: float = 0.05


@dataclass(frozen=True)
class WorldConfig:
    venue_file: Path = DEFAULT_VENUE_FILE
    guests: int = 10_000
    seed: int = 1
    # Venue seconds per wall second.
    speed: float = 100.0
    # Hours of the day to play from opening; None plays the whole day to closing.
    hours: float | None = None
    # A band is read by every reader in range about once per this many venue seconds.
    ping_period_s: float = 60.0
    # How often an app refreshes the tip board (venue seconds).
    tipboard_period_s: float = 15.0
    # How often ops and the report sample the twin's occupancy (venue seconds).
    occupancy_period_s: float = 300.0
    # Ride breakdowns: mean operating time between failures, and the median outage.
    mtbf_hours: float = 10.0
    outage_median_minutes: float = 20.0
    # Most a ride camera's clock is off from venue time (seconds, either way).
    camera_skew_s: float = 3.0
    shares: Shares = field(default_factory=Shares)
    # Calls in flight at once, by kind of caller, each kind with a cap of its own: the
    # ticket desk, the venue's devices (gates, scanners, tills, cameras), the guests'
    # apps and the ops team do not share one connection in a real venue, and a slow
    # app call must never hold up the desk or a gate.
    desk_in_flight: int = 48
    devices_in_flight: int = 48
    apps_in_flight: int = 48
    ops_in_flight: int = 16
