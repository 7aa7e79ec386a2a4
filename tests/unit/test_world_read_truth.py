"""The report's "right zone at the read" looks up where the party was at the read
the twin reports, whatever the reader's clock skew did to its time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sim.config import WorldConfig
from sim.suite.readers import READ_SKEW_MS
from sim.truth import Truth

SKEW_S = READ_SKEW_MS / 1000


def test_a_read_stamped_early_is_compared_with_where_the_party_was_at_it() -> None:
    truth = Truth()
    truth.was_in(1, "land.a", 100.0)
    truth.was_in(1, "queue.b", 160.0)
    # The read at 160 reached the twin stamped 1.1 s early: the party was in queue.b.
    assert truth.zone_at(1, 158.9) == "land.a"  # the last read before: the one before
    assert truth.zone_at_read(1, 158.9, SKEW_S) == "queue.b"
    assert truth.zone_at_read(1, 161.4, SKEW_S) == "queue.b"
    # The party's first read, stamped early, is not "nowhere".
    assert truth.zone_at_read(1, 98.6, SKEW_S) == "land.a"


@given(
    reads=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=20),
    skews=st.lists(st.floats(-SKEW_S, SKEW_S, exclude_max=True), min_size=20, max_size=20),
)
def test_every_read_maps_back_to_its_own_zone(reads: list[str], skews: list[float]) -> None:
    """Reads of a party are a ping period apart, far more than twice the skew: any
    read's stamped time finds the zone the world recorded at that read."""
    period = WorldConfig().ping_period_s
    assert period > 2 * SKEW_S
    truth = Truth()
    for i, zone in enumerate(reads):
        truth.was_in(7, zone, 1000.0 + i * period)
    for i, zone in enumerate(reads):
        assert truth.zone_at_read(7, 1000.0 + i * period + skews[i], SKEW_S) == zone
