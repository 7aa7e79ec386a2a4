"""`make bench`: run the benchmarks and write their results next to their floors.

  python -m bench [--only foundation] [--seconds 5]

Results go to bench/results/<suite>.json (with the machine they ran on) and a
summary is printed. Every figure is compared with a floor measured in the same
run, never with a number from another machine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import pkgutil
import platform
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
HELPERS = {"harness", "procs", "floor_server", "otlp_sink"}
Suite = Callable[[Path, float], Coroutine[Any, Any, dict[str, Any]]]


def suites() -> dict[str, Suite]:
    """Every module of bench/ with an async run(work, seconds) is a suite."""
    found: dict[str, Suite] = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name in HELPERS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)):
            found[info.name] = module.run
    return found


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    available = suites()
    parser.add_argument("--only", nargs="+", choices=sorted(available), default=sorted(available))
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve and call over mutual TLS with a fresh development CA (the cost of TLS)",
    )
    args = parser.parse_args()
    if args.tls:
        from services.runner import devca  # noqa: PLC0415

        folder = Path(tempfile.mkdtemp(prefix="bench-tls-"))
        devca.init(folder, clients=["sim"])
        os.environ.update({"VENUE_TLS_DIR": str(folder), "VENUE_TLS_CLIENT_AUTH": "require"})
    RESULTS.mkdir(exist_ok=True)
    for name in args.only:
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as work:
            figures = asyncio.run(available[name](Path(work), args.seconds))
        result = {"suite": name, "machine": machine(), "tls": args.tls, **figures}
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name}: written to {path}")
        print(json.dumps(figures.get("checks", {}), indent=2))


if __name__ == "__main__":
    main()
