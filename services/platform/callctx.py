"""Context of the call being served, visible to logs and outgoing calls."""

from __future__ import annotations

import contextvars
import time

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
rpc_method: contextvars.ContextVar[str] = contextvars.ContextVar("rpc_method", default="")
# Absolute time.monotonic() by which the current call must be answered.
call_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "call_deadline", default=None
)


def remaining(default: float) -> float:
    """Seconds left of the current call's deadline, or `default` outside a call."""
    deadline = call_deadline.get()
    if deadline is None:
        return default
    return deadline - time.monotonic()
