"""Checks of request fields that raise INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from services.platform.errors import InvalidArgument

# Times outside this window are mistakes (an unset clock, a unit error).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VENUE_REF = re.compile(r"[A-Za-z0-9_.:-]+")


def text(value: str, field: str, *, max_len: int = 200, required: bool = True) -> str:
    value = value.strip()
    if not value:
        if required:
            raise InvalidArgument(field, "required")
        return ""
    if len(value) > max_len:
        raise InvalidArgument(field, f"at most {max_len} characters")
    if _CONTROL.search(value):
        raise InvalidArgument(field, "control characters are not allowed")
    return value


def ident(value: str, field: str, *, required: bool = True) -> str:
    """A UUID id in canonical form."""
    if not value:
        if required:
            raise InvalidArgument(field, "required")
        return ""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(field, "not a valid id") from None


def ref(value: str, field: str, *, required: bool = True) -> str:
    """An id from the venue definition (letters, digits, '-', '_', '.')."""
    if not value:
        if required:
            raise InvalidArgument(field, "required")
        return ""
    if len(value) > 100 or not _VENUE_REF.fullmatch(value):
        raise InvalidArgument(field, "not a valid venue id")
    return value


def enum_value(value: int, allowed: object, field: str) -> int:
    """A defined, non-UNSPECIFIED value of a protobuf enum."""
    values = getattr(allowed, "values")()  # noqa: B009 - protobuf enum wrappers
    if value == 0 or value not in values:
        raise InvalidArgument(field, "required: one of the defined values")
    return value


def timestamp(ts: Timestamp, field: str, *, required: bool = True) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        if required:
            raise InvalidArgument(field, "required")
        return None
    if not 0 <= ts.nanos < 1_000_000_000:
        raise InvalidArgument(field, "nanos out of range")
    try:
        value = ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(field, "not a representable time") from None
    if not EARLIEST <= value < LATEST:
        raise InvalidArgument(field, "outside 2000-2100: check the clock")
    return value


def required_timestamp(ts: Timestamp, field: str) -> datetime:
    value = timestamp(ts, field)
    assert value is not None
    return value


def to_timestamp(value: datetime | None) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value)
    return ts
