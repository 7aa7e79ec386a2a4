"""Secrets by which the suite's own services prove who they are.

One master secret per installation (created on first start in the data
directory, or given by VENUE_SERVICE_MASTER_SECRET); each service receives only
its own secret, derived from the master with HMAC, and exchanges it at identity
for a short-lived service token. Identity, holding the master, can check any of
them; a service holding its own secret cannot pose as another.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from pathlib import Path

MASTER_FILE = Path("secrets") / "service-master.key"
BOOTSTRAP_ADMIN = "bootstrap-admin"
# The first administrator, whose secret derives from the master: whoever holds
# the master (the operator, `venue up`) can always get an admin token.
BOOTSTRAP_ADMIN_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:venue-twin:bootstrap-admin"))


def load_or_create_master(data_dir: Path) -> bytes:
    """The master from VENUE_SERVICE_MASTER_SECRET(_FILE), else the data directory's."""
    env = os.environ.get("VENUE_SERVICE_MASTER_SECRET")
    if env:
        return env.encode()
    secret_file = os.environ.get("VENUE_SERVICE_MASTER_SECRET_FILE")
    if secret_file:
        return Path(secret_file).read_text().strip().encode()
    path = data_dir / MASTER_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def derive(master: bytes, name: str) -> str:
    """The secret of one service (or of the bootstrap admin) under this master."""
    return hmac.new(master, f"venue-service:{name}".encode(), hashlib.sha256).hexdigest()


def matches(master: bytes, name: str, presented: str) -> bool:
    return hmac.compare_digest(derive(master, name), presented)


def write_deployment_secrets(folder: Path, services: list[str]) -> list[Path]:
    """A fresh master and each service's own secret, one file each, for container
    secrets: identity gets the master, every other service only its own."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    master_path = folder / "service-master.key"
    if not master_path.exists():
        master_path.write_text(secrets.token_hex(32))
        master_path.chmod(0o600)
    master = master_path.read_text().strip().encode()
    written = [master_path]
    for name in [*services, BOOTSTRAP_ADMIN]:
        path = folder / f"{name}.secret"
        path.write_text(derive(master, name))
        path.chmod(0o600)
        written.append(path)
    return written
