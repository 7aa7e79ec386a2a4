"""The fault suite's short version (issue 11): a short day of the real suite while
every service is killed with SIGKILL in turn and restarted, PostgreSQL restarts,
the connections of the streaming services are cut and identity is frozen past its
callers' deadlines; then nothing the suite acknowledged may be lost or doubled,
the ledger must balance, every consumer must have caught up, and the twin's state
must equal a replay of its events. `make chaos` plays a longer day."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.chaos.day import ChaosConfig, run_chaos

pytestmark = pytest.mark.e2e


# The suite's start-up gets up to four times longer on a busy machine (sim.run).
@pytest.mark.timeout(1800)
async def test_a_day_under_faults_loses_and_doubles_nothing(tmp_path: Path) -> None:
    config = ChaosConfig(guests=200, hours=0.75, speed=60.0, seed=7, stall_s=11.0)
    # Its own embedded server (it is restarted), or a database on DATABASE_URL's.
    external = os.environ.get("DATABASE_URL") or None
    url = None
    if external:
        from tests.chaos.external import fresh_database  # noqa: PLC0415

        url = await fresh_database(external)
    run = await run_chaos(config, tmp_path, url)
    summary = run.summary()
    (tmp_path / "chaos.json").write_text(json.dumps(summary, indent=2, default=str))
    results = os.environ.get("VENUE_CHAOS_RESULTS")
    if results:
        Path(results).write_text(json.dumps(summary, indent=2, default=str) + "\n")  # noqa: ASYNC240

    kinds = {(f.kind, f.target) for f in run.injected if f.injected}
    for service in run.result.services:
        assert ("kill", service) in kinds
    assert ("postgres", "postgres") in kinds
    assert ("stall", "identity") in kinds
    assert summary["acknowledged"]["taps"] > 0
    assert summary["acknowledged"]["charges"] > 0
    assert summary["acknowledged"]["ping_batches"] > 0
    assert summary["acknowledged"]["captures"] > 0
    assert run.audit.ok, "\n".join(run.audit.failures())
    assert run.audit.lost == 0 and run.audit.doubled == 0
