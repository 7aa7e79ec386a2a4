"""PostgreSQL's binary COPY format for the pings table, built with numpy.

Every column of a ping is fixed-width, so a whole batch is one structured
array in network byte order: no Python object per row, no per-row encoding.
That is what lets a single process store a hundred thousand pings a second and
still have time for everything else.

Row layout (pings table column order): observed_at timestamptz, track_no
integer, reader_no smallint, rssi_dbm smallint.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
PG_EPOCH_MS = 946_684_800_000

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)

PING_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("at_len", ">i4"),
        ("at", ">i8"),
        ("track_len", ">i4"),
        ("track", ">i4"),
        ("reader_len", ">i4"),
        ("reader", ">i2"),
        ("rssi_len", ">i4"),
        ("rssi", ">i2"),
    ]
)
COLUMNS = ("observed_at", "track_no", "reader_no", "rssi_dbm")


def ping_rows(
    at_ms: npt.NDArray[np.int64],
    track_no: npt.NDArray[np.int32],
    reader_no: npt.NDArray[np.int16],
    rssi_dbm: npt.NDArray[np.int32],
) -> bytes:
    """The COPY ... (FORMAT binary) payload of these rows, header and trailer included."""
    rows = np.empty(at_ms.shape[0], dtype=PING_ROW)
    rows["fields"] = len(COLUMNS)
    rows["at_len"] = 8
    rows["at"] = (at_ms - PG_EPOCH_MS) * 1000
    rows["track_len"] = 4
    rows["track"] = track_no
    rows["reader_len"] = 2
    rows["reader"] = reader_no
    rows["rssi_len"] = 2
    rows["rssi"] = rssi_dbm
    return HEADER + rows.tobytes() + TRAILER
