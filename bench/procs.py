"""Helper processes of the benchmarks: the floor server and the OTLP sink."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from services.platform.config import ROOT
from services.runner.suite import free_port

T = TypeVar("T")


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"helper exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def cpu_seconds(pids: Iterable[int]) -> float:
    """User and system CPU time the processes have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def with_cpu(
    groups: Mapping[str, Iterable[int]], measure: Awaitable[T], calls: Callable[[T], int]
) -> tuple[T, dict[str, float]]:
    """Run a measurement and say how much CPU each call cost each group of
    processes (`<group>_cpu_us_per_call`) and the driver (this process): a
    figure that, unlike calls per second, hardly depends on what else the
    machine is running."""
    pids = {name: list(group) for name, group in groups.items()}
    before = {name: cpu_seconds(group) for name, group in pids.items()}
    driver0 = time.process_time()
    result = await measure
    driver = time.process_time() - driver0
    n = max(calls(result), 1)
    figures = {
        f"{name}_cpu_us_per_call": round((cpu_seconds(group) - before[name]) / n * 1e6, 1)
        for name, group in pids.items()
    }
    figures["driver_cpu_us_per_call"] = round(driver / n * 1e6, 1)
    return result, figures


@contextmanager
def helper(module: str) -> Iterator[int]:
    """Run `python -m module PORT`; yields the port."""
    with helper_process(module) as (port, _):
        yield port


@contextmanager
def helper_process(module: str) -> Iterator[tuple[int, int]]:
    """Run `python -m module PORT`; yields the port and the process id."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, str(port)],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, process)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(10)


def otlp_env(port: int) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        # A benchmark measures capacity: one token drives thousands of calls a
        # second, which per-caller rate limits exist to refuse.
        "VENUE_RATE_LIMITS": "off",
    }
