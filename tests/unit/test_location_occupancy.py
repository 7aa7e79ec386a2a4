"""Occupancy publishing (coalesced, first tick publishes all) and the
per-minute history (time-weighted mean, true maximum)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.location.occupancy import MINUTE_MS, Occupancy, density

T0 = 1_780_000_020_000  # 20 s into a minute
M0 = T0 - T0 % MINUTE_MS


def counts(*values: int) -> npt.NDArray[np.int64]:
    return np.array(values, dtype=np.int64)


def test_the_first_update_publishes_every_zone_then_only_changes() -> None:
    occupancy = Occupancy(counts(10, 20, 0))
    changes, _ = occupancy.update(counts(1, 0, 0), T0)
    assert [(c.zone, c.count, c.capacity) for c in changes] == [(0, 1, 10), (1, 0, 20), (2, 0, 0)]
    changes, _ = occupancy.update(counts(1, 3, 0), T0 + 250)
    assert [(c.zone, c.count) for c in changes] == [(1, 3)]
    # Changed and changed back between two ticks: nothing to publish.
    changes, _ = occupancy.update(counts(1, 3, 0), T0 + 500)
    assert changes == []


def test_density_is_count_over_capacity_and_zero_without_one() -> None:
    assert density(5, 20) == 0.25
    assert density(5, 0) == 0.0


def test_a_minute_reports_its_time_weighted_mean_and_its_peak() -> None:
    occupancy = Occupancy(counts(100))
    occupancy.update(counts(0), M0)
    occupancy.update(counts(10), M0 + 15_000)  # 0 for 15 s
    occupancy.update(counts(40), M0 + 45_000)  # 10 for 30 s
    _, rows = occupancy.update(counts(40), M0 + MINUTE_MS + 1)  # 40 for 15 s
    assert len(rows) == 1
    row = rows[0]
    assert row.minute_ms == M0
    assert row.mean_count == pytest.approx((0 * 15 + 10 * 30 + 40 * 15) / 60)
    assert row.max_count == 40
    assert row.capacity == 100


def test_the_first_minute_after_start_counts_only_the_time_observed() -> None:
    occupancy = Occupancy(counts(100))
    occupancy.update(counts(6), T0)
    _, rows = occupancy.update(counts(6), M0 + MINUTE_MS)
    assert rows[0].mean_count == pytest.approx(6)


def test_a_long_pause_records_at_most_an_hour_of_minutes() -> None:
    occupancy = Occupancy(counts(100))
    occupancy.update(counts(3), T0)
    _, rows = occupancy.update(counts(3), T0 + 5 * 3600 * 1000)
    minutes = [r.minute_ms for r in rows]
    assert len(minutes) <= 61
    assert minutes == sorted(minutes)
    assert all(r.mean_count == pytest.approx(3) for r in rows)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40_000), st.integers(0, 50)), min_size=1, max_size=40))
def test_minutes_are_consecutive_and_bounded_by_the_counts(
    steps: list[tuple[int, int]],
) -> None:
    occupancy = Occupancy(counts(100))
    now = M0
    occupancy.update(counts(0), now)
    seen: list[int] = [0]
    rows = []
    for gap, value in steps:
        now += gap
        _, done = occupancy.update(counts(value), now)
        rows += done
        seen.append(value)
    minutes = [r.minute_ms for r in rows]
    assert minutes == list(range(M0, M0 + len(minutes) * MINUTE_MS, MINUTE_MS))
    for row in rows:
        assert 0 <= row.mean_count <= row.max_count <= max(seen)
