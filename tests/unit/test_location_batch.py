"""Checking ping batches: what refuses a whole batch, what rejects one row (and
only that row), with which reason, in which order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.location.batch import MAX_ROWS, Limits, check_rows, refusal
from services.location.directory import DEACTIVATED
from venue.location.v1 import location_pb2 as pb

NOW = 1_780_000_000_000
READERS = {"rd.a": 0, "rd.b": 1, "rd.c": 2}
BANDS = {"BAND-0001": 0, "BAND-0002": 1, "BAND-OLD1": DEACTIVATED}
# The device speaks for rd.a and rd.b only.
LIMITS = Limits(np.array([True, True, False]), NOW - 3_600_000, NOW + 10_000)


def batch(rows: list[tuple[str, str, int, int]], batch_id: str = "b1") -> pb.PingBatch:
    b = pb.PingBatch(batch_id=batch_id)
    for band, reader, at, rssi in rows:
        b.band_uids.append(band)
        b.reader_ids.append(reader)
        b.observed_at_unix_ms.append(at)
        b.rssi_dbm.append(rssi)
    return b


GOOD = ("BAND-0001", "rd.a", NOW, -60)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (("BAND-0001", "rd.nowhere", NOW, -60), pb.PING_REJECT_REASON_UNKNOWN_READER),
        (("BAND-0001", "rd.c", NOW, -60), pb.PING_REJECT_REASON_READER_NOT_ALLOWED),
        (("bad uid!", "rd.a", NOW, -60), pb.PING_REJECT_REASON_MALFORMED_BAND_UID),
        (("", "rd.a", NOW, -60), pb.PING_REJECT_REASON_MALFORMED_BAND_UID),
        (("BAND-9999", "rd.a", NOW, -60), pb.PING_REJECT_REASON_UNKNOWN_BAND),
        (("BAND-OLD1", "rd.a", NOW, -60), pb.PING_REJECT_REASON_BAND_DEACTIVATED),
        (("BAND-0001", "rd.a", NOW + 10_001, -60), pb.PING_REJECT_REASON_TIME_IN_FUTURE),
        (("BAND-0001", "rd.a", 2**62, -60), pb.PING_REJECT_REASON_TIME_IN_FUTURE),
        (("BAND-0001", "rd.a", NOW - 3_600_001, -60), pb.PING_REJECT_REASON_TOO_OLD),
        (("BAND-0001", "rd.a", -5, -60), pb.PING_REJECT_REASON_TOO_OLD),
        (("BAND-0001", "rd.a", NOW, 3), pb.PING_REJECT_REASON_RSSI_OUT_OF_RANGE),
        (("BAND-0001", "rd.a", NOW, -128), pb.PING_REJECT_REASON_RSSI_OUT_OF_RANGE),
    ],
)
def test_a_bad_row_is_rejected_with_its_reason_and_the_rest_accepted(
    row: tuple[str, str, int, int], reason: int
) -> None:
    b = batch([GOOD, row, ("BAND-0002", "rd.b", NOW - 5, -70)])
    assert refusal(b) == 0
    checked = check_rows(b, BANDS, READERS, LIMITS)
    assert checked.rejected == [(1, reason)]
    assert checked.accepted == 2
    assert checked.slots.tolist() == [0, 1]
    assert checked.readers.tolist() == [0, 1]
    assert checked.at_ms.tolist() == [NOW, NOW - 5]
    assert checked.rssi_dbm.tolist() == [-60, -70]


def test_the_first_reason_in_the_documented_order_is_given() -> None:
    b = batch(
        [
            ("bad uid!", "rd.nowhere", NOW + 99_999, 5),  # reader first
            ("bad uid!", "rd.c", NOW, 5),  # then the device's scope
            ("BAND-OLD1", "rd.a", NOW + 99_999, 5),  # then the band
            ("BAND-0001", "rd.a", NOW + 99_999, 5),  # then time
        ]
    )
    assert check_rows(b, BANDS, READERS, LIMITS).rejected == [
        (0, pb.PING_REJECT_REASON_UNKNOWN_READER),
        (1, pb.PING_REJECT_REASON_READER_NOT_ALLOWED),
        (2, pb.PING_REJECT_REASON_BAND_DEACTIVATED),
        (3, pb.PING_REJECT_REASON_TIME_IN_FUTURE),
    ]


def test_a_batch_of_only_bad_rows_is_still_accepted_with_every_row_rejected() -> None:
    checked = check_rows(batch([("x", "y", 0, 0)] * 3), BANDS, READERS, LIMITS)
    assert checked.accepted == 0
    assert [r for r, _ in checked.rejected] == [0, 1, 2]


def test_an_empty_batch_is_accepted_with_nothing_in_it() -> None:
    b = batch([])
    assert refusal(b) == 0
    assert check_rows(b, BANDS, READERS, LIMITS).accepted == 0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: batch([GOOD], batch_id=""), pb.PING_BATCH_REFUSAL_REASON_MISSING_BATCH_ID),
        (
            lambda: batch([GOOD], batch_id="has space"),
            pb.PING_BATCH_REFUSAL_REASON_MALFORMED_BATCH_ID,
        ),
        (
            lambda: batch([GOOD], batch_id="x" * 129),
            pb.PING_BATCH_REFUSAL_REASON_MALFORMED_BATCH_ID,
        ),
        (
            lambda: pb.PingBatch(
                batch_id="b", band_uids=["BAND-0001"], reader_ids=["rd.a"], rssi_dbm=[-50]
            ),
            pb.PING_BATCH_REFUSAL_REASON_COLUMN_LENGTH_MISMATCH,
        ),
        (
            lambda: pb.PingBatch(
                batch_id="b",
                band_uids=["BAND-0001"],
                reader_ids=["rd.a", "rd.b"],
                observed_at_unix_ms=[NOW],
                rssi_dbm=[-50],
            ),
            pb.PING_BATCH_REFUSAL_REASON_COLUMN_LENGTH_MISMATCH,
        ),
        (lambda: batch([GOOD] * (MAX_ROWS + 1)), pb.PING_BATCH_REFUSAL_REASON_TOO_MANY_ROWS),
    ],
)
def test_unreadable_batches_are_refused_whole(make: object, reason: int) -> None:
    assert refusal(make()) == reason  # type: ignore[operator]


def test_the_largest_batch_is_readable() -> None:
    b = batch([GOOD] * MAX_ROWS)
    assert refusal(b) == 0
    assert check_rows(b, BANDS, READERS, LIMITS).accepted == MAX_ROWS


_ROWS = st.tuples(
    st.sampled_from(["BAND-0001", "BAND-0002", "BAND-OLD1", "BAND-9999", "bad uid!", ""]),
    st.sampled_from(["rd.a", "rd.b", "rd.c", "rd.nowhere"]),
    st.integers(NOW - 3_700_000, NOW + 20_000) | st.sampled_from([-1, 0, 2**62]),
    st.integers(-140, 10),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_ROWS, max_size=25))
def test_each_row_is_judged_alone_and_accounted_for_once(
    rows: list[tuple[str, str, int, int]],
) -> None:
    """A gateway mixes many readers' reads: a row's verdict must not depend on
    its neighbours, and every row is either accepted or rejected, never both."""
    b = batch(rows)
    assert refusal(b) == 0
    checked = check_rows(b, BANDS, READERS, LIMITS)
    rejected = dict(checked.rejected)
    assert [r for r, _ in checked.rejected] == sorted(rejected)
    assert checked.accepted + len(rejected) == len(rows)
    good: list[tuple[int, int, int, int]] = []
    for i, row in enumerate(rows):
        alone = check_rows(batch([row]), BANDS, READERS, LIMITS)
        if i in rejected:
            assert alone.rejected == [(0, rejected[i])]
        else:
            assert alone.rejected == []
            good.append((BANDS[row[0]], READERS[row[1]], row[2], row[3]))
    assert (
        list(
            zip(
                checked.slots.tolist(),
                checked.readers.tolist(),
                checked.at_ms.tolist(),
                checked.rssi_dbm.tolist(),
                strict=True,
            )
        )
        == good
    )
    # What is accepted is within the limits the ack promises.
    assert all(LIMITS.oldest_ms <= at <= LIMITS.newest_ms for _, _, at, _ in good)
    assert all(-127 <= rssi <= 0 and slot >= 0 for slot, _, _, rssi in good)
