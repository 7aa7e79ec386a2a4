"""`venue run`'s clock: the suite gets longer to start on a busy machine and with
more services, and the head start before opening never reaches back past midnight."""

from __future__ import annotations

import os

from sim.run import head_start_s, startup_allowance_s


def test_a_busy_machine_and_more_services_get_longer_to_start() -> None:
    cores = os.cpu_count() or 1
    quiet = startup_allowance_s(7, load=0.0)
    assert startup_allowance_s(3, load=0.0) < quiet
    assert startup_allowance_s(7, load=3.0 * cores) == 3.0 * quiet
    # Capped: a machine that busy will not play the day well anyway.
    assert startup_allowance_s(7, load=50.0 * cores) == 4.0 * quiet


def test_the_head_start_grows_with_the_day_and_stays_in_the_day() -> None:
    open_s = 9 * 3600.0
    assert head_start_s(300, 100.0, open_s) < head_start_s(10_000, 100.0, open_s)
    assert head_start_s(10_000, 100.0, open_s) == head_start_s(50_000, 100.0, open_s)
    assert head_start_s(10, 1.0, open_s) == 1800.0
    assert head_start_s(10_000, 10_000.0, open_s) == open_s
