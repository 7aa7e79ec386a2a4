"""The per-caller token bucket: within any stretch of time a caller gets at most
its burst plus what refills; a refusal says when a call would pass; callers and
kinds do not share buckets; configuration is read and checked."""

from __future__ import annotations

import pytest
from google.rpc import error_details_pb2
from hypothesis import given
from hypothesis import strategies as st

from services.platform.config import ConfigError
from services.platform.principal import Kind, Principal
from services.platform.ratelimit import Limit, RateLimited, RateLimiter

GUEST = Principal(Kind.GUEST, "g1", party_id="p1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@given(
    gaps=st.lists(st.floats(0, 0.5), min_size=1, max_size=300),
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 20),
)
def test_admitted_calls_never_exceed_burst_plus_refill(
    gaps: list[float], rate: float, burst: int
) -> None:
    clock = Clock()
    limiter = RateLimiter({Kind.GUEST: Limit(rate, burst)}, clock=clock)
    start = clock.now
    admitted = 0
    for gap in gaps:
        clock.now += gap
        if limiter.admit(GUEST) is None:
            admitted += 1
        assert admitted <= burst + (clock.now - start) * rate + 1e-9


def test_a_refusal_says_when_the_next_call_passes() -> None:
    clock = Clock()
    limiter = RateLimiter({Kind.GUEST: Limit(2, 3)}, clock=clock)
    assert all(limiter.admit(GUEST) is None for _ in range(3))
    refused = limiter.admit(GUEST)
    assert isinstance(refused, RateLimited)
    assert refused.retry_after_s == pytest.approx(0.5)
    details = {d.type_url.rsplit("/", 1)[-1] for d in refused.to_status().details}
    assert error_details_pb2.RetryInfo.DESCRIPTOR.full_name in details
    assert error_details_pb2.QuotaFailure.DESCRIPTOR.full_name in details
    clock.now += refused.retry_after_s
    assert limiter.admit(GUEST) is None


def test_callers_and_kinds_have_their_own_buckets() -> None:
    clock = Clock()
    limiter = RateLimiter({Kind.GUEST: Limit(1, 1), Kind.DEVICE: Limit(1, 1)}, clock=clock)
    assert limiter.admit(GUEST) is None
    assert limiter.admit(GUEST) is not None
    assert limiter.admit(Principal(Kind.GUEST, "g2")) is None
    assert limiter.admit(Principal(Kind.DEVICE, "g1", device_kind=1)) is None
    # Kinds without a limit (staff, services here) are never refused.
    assert all(limiter.admit(Principal(Kind.SERVICE, "queue")) is None for _ in range(100))


def test_the_table_of_buckets_is_bounded() -> None:
    limiter = RateLimiter({Kind.GUEST: Limit(1, 1)}, max_subjects=10)
    for i in range(100):
        limiter.admit(Principal(Kind.GUEST, f"g{i}"))
    assert len(limiter._buckets) == 10


def test_configuration() -> None:
    default = RateLimiter.from_env({})
    assert default.enabled
    assert RateLimiter.from_env({"VENUE_RATE_LIMITS": "off"}).enabled is False
    custom = RateLimiter.from_env(
        {
            "VENUE_RATE_LIMIT_GUEST": "0",
            "VENUE_RATE_LIMIT_DEVICE": "5",
            "VENUE_RATE_LIMIT_DEVICE_BURST": "7",
        }
    )
    assert custom._limits == {Kind.DEVICE: Limit(5, 7)}
    with pytest.raises(ConfigError, match="VENUE_RATE_LIMIT_GUEST"):
        RateLimiter.from_env({"VENUE_RATE_LIMIT_GUEST": "fast"})
    with pytest.raises(ConfigError, match="negative"):
        RateLimiter.from_env({"VENUE_RATE_LIMIT_DEVICE": "-1"})
