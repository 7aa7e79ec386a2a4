"""The faults, done to the real suite: no fakes, only what goes wrong in a venue.

- kill: SIGKILL of a service process (a crash, an OOM kill, a pulled plug), then
  the runner starts it again, as a supervisor would.
- restart PostgreSQL: the embedded server stopped in immediate mode (a crash: no
  checkpoint, recovery from the WAL at start) and started again; on an external
  server (DATABASE_URL), every connection of the suite's database is terminated
  instead, which is what a restart looks like from the services.
- drop streams: every TCP connection to a service's port is destroyed in the
  kernel (`ss -K`), so its Watch, IngestPings and SubscribeNudges streams break
  mid-flight on both sides, as when a switch or a NAT forgets them. Needs
  CAP_NET_ADMIN; without it the fault is recorded as not injected.
- stall: SIGSTOP of a dependency for longer than its callers' deadlines, then
  SIGCONT (a long GC pause, a frozen VM, a partitioned network): its callers see
  DEADLINE_EXCEEDED and must neither lose nor double anything.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.platform import embedded_pg
from services.platform.config import port_of
from services.runner.suite import Suite


@dataclass
class Fault:
    kind: str  # kill | postgres | drop | stall
    target: str  # a service name, or "postgres"
    seconds: float = 0.0  # how long a stall lasts


@dataclass
class Injected:
    kind: str
    target: str
    at_venue: str  # venue clock label when injected
    wall_s: float  # seconds after the day began
    took_s: float = 0.0  # until the target served again
    detail: dict[str, Any] = field(default_factory=dict)
    injected: bool = True


class Injector:
    def __init__(self, suite: Suite, embedded: bool) -> None:
        self.suite = suite
        self.embedded = embedded

    async def inject(self, fault: Fault) -> dict[str, Any]:
        """Do one fault and wait until the suite serves again; what happened."""
        if fault.kind == "kill":
            return await self.kill(fault.target)
        if fault.kind == "postgres":
            return await self.restart_postgres()
        if fault.kind == "drop":
            return await self.drop_connections(fault.target)
        if fault.kind == "stall":
            return await self.stall(fault.target, fault.seconds)
        raise ValueError(f"unknown fault {fault.kind}")

    async def kill(self, name: str) -> dict[str, Any]:
        pid = self.suite.processes[name].process.pid
        await self.suite.restart(name, kill=True, timeout=180)
        return {"killed_pid": pid, "new_pid": self.suite.processes[name].process.pid}

    async def restart_postgres(self) -> dict[str, Any]:
        url = self.suite.database_url
        assert url is not None
        if self.embedded:
            # Forked from the event loop's thread, as the suite starts services: a
            # child forked from a worker thread while gRPC runs can crash before exec.
            # Imported here: embedded_pg has imported pgserver with its warnings quiet.
            from pgserver._commands import POSTGRES_BIN_PATH  # noqa: PLC0415

            command = [
                str(POSTGRES_BIN_PATH / "pg_ctl"),
                *("-D", str(self.suite.data_dir / "pg"), "-w", "-m", "immediate", "restart"),
            ]
            user = embedded_pg._system_user()
            if user is not None:
                # runuser, not Popen(user=...): a setuid in the child of a process
                # running gRPC's threads crashed pg_ctl (SIGSEGV).
                command = ["runuser", "-u", user, "--", *command]
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            code = await asyncio.wait_for(process.wait(), 120)
            if code != 0:
                raise RuntimeError(f"pg_ctl restart failed with code {code}")
            how = "embedded server: immediate stop (crash recovery) and start"
        else:
            conn = await asyncpg.connect(url)
            try:
                ended = await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            finally:
                await conn.close()
            how = f"external server: {ended} connections terminated"
        await self._all_serving()
        return {"how": how}

    async def drop_connections(self, name: str) -> dict[str, Any]:
        port = port_of(self.suite.addresses[name])
        process = await asyncio.create_subprocess_exec(
            "ss",
            "-K",
            "-t",
            f"( sport = :{port} or dport = :{port} )",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        # `ss -K` lists what it destroyed: a header line, then one per socket.
        killed = max(0, len([ln for ln in out.decode().splitlines() if ln.strip()]) - 1)
        if process.returncode != 0 or (killed == 0 and os.geteuid() != 0):
            why = err.decode().strip() or "no CAP_NET_ADMIN"
            return {"injected": False, "why": why[:200]}
        await self.suite.wait_serving(name, 180)
        return {"sockets_destroyed": killed}

    async def stall(self, name: str, seconds: float) -> dict[str, Any]:
        proc = self.suite.processes[name].process
        proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            proc.send_signal(signal.SIGCONT)
        await self.suite.wait_serving(name, 180)
        return {"stopped_s": seconds}

    async def _all_serving(self) -> None:
        await asyncio.gather(*(self.suite.wait_serving(n, 180) for n in self.suite.processes))


async def timed(injector: Injector, fault: Fault) -> tuple[float, dict[str, Any]]:
    began = time.monotonic()
    detail = await injector.inject(fault)
    return time.monotonic() - began, detail
