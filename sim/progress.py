"""The live view of a day being played (rich), or plain lines when not on a terminal."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

from sim.day import Progress


def _table(p: Progress, title: str) -> Table:
    table = Table(title=title, show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold cyan")
    table.add_column()
    table.add_row("venue time", f"{p.label}  ({p.phase})")
    table.add_row(
        "guests",
        f"{p.inside:,} in the venue · {p.arrived:,} arrived · {p.left:,} left"
        f" · {p.expected_guests:,} expected",
    )
    table.add_row("device and app events", f"{p.events_per_s:,.0f} per second")
    table.add_row(
        "calls",
        f"{p.calls:,} answered · {p.in_flight} in flight · {p.backlog:,} queued",
    )
    if p.in_flight_by_kind:
        table.add_row(
            "in flight / held",
            " · ".join(
                f"{k} {n}/{p.waiting_by_kind.get(k, 0)}" for k, n in p.in_flight_by_kind.items()
            ),
        )
    failures = f"[bold red]{p.failures:,}[/]" if p.failures else "0"
    table.add_row("failed calls", failures)
    lag = f"[yellow]{p.lag_s:,.0f} venue s behind[/]" if p.lag_s > 60 else "on time"
    table.add_row("world clock", lag)
    return table


class View:
    def __init__(self, title: str, live: bool | None = None) -> None:
        self.title = title
        self.console = Console(stderr=False)
        self.live_mode = sys.stdout.isatty() if live is None else live
        self._live: Live | None = None
        self._last_line = 0.0

    def __enter__(self) -> View:
        if self.live_mode:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, value, tb)

    def update(self, p: Progress) -> None:
        if self._live is not None:
            self._live.update(_table(p, self.title))
            return
        now = time.monotonic()
        if now - self._last_line >= 5.0:
            self._last_line = now
            print(
                f"[{p.label}] {p.phase}: {p.inside} inside, {p.arrived}/{p.expected_guests} "
                f"arrived, {p.left} left, {p.events_per_s:.0f} events/s, {p.calls} calls, "
                f"{p.failures} failed, in flight/held "
                + " ".join(
                    f"{k} {n}/{p.waiting_by_kind.get(k, 0)}" for k, n in p.in_flight_by_kind.items()
                ),
                flush=True,
            )

    def say(self, text: str) -> None:
        print(text, flush=True)
