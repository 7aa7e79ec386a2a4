"""Slows down password guessing: after a few failures for one e-mail address,
refuse further attempts for a while (RESOURCE_EXHAUSTED)."""

from __future__ import annotations

import time

from services.platform.errors import ResourceExhausted

MAX_FAILURES = 5
WINDOW_S = 15 * 60


class LoginLimiter:
    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S) -> None:
        self._failures: dict[str, list[float]] = {}
        self._max = max_failures
        self._window = window_s

    def _recent(self, who: str, now: float) -> list[float]:
        recent = [t for t in self._failures.get(who, ()) if now - t < self._window]
        if recent:
            self._failures[who] = recent
        else:
            self._failures.pop(who, None)
        return recent

    def check(self, who: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._recent(who, now)) >= self._max:
            raise ResourceExhausted("too many failed logins; try again later", subject="login")

    def failed(self, who: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._failures[who] = [*self._recent(who, now), now]

    def succeeded(self, who: str) -> None:
        self._failures.pop(who, None)
