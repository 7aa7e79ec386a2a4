"""Runs the suite: the database, then every implemented service as its own process.

Used by `venue up`, by the simulated day and by the end-to-end tests, so that all
three start the suite the same way a deployment would: real processes, real
ports, real PostgreSQL, credentials from the data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.platform import embedded_pg, service_secrets, tls
from services.platform.clock import VenueClock
from services.platform.config import ROOT, SERVICE_PORTS, addr_var, clock_env

log = logging.getLogger("venue.runner")


def implemented_services() -> list[str]:
    """Services whose package exists, in start-up order (identity first)."""
    return [
        name
        for name in SERVICE_PORTS
        if importlib.util.find_spec(f"services.{name}") is not None
        and importlib.util.find_spec(f"services.{name}.service") is not None
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process.poll() is None


@dataclass
class Suite:
    """The suite's processes. `await start()`, use `addresses`, `await stop()`."""

    data_dir: Path
    services: list[str] = field(default_factory=implemented_services)
    database_url: str | None = None
    clock: VenueClock = field(default_factory=VenueClock.real_time)
    ports: Mapping[str, int] | None = None
    venue_file: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    # Where services write OTLP JSON when no collector is configured.
    telemetry_dir: Path | None = None

    processes: dict[str, ServiceProcess] = field(default_factory=dict, init=False)
    addresses: dict[str, str] = field(default_factory=dict, init=False)
    _embedded: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        ports = {**SERVICE_PORTS, **(self.ports or {})}
        self.addresses = {name: f"127.0.0.1:{ports[name]}" for name in SERVICE_PORTS}
        self.log_dir = (self.log_dir or self.data_dir / "logs").resolve()
        self.telemetry_dir = (self.telemetry_dir or self.data_dir / "telemetry").resolve()

    @property
    def tls(self) -> tls.Tls | None:
        """The TLS the runner's own calls use (the services' settings, as a client)."""
        return tls.for_client({**os.environ, **self.env})

    def channel(self, name: str, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
        """A channel to one service, over TLS when the suite serves it."""
        return tls.channel(self.addresses[name], self.tls, options=options)

    @property
    def master(self) -> bytes:
        return service_secrets.load_or_create_master(self.data_dir)

    def service_env(self, name: str) -> dict[str, str]:
        # TLS settings reach the services from the runner's own environment too.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("VENUE_") or k.startswith("VENUE_TLS_")
        }
        env.update(
            {
                "VENUE_DATA_DIR": str(self.data_dir),
                "DATABASE_URL": self.database_url or "",
                "VENUE_SERVICE_SECRET": service_secrets.derive(self.master, name),
                "PYTHONUNBUFFERED": "1",
                **clock_env(self.clock),
                **{addr_var(n): a for n, a in self.addresses.items()},
            }
        )
        if self.venue_file is not None:
            env["VENUE_FILE"] = str(self.venue_file)
        env.update(self.env)
        if not env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            env["VENUE_TELEMETRY_DIR"] = str(self.telemetry_dir)
        return env

    async def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        assert self.log_dir is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = await asyncio.to_thread(embedded_pg.ensure_running, self.data_dir)
            self._embedded = True
        try:
            first, rest = self.services[:1], self.services[1:]
            for group in (first, rest):
                for name in group:
                    self.spawn(name)
                await asyncio.gather(*(self.wait_serving(n, timeout) for n in group))
        except BaseException:
            await self.stop()
            raise

    def spawn(self, name: str) -> ServiceProcess:
        assert self.log_dir is not None
        log_path = self.log_dir / f"{name}.log"
        handle = log_path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=ROOT,
            env=self.service_env(name),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = ServiceProcess(name, self.addresses[name], process, log_path, handle)
        self.processes[name] = proc
        return proc

    async def wait_serving(self, name: str, timeout: float = 60.0) -> None:
        proc = self.processes[name]
        deadline = time.monotonic() + timeout
        async with self.channel(name) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if not proc.running:
                    raise RuntimeError(
                        f"{name} exited with code {proc.process.returncode}; see {proc.log_path}"
                    )
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{name} not serving after {timeout:.0f}s; see {proc.log_path}"
                    )
                await asyncio.sleep(0.1)

    async def restart(self, name: str, kill: bool = False, timeout: float = 60.0) -> None:
        """Stop one service (SIGKILL when `kill`) and start it again."""
        proc = self.processes[name]
        if kill:
            proc.process.kill()
        else:
            proc.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.process.wait)
        if proc._log is not None:
            proc._log.close()
        self.spawn(name)
        await self.wait_serving(name, timeout)

    async def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every service (last started first), then the embedded database."""
        for proc in reversed(list(self.processes.values())):
            if proc.running:
                proc.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                await asyncio.to_thread(proc.process.wait, remaining)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", proc.name)
                proc.process.kill()
                await asyncio.to_thread(proc.process.wait)
            if proc._log is not None:
                proc._log.close()
        self.processes.clear()
        if self._embedded:
            await asyncio.to_thread(embedded_pg.stop, self.data_dir)
            self._embedded = False

    async def admin_token(self) -> str:
        """A token of the bootstrap administrator, from the data directory's master."""
        from venue.identity.v1 import identity_pb2, identity_pb2_grpc  # noqa: PLC0415

        async with self.channel("identity") as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            reply = await stub.IssueToken(
                identity_pb2.IssueTokenRequest(
                    staff_secret=identity_pb2.StaffSecret(
                        staff_id=service_secrets.BOOTSTRAP_ADMIN_ID,
                        secret=service_secrets.derive(self.master, service_secrets.BOOTSTRAP_ADMIN),
                    )
                ),
                timeout=10,
            )
        return str(reply.access_token)


def auto_ports(names: Iterable[str] = SERVICE_PORTS) -> dict[str, int]:
    return {name: free_port() for name in names}
