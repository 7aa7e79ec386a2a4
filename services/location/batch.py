"""Checking a ping batch: whole-batch refusals, then every row at once.

A batch is refused whole only when it cannot be read as a batch (no usable
batch_id, columns of different lengths, more rows than MAX_ROWS). Otherwise
every row is judged on its own: a bad row is rejected with its reason and the
good rows of the same batch are accepted. A gateway batches the reads of many
readers and bands; one lost band or one misconfigured reader must not cost the
reads of everyone else, and the ack says exactly which rows to look at.

Rows are decoded column by column into numpy arrays: band UIDs and reader ids
through one dictionary lookup each, times and strengths straight from the
protobuf buffers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from services.location.directory import DEACTIVATED, UNKNOWN
from venue.location.v1 import location_pb2 as pb

MAX_ROWS = 20_000
# Identity's band UID format: anything else cannot be a band.
BAND_UID = re.compile(r"^[0-9A-Za-z:_-]{4,64}$")
BATCH_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
RSSI_MIN_DBM = -127
RSSI_MAX_DBM = 0


def refusal(batch: pb.PingBatch) -> int:
    """Why the whole batch is refused, or 0 (UNSPECIFIED) when it is readable."""
    if not batch.batch_id:
        return pb.PING_BATCH_REFUSAL_REASON_MISSING_BATCH_ID
    if not BATCH_ID.match(batch.batch_id):
        return pb.PING_BATCH_REFUSAL_REASON_MALFORMED_BATCH_ID
    n = len(batch.band_uids)
    if not n == len(batch.reader_ids) == len(batch.observed_at_unix_ms) == len(batch.rssi_dbm):
        return pb.PING_BATCH_REFUSAL_REASON_COLUMN_LENGTH_MISMATCH
    if n > MAX_ROWS:
        return pb.PING_BATCH_REFUSAL_REASON_TOO_MANY_ROWS
    return 0


@dataclass(frozen=True)
class Limits:
    """What the rows are checked against, as of one moment."""

    # Readers the sending device speaks for.
    allowed: npt.NDArray[np.bool_]
    oldest_ms: int
    newest_ms: int


@dataclass(frozen=True)
class CheckedRows:
    """The good rows (columns of equal length) and the rejected ones."""

    slots: npt.NDArray[np.int64]
    readers: npt.NDArray[np.int32]
    at_ms: npt.NDArray[np.int64]
    rssi_dbm: npt.NDArray[np.int32]
    # (row index, PingRejectReason) in row order.
    rejected: list[tuple[int, int]]

    @property
    def accepted(self) -> int:
        return int(self.slots.shape[0])


def check_rows(
    batch: pb.PingBatch,
    slot_of_band: Mapping[str, int],
    reader_index: Mapping[str, int],
    limits: Limits,
) -> CheckedRows:
    """Every row of a readable batch, judged. Reasons are tried in a fixed order
    (reader, band, time, strength); a row gets the first that applies."""
    n = len(batch.band_uids)
    slots = np.fromiter(map(slot_of_band.get, batch.band_uids, repeat(UNKNOWN)), np.int64, n)
    readers = np.fromiter(map(reader_index.get, batch.reader_ids, repeat(-1)), np.int32, n)
    at_ms = np.array(batch.observed_at_unix_ms, dtype=np.int64)
    rssi = np.array(batch.rssi_dbm, dtype=np.int32)

    reason = np.zeros(n, dtype=np.int8)

    def mark(bad: npt.NDArray[np.bool_], code: int) -> None:
        reason[bad & (reason == 0)] = code

    known_reader = readers >= 0
    mark(~known_reader, pb.PING_REJECT_REASON_UNKNOWN_READER)
    allowed = np.zeros(n, dtype=np.bool_)
    allowed[known_reader] = limits.allowed[readers[known_reader]]
    mark(known_reader & ~allowed, pb.PING_REJECT_REASON_READER_NOT_ALLOWED)
    for row in np.flatnonzero((slots == UNKNOWN) & (reason == 0)).tolist():
        well_formed = BAND_UID.match(batch.band_uids[row]) is not None
        reason[row] = (
            pb.PING_REJECT_REASON_UNKNOWN_BAND
            if well_formed
            else pb.PING_REJECT_REASON_MALFORMED_BAND_UID
        )
    mark(slots == DEACTIVATED, pb.PING_REJECT_REASON_BAND_DEACTIVATED)
    mark(at_ms > limits.newest_ms, pb.PING_REJECT_REASON_TIME_IN_FUTURE)
    mark(at_ms < limits.oldest_ms, pb.PING_REJECT_REASON_TOO_OLD)
    mark((rssi < RSSI_MIN_DBM) | (rssi > RSSI_MAX_DBM), pb.PING_REJECT_REASON_RSSI_OUT_OF_RANGE)

    bad = np.flatnonzero(reason)
    if bad.size == 0:
        return CheckedRows(slots, readers, at_ms, rssi, [])
    good = reason == 0
    rejected = list(zip(bad.tolist(), reason[bad].tolist(), strict=True))
    return CheckedRows(slots[good], readers[good], at_ms[good], rssi[good], rejected)


def ack(batch_id: str, checked: CheckedRows) -> pb.IngestPingsResponse:
    return pb.IngestPingsResponse(
        batch_id=batch_id,
        outcome=pb.PING_BATCH_OUTCOME_ACCEPTED,
        accepted_count=checked.accepted,
        rejected=[
            pb.RejectedPing(row_index=r, reason=c)  # type: ignore[arg-type]
            for r, c in checked.rejected
        ],
    )


def refused(batch_id: str, reason: int) -> pb.IngestPingsResponse:
    return pb.IngestPingsResponse(
        batch_id=batch_id[:128],
        outcome=pb.PING_BATCH_OUTCOME_REFUSED,
        refusal_reason=reason,  # type: ignore[arg-type]
    )
