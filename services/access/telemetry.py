"""Tracing of the two hot paths without a span per query.

The asyncpg instrumentation makes a span for every statement; on Tap and
Charge that doubled the CPU a call costs (span creation and export). Their
statements run with instrumentation suppressed instead, under one CLIENT span
for the whole database work of the call (database semantic conventions:
`db.system`, `db.operation.name`, `db.namespace`), and the call's own server
span carries what an operator needs: the time spent in the database
(`venue.db.ms`) and how many times a lost race made it decide again
(`venue.db.retries`), next to the access point, decision and guest it already
names.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, Status, StatusCode

_tracer = trace.get_tracer("venue.access.db")
_DB_ATTRS = {
    "db.system": "postgresql",
    "db.operation.name": "TRANSACTION",
    "db.namespace": "access",
}


@dataclass
class Timing:
    retries: int = 0


@contextmanager
def hot_path_database(what: str) -> Iterator[Timing]:
    span = trace.get_current_span()
    # Not made current: the call's attributes still land on the server span.
    database = _tracer.start_span(
        f"TRANSACTION access.{what}", kind=SpanKind.CLIENT, attributes=_DB_ATTRS
    )
    timing = Timing()
    started = time.perf_counter()
    try:
        with suppress_instrumentation():
            yield timing
    except Exception as exc:
        database.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        if timing.retries:
            database.set_attribute("venue.db.retries", timing.retries)
        database.end()
        if span.is_recording():
            span.set_attribute("venue.db.ms", round((time.perf_counter() - started) * 1000, 3))
            if timing.retries:
                span.set_attribute("venue.db.retries", timing.retries)
