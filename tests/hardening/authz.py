"""The authorization table: every RPC of every implemented service against every
kind of caller, as a text file the matrix test asserts (authz_matrix.txt).

The table is written from the services' policy.py files, then kept in git: a
policy change makes the test fail until the table is regenerated, so the change
shows up as a reviewed diff of who may call what. Regenerate with

    .venv/bin/python -m tests.hardening.authz --write
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.hardening.callers import CallerKind, caller_kinds
from tests.hardening.rpcs import Rpc, all_rpcs

TABLE = Path(__file__).with_name("authz_matrix.txt")
ALLOW, DENY = "Y", "."

HEADER = """\
# Who may call what. Y: the call gets past authorization (any status but
# UNAUTHENTICATED or PERMISSION_DENIED); .: refused (UNAUTHENTICATED for an
# anonymous caller, PERMISSION_DENIED for the others).
# Written from the services' policy.py by `.venv/bin/python -m tests.hardening.authz
# --write`; the test fails when a policy and this table disagree, so review the diff.
#
# Columns: {legend}
"""


def expected_from_policy(rpc: Rpc, caller: CallerKind) -> bool:
    return rpc.rule.admits(caller.principal)


def render(rpcs: tuple[Rpc, ...] | None = None) -> str:
    rpcs = all_rpcs() if rpcs is None else rpcs
    callers = caller_kinds()
    legend = ", ".join(f"{c.label}={c.name}" for c in callers)
    width = max(len(r.key) for r in rpcs) + 2
    lines = [HEADER.format(legend=legend).rstrip("\n")]
    lines.append("rpc".ljust(width) + " ".join(c.label for c in callers))
    for rpc in rpcs:
        cells = (
            (ALLOW if expected_from_policy(rpc, c) else DENY).ljust(len(c.label)) for c in callers
        )
        lines.append(rpc.key.ljust(width) + " ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def read_table(path: Path = TABLE) -> dict[str, dict[str, bool]]:
    """rpc key -> caller name -> allowed, as the committed table says."""
    by_label = {c.label: c.name for c in caller_kinds()}
    table: dict[str, dict[str, bool]] = {}
    labels: list[str] = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, *cells = line.split()
        if key == "rpc":
            labels = cells
            continue
        table[key] = {
            by_label[label]: cell == ALLOW for label, cell in zip(labels, cells, strict=True)
        }
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite {TABLE.name}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        TABLE.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
