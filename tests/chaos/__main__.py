"""`make chaos`: a longer day under every fault, results to bench/results/chaos.json.

python -m tests.chaos [--guests N] [--hours H] [--speed X] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from services.platform.config import ROOT
from tests.chaos.day import ChaosConfig, run_chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__)
    parser.add_argument("--guests", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--stall-s", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2, help="times every fault is played")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "chaos.json")
    parser.add_argument("--work", type=Path, default=None, help="data directory (default: temp)")
    args = parser.parse_args(argv)
    config = ChaosConfig(
        guests=args.guests,
        hours=args.hours,
        speed=args.speed,
        seed=args.seed,
        stall_s=args.stall_s,
        rounds=args.rounds,
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="venue-chaos-"))
    run = asyncio.run(run_chaos(config, work, os.environ.get("DATABASE_URL") or None))
    summary = run.summary()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    audit = summary["audit"]
    sys.stdout.write(
        f"chaos: {summary['faults_injected']} faults injected, {summary['calls']['total']} calls "
        f"({summary['calls']['retries']} retries), {audit['checked']} things checked: "
        f"{audit['lost']} lost, {audit['doubled']} doubled; "
        f"{'all checks hold' if audit['ok'] else 'CHECKS FAILED'}\n"
    )
    for failure in run.audit.failures()[:40]:
        sys.stderr.write(f"  {failure}\n")
    sys.stdout.write(f"results: {args.out}\n")
    return 0 if audit["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
