"""Settings from environment variables, each with a documented default.

| variable | default | meaning |
| --- | --- | --- |
| VENUE_DATA_DIR | .data | signing keys, secrets and the embedded PostgreSQL |
| DATABASE_URL | (unset) | PostgreSQL to use; unset starts the embedded one |
| VENUE_LISTEN_HOST | 127.0.0.1 | interface the service listens on (0.0.0.0 in containers) |
| VENUE_<SERVICE>_ADDR | 127.0.0.1:5005x | where each service listens and is reached |
| VENUE_FILE | venues/lantern-bay-park.yaml | the venue definition every service reads |
| VENUE_CLOCK_START | now | venue time (ISO 8601) at the clock's anchor |
| VENUE_CLOCK_ANCHOR | now | wall-clock Unix time of the anchor |
| VENUE_CLOCK_SPEED | 1 | venue seconds per wall second |
| VENUE_SERVICE_SECRET(_FILE) | (from the data dir) | this service's secret for service tokens |
| VENUE_SERVICE_MASTER_SECRET(_FILE) | (the data dir) | identity only: what the others derive from |
| VENUE_TELEMETRY_DIR | (unset) | OTLP JSON files when no OTLP endpoint is set |
| VENUE_LOG_LEVEL | INFO | logging level |
| VENUE_LOG_FORMAT | json | json or text |
| VENUE_SHUTDOWN_GRACE | 10 | seconds in-flight calls get to finish on SIGTERM |
| VENUE_DB_POOL_SIZE | 8 | largest number of database connections per service |
| VENUE_RATE_LIMIT_* | see ratelimit.py | per-caller call rates (devices, guests, staff) |
| VENUE_TLS_* | (unset: plaintext) | TLS and mutual TLS (see tls.py, docs/tls.md) |

Telemetry is configured only by the standard OTEL_* variables (see telemetry.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from services.platform.clock import VenueClock

ROOT = Path(__file__).resolve().parents[2]

# Every service of the suite, in start-up order, with its default port.
SERVICE_PORTS: dict[str, int] = {
    "identity": 50051,
    "access": 50052,
    "location": 50053,
    "queue": 50054,
    "routing": 50055,
    "itinerary": 50056,
    "photo": 50057,
}

DEFAULT_VENUE_FILE = ROOT / "venues" / "lantern-bay-park.yaml"


class ConfigError(ValueError):
    pass


def addr_var(service: str) -> str:
    return f"VENUE_{service.upper()}_ADDR"


@dataclass(frozen=True)
class Settings:
    service: str
    data_dir: Path
    database_url: str | None
    listen_host: str
    addresses: Mapping[str, str]
    venue_file: Path
    clock: VenueClock
    service_secret: str | None
    log_level: str = "INFO"
    log_format: str = "json"
    shutdown_grace: float = 10.0
    db_pool_size: int = 8
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return port_of(self.addresses[self.service])

    @property
    def listen_address(self) -> str:
        return f"{self.listen_host}:{self.port}"

    @property
    def schema(self) -> str:
        return self.service

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        addresses = {
            name: env.get(addr_var(name), f"127.0.0.1:{port}")
            for name, port in SERVICE_PORTS.items()
        }
        if service not in addresses:
            # A process outside the suite's seven (a diagnostic): any free port.
            addresses[service] = env.get(addr_var(service), "127.0.0.1:0")
        for name, address in addresses.items():
            port_of(address, addr_var(name))
        return cls(
            service=service,
            data_dir=Path(env.get("VENUE_DATA_DIR", str(ROOT / ".data"))).resolve(),
            database_url=env.get("DATABASE_URL") or None,
            listen_host=env.get("VENUE_LISTEN_HOST", "127.0.0.1"),
            addresses=addresses,
            venue_file=Path(env.get("VENUE_FILE", str(DEFAULT_VENUE_FILE))).resolve(),
            clock=clock_from_env(env),
            service_secret=_secret(env),
            log_level=env.get("VENUE_LOG_LEVEL", "INFO").upper(),
            log_format=env.get("VENUE_LOG_FORMAT", "json"),
            shutdown_grace=_float(env, "VENUE_SHUTDOWN_GRACE", 10.0),
            db_pool_size=int(_float(env, "VENUE_DB_POOL_SIZE", 8)),
            extra={k: v for k, v in env.items() if k.startswith("VENUE_")},
        )


def port_of(address: str, name: str = "address") -> int:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{name}: expected host:port, got {address!r}")
    return int(port)


def _secret(env: Mapping[str, str]) -> str | None:
    """VENUE_SERVICE_SECRET, or the file VENUE_SERVICE_SECRET_FILE names (container secrets)."""
    if env.get("VENUE_SERVICE_SECRET"):
        return env["VENUE_SERVICE_SECRET"]
    path = env.get("VENUE_SERVICE_SECRET_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as err:
            raise ConfigError(f"VENUE_SERVICE_SECRET_FILE: {err}") from None
    return None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None


def clock_from_env(env: Mapping[str, str]) -> VenueClock:
    now = time.time()
    anchor = _float(env, "VENUE_CLOCK_ANCHOR", now)
    speed = _float(env, "VENUE_CLOCK_SPEED", 1.0)
    raw_start = env.get("VENUE_CLOCK_START")
    if raw_start:
        try:
            start = datetime.fromisoformat(raw_start)
        except ValueError:
            raise ConfigError(
                f"VENUE_CLOCK_START: not an ISO 8601 instant: {raw_start!r}"
            ) from None
        if start.tzinfo is None:
            raise ConfigError(
                "VENUE_CLOCK_START: give a UTC offset, e.g. 2026-07-04T09:00:00-04:00"
            )
    else:
        start = datetime.fromtimestamp(anchor, UTC)
    try:
        return VenueClock(start=start, anchor=anchor, speed=speed)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def clock_env(clock: VenueClock) -> dict[str, str]:
    """The variables that give another process the same venue clock."""
    return {
        "VENUE_CLOCK_START": clock.start.isoformat(),
        "VENUE_CLOCK_ANCHOR": repr(clock.anchor),
        "VENUE_CLOCK_SPEED": repr(clock.speed),
    }
