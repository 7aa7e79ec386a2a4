"""Per-caller rate limits: a token bucket per authenticated subject.

A venue's devices and guests' apps are many, untrusted and sometimes broken (a
scanner stuck in a retry loop, a scripted app): one of them must not take a
service's capacity from the rest. Each verified principal gets a bucket that
refills at `rate` calls per second up to `burst`; a call finding it empty is
refused with RESOURCE_EXHAUSTED, a RetryInfo saying when a call would pass and a
QuotaFailure naming the limit. Staff and services are the venue's own and are
not limited by default; anonymous calls (log-in, sign-up) are limited where they
are handled (identity's login limiter).

| variable | default | meaning |
| --- | --- | --- |
| VENUE_RATE_LIMIT_DEVICE | 100 | calls per second one device may make (0: unlimited) |
| VENUE_RATE_LIMIT_DEVICE_BURST | 200 | calls a device may make at once after a quiet spell |
| VENUE_RATE_LIMIT_GUEST | 20 | calls per second one guest's app may make (0: unlimited) |
| VENUE_RATE_LIMIT_GUEST_BURST | 40 | calls a guest's app may make at once |
| VENUE_RATE_LIMIT_STAFF | 0 | calls per second for one member of staff (0: unlimited) |
| VENUE_RATE_LIMIT_STAFF_BURST | 200 | |
| VENUE_RATE_LIMITS | on | `off` switches every limit off (benchmarks measure capacity) |

The limiter runs on the event loop of one process, so it needs no lock; each
call costs one dict lookup and a little arithmetic. The table is bounded: past
`max_subjects` the oldest bucket is dropped (a dropped caller starts full again,
which errs on the side of admitting).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from google.protobuf import duration_pb2
from google.protobuf.any_pb2 import Any as AnyProto
from google.rpc import error_details_pb2

from services.platform.config import ConfigError
from services.platform.errors import ResourceExhausted
from services.platform.principal import Kind, Principal


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: float  # bucket size


class RateLimited(ResourceExhausted):
    """RESOURCE_EXHAUSTED with when to retry and which quota was exceeded."""

    def __init__(self, kind: Kind, limit: Limit, retry_after_s: float) -> None:
        super().__init__(
            f"rate limit of {limit.rate:g} calls/s per {kind.value} exceeded",
            subject=f"{kind.value}-calls-per-second",
        )
        self.retry_after_s = retry_after_s

    def details(self) -> list[AnyProto]:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(int(self.retry_after_s * 1e9), 1_000_000))
        packed = AnyProto()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        return [*super().details(), packed]


class RateLimiter:
    """Token buckets keyed by (kind, subject); `admit` is O(1) and lock-free."""

    def __init__(
        self,
        limits: Mapping[Kind, Limit],
        max_subjects: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = dict(limits)
        self._buckets: dict[tuple[Kind, str], list[float]] = {}
        self._max = max_subjects
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self._limits)

    def admit(self, principal: Principal) -> RateLimited | None:
        """None when the call may go ahead, else the error to refuse it with."""
        limit = self._limits.get(principal.kind)
        if limit is None:
            return None
        now = self._clock()
        key = (principal.kind, principal.subject)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max:
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[key] = [limit.burst, now]
        tokens = min(limit.burst, bucket[0] + (now - bucket[1]) * limit.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return None
        bucket[0] = tokens
        return RateLimited(principal.kind, limit, (1.0 - tokens) / limit.rate)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RateLimiter:
        env = os.environ if env is None else env
        if env.get("VENUE_RATE_LIMITS", "on").lower() in {"off", "0", "false", "no"}:
            return cls({})
        limits: dict[Kind, Limit] = {}
        for kind, rate, burst in (
            (Kind.DEVICE, 100.0, 200.0),
            (Kind.GUEST, 20.0, 40.0),
            (Kind.STAFF, 0.0, 200.0),
        ):
            name = f"VENUE_RATE_LIMIT_{kind.name}"
            limit = Limit(_number(env, name, rate), _number(env, f"{name}_BURST", burst))
            if limit.rate > 0:
                limits[kind] = Limit(limit.rate, max(limit.burst, 1.0))
        return cls(limits)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name}: must not be negative, got {raw!r}")
    return value
