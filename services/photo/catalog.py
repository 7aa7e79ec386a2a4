"""What photo needs from the venue definition and its settings, read once at start.

Cameras (ride cameras with their ride's vehicle size and dispatch interval,
photo spots), the photo kiosks at ride exits and their attraction, the venue's
photo rules (retention, dispatch window), its currency and day, and the
service's own settings (prices, windows, skew bounds) from VENUE_PHOTO_*
variables, each with a documented default (services/photo/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.photo.linking import LinkRules, RideCamera
from services.platform.config import ConfigError
from services.venue_model import AccessPointKind, CameraKind, UnknownIdError, Venue
from venue.photo.v1 import photo_pb2 as pb

DEFAULT_JITTER_SECONDS = 2.0


@dataclass(frozen=True)
class PhotoConfig:
    """The service's own knobs (venue seconds and minor units)."""

    photo_price_minor: int = 1499
    package_price_minor: int = 3999
    # The merchant access books in-app photo sales under.
    merchant_id: str = "photo"
    # How far a camera's clock may be off from its boarding scanner's.
    max_skew_seconds: float = 6.0
    # A capture may be this far ahead of venue now (clock skew and transit).
    future_seconds: float = 120.0
    # Wait after a capture's window for boarding taps still in flight.
    settle_seconds: float = 60.0
    # What a kiosk screen shows by default, and how long a photo is claimable.
    kiosk_minutes: float = 10.0
    claim_minutes: float = 60.0
    # A photographer's tap covers the photos of this many minutes.
    session_minutes: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PhotoConfig:
        def number(name: str, default: float, minimum: float = 0.0) -> float:
            raw = env.get(f"VENUE_PHOTO_{name}", "")
            if raw == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"VENUE_PHOTO_{name}: expected a number, got {raw!r}") from None
            if value < minimum:
                raise ConfigError(f"VENUE_PHOTO_{name}: must be at least {minimum}")
            return value

        base = cls()
        return cls(
            photo_price_minor=int(number("PRICE_MINOR", base.photo_price_minor, 1)),
            package_price_minor=int(number("PACKAGE_PRICE_MINOR", base.package_price_minor, 1)),
            merchant_id=env.get("VENUE_PHOTO_MERCHANT_ID", base.merchant_id) or base.merchant_id,
            max_skew_seconds=number("MAX_SKEW_SECONDS", base.max_skew_seconds),
            future_seconds=number("FUTURE_SECONDS", base.future_seconds),
            settle_seconds=number("SETTLE_SECONDS", base.settle_seconds),
            kiosk_minutes=number("KIOSK_MINUTES", base.kiosk_minutes, 1),
            claim_minutes=number("CLAIM_MINUTES", base.claim_minutes, 1),
            session_minutes=number("SESSION_MINUTES", base.session_minutes, 1),
        )


@dataclass(frozen=True, slots=True)
class CameraInfo:
    camera_id: str
    source: int  # CaptureSource
    attraction_id: str  # "" for photo spots


class Catalog:
    def __init__(self, venue: Venue, config: PhotoConfig) -> None:
        self.venue_id = venue.id
        self.config = config
        self.currency = venue.currency
        self.tz = ZoneInfo(venue.timezone)
        self.retention = timedelta(days=venue.rules.photo_retention_days)
        self.rules = LinkRules(
            dispatch_window=venue.rules.photo_dispatch_window_seconds,
            max_skew=config.max_skew_seconds,
            settle=config.settle_seconds,
        )
        self.cameras: dict[str, CameraInfo] = {}
        self.ride_cameras: list[RideCamera] = []
        for camera in venue.cameras:
            ride = camera.kind is CameraKind.RIDE and camera.attraction is not None
            self.cameras[camera.id] = CameraInfo(
                camera.id,
                pb.CAPTURE_SOURCE_RIDE_CAMERA if ride else pb.CAPTURE_SOURCE_PHOTOGRAPHER,
                camera.attraction or "",
            )
            if (
                ride
                and camera.attraction is not None
                and camera.boarding_access_point is not None
                and camera.delay_seconds is not None
            ):
                queue = venue.queue_of(camera.attraction)
                self.ride_cameras.append(
                    RideCamera(
                        camera.id,
                        camera.attraction,
                        camera.boarding_access_point,
                        camera.delay_seconds,
                        camera.jitter_seconds or DEFAULT_JITTER_SECONDS,
                        queue.vehicle_capacity,
                        queue.dispatch_interval_seconds,
                    )
                )
        self.kiosks: dict[str, str] = {
            ap.id: ap.attraction
            for ap in venue.access_points_of_kind(AccessPointKind.PHOTO_KIOSK)
            if ap.attraction is not None
        }
        self.attraction_names: dict[str, str] = {a.id: a.name for a in venue.attractions()}
        # Boarding points whose taps photo follows, and their attractions.
        self.boarding_points = {c.boarding_access_point for c in self.ride_cameras}
        self.linked_attractions = sorted({c.attraction_id for c in self.ride_cameras})
        self._venue = venue

    def camera(self, camera_id: str) -> CameraInfo | None:
        return self.cameras.get(camera_id)

    def is_attraction(self, attraction_id: str) -> bool:
        try:
            self._venue.attraction(attraction_id)
        except UnknownIdError:
            return False
        return True

    def attraction_name(self, attraction_id: str) -> str:
        return self.attraction_names.get(attraction_id, "the ride")

    def venue_date(self, instant: datetime) -> date:
        """The operating day of an instant (the venue's local date)."""
        return instant.astimezone(self.tz).date()

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        start = datetime.combine(day, time(0), tzinfo=self.tz)
        return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)

    def local_clock(self, instant: datetime) -> str:
        return instant.astimezone(self.tz).strftime("%H:%M")
