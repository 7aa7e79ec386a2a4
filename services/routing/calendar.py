"""Venue days: a schedule's minutes after local midnight become instants on a date."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from services.venue_model import OpeningHours, Venue


def venue_day(venue: Venue, instant: datetime) -> date:
    """The operating day an instant belongs to (the local date)."""
    return instant.astimezone(venue.tzinfo).date()


def at_minute(venue: Venue, day: date, minute: float) -> datetime:
    """The instant `minute` minutes after local midnight of `day` (24:00 is the next midnight)."""
    midnight = datetime.combine(day, time(0), tzinfo=venue.tzinfo)
    # Wall-clock arithmetic in the venue's zone, then to UTC: a DST change shifts
    # the instant, not the schedule.
    local = midnight + timedelta(minutes=minute)
    return local.replace(tzinfo=venue.tzinfo).astimezone(UTC)


def period(venue: Venue, day: date, hours: OpeningHours) -> tuple[datetime, datetime]:
    return at_minute(venue, day, hours.opens), at_minute(venue, day, hours.closes)


def is_open(venue: Venue, hours: OpeningHours, instant: datetime) -> bool:
    return hours.is_open_at(venue.minute_of_day(instant))
