"""Fresh ids and protobuf timestamps at a cost the hot paths can afford.

`str(uuid.uuid4())` builds a UUID object (a Python `__init__` with checks) only
to print it; `Timestamp.FromDatetime` goes through a time tuple and
`calendar.timegm`. Taps and charges make one or two of each per call, so these
make the same values directly.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_id() -> str:
    """A random (version 4, RFC 4122 variant) UUID in its canonical text form,
    exactly what `str(uuid.uuid4())` returns."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def timestamp_of(value: datetime) -> Timestamp:
    """The Timestamp `Timestamp.FromDatetime(value)` gives (naive: taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)
