"""Helper processes of the benchmarks: the floor server and the OTLP sink."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from services.platform.config import ROOT
from services.runner.suite import free_port


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


@contextmanager
def helper(module: str) -> Iterator[int]:
    """Run `python -m module PORT`; yields the port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, str(port)],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, process)
        yield port
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
