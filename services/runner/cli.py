"""The `venue` command: run the suite.

venue up      start every implemented service and wait for Ctrl-C
venue run     start the suite, play a simulated day against it, write the report
venue tls init  write a development CA, a certificate per service and client
              certificates for devices (then VENUE_TLS_DIR=<dir> turns TLS on)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

from services.platform.clock import VenueClock
from services.platform.config import ROOT, SERVICE_PORTS, ConfigError, clock_from_env
from services.platform.service_secrets import write_deployment_secrets
from services.runner.suite import Suite, auto_ports, implemented_services


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="venue", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "start the suite for real clients"),
        ("run", "start the suite and play a simulated day"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument(
            "--data-dir",
            type=Path,
            default=Path(os.environ.get("VENUE_DATA_DIR", ROOT / ".data")),
            help="keys, secrets, logs and the embedded database (default .data)",
        )
        sub.add_argument(
            "--services",
            nargs="+",
            default=None,
            help="start only these services (default: every implemented one)",
        )
        sub.add_argument(
            "--auto-ports", action="store_true", help="pick free ports instead of 50051-50057"
        )
        sub.add_argument("--venue", type=Path, default=None, help="venue definition file")
        sub.add_argument(
            "--speed",
            type=float,
            default=None,
            help="venue seconds per wall second (default VENUE_CLOCK_SPEED or 1)",
        )
        if name == "up":
            sub.add_argument(
                "--start",
                default=None,
                help="venue time at start, ISO 8601 with offset (default: now)",
            )
    run = commands.choices["run"]
    run.add_argument("--guests", type=int, default=10_000, help="guests in the day (10000)")
    run.add_argument("--seed", type=int, default=1, help="the same seed plays the same world")
    run.add_argument(
        "--hours", type=float, default=None, help="play only this many hours from opening"
    )
    run.add_argument("--out", type=Path, default=None, help="where reports go (default runs/)")
    run.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the live progress view (default: when on a terminal)",
    )
    secrets = commands.add_parser(
        "secrets", help="write a new master secret and each service's own secret to DIR"
    )
    secrets.add_argument("folder", type=Path)
    tls = commands.add_parser("tls", help="TLS certificates (see docs/tls.md)")
    tls_commands = tls.add_subparsers(dest="tls_command", required=True)
    init = tls_commands.add_parser(
        "init", help="write a development CA, service certificates and client certificates"
    )
    init.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("VENUE_DATA_DIR", ROOT / ".data")) / "tls",
        help="where to write them (default .data/tls); an existing CA there is kept",
    )
    init.add_argument(
        "--host",
        action="append",
        default=[],
        help="another name or IP address the services are reached at (repeatable)",
    )
    init.add_argument(
        "--client",
        action="append",
        default=None,
        help="a client certificate to write (repeatable; default: sim and one per device kind)",
    )
    init.add_argument("--days", type=int, default=365, help="validity in days (365)")
    return parser


def _clock(args: argparse.Namespace) -> VenueClock:
    env = dict(os.environ)
    if args.speed is not None:
        env["VENUE_CLOCK_SPEED"] = str(args.speed)
    if args.start is not None:
        env["VENUE_CLOCK_START"] = args.start
    env.pop("VENUE_CLOCK_ANCHOR", None)
    return clock_from_env(env)


async def _up(args: argparse.Namespace) -> int:
    services = args.services or implemented_services()
    unknown = set(services) - set(implemented_services())
    if unknown:
        print(f"venue: not implemented yet: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    suite = Suite(
        data_dir=args.data_dir,
        services=services,
        database_url=os.environ.get("DATABASE_URL") or None,
        clock=_clock(args),
        ports=auto_ports() if args.auto_ports else None,
        venue_file=args.venue,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"starting {len(services)} services (logs in {suite.log_dir}) ...", flush=True)
    await suite.start()
    try:
        for name in services:
            print(f"{name:<10} {suite.addresses[name]}", flush=True)
        print(f"staff token (admin): {await suite.admin_token()}", flush=True)
        print(
            f"venue time {datetime.now().astimezone().isoformat(timespec='seconds')} "
            f"-> {suite.clock.now().isoformat(timespec='seconds')} at {suite.clock.speed:g}x",
            flush=True,
        )
        print("ready; Ctrl-C stops the suite", flush=True)
        watch = asyncio.create_task(_watch_children(suite, stop))
        await stop.wait()
        watch.cancel()
    finally:
        print("stopping ...", flush=True)
        await suite.stop()
        print("stopped", flush=True)
    return 0


async def _watch_children(suite: Suite, stop: asyncio.Event) -> None:
    """A service that dies takes the suite down rather than leaving it half up."""
    while not stop.is_set():
        for proc in suite.processes.values():
            if not proc.running:
                print(
                    f"{proc.name} exited ({proc.process.returncode}); see {proc.log_path}",
                    file=sys.stderr,
                    flush=True,
                )
                stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "secrets":
            others = [name for name in SERVICE_PORTS if name != "identity"]
            for path in write_deployment_secrets(args.folder, others):
                print(path)
            return
        if args.command == "tls":
            from services.runner import devca  # noqa: PLC0415 - cryptography only here

            clients = args.client if args.client is not None else devca.DEFAULT_CLIENTS
            for issued in devca.init(args.dir, args.host, clients, days=args.days):
                print(issued.cert)
            print(
                f"TLS on: VENUE_TLS_DIR={args.dir.resolve()}; "
                "mutual TLS: also VENUE_TLS_CLIENT_AUTH=require"
            )
            return
        if args.command == "up":
            sys.exit(asyncio.run(_up(args)))
        if args.command == "run":
            from sim.run import run_day  # noqa: PLC0415 - the world loads only for `run`

            sys.exit(asyncio.run(run_day(args)))
    except ConfigError as err:
        print(f"venue: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
