"""Generate the Python code and type stubs for every proto under protos/.

One command makes the one importable copy of the generated code (`make protos`);
`--check` regenerates into a scratch folder and fails if the copy in use differs,
so that nobody runs against stale or hand-edited generated code.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def generate(out: Path, stubs: bool = True) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    scripts = Path(sysconfig.get_paths()["scripts"])
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
    ]
    if stubs:
        args += [
            f"--plugin=protoc-gen-mypy={scripts / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={scripts / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
        ]
    args += protos
    # A subprocess, so the plugins' chatter can be shown only when it matters.
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"protoc failed:\n{done.stdout}{done.stderr}")
    # Regular packages (not namespace packages) so that tools and mypy agree on them.
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        if folder != out:
            (folder / "__init__.py").touch()
    (out / "venue" / "py.typed").touch()


def differences(expected: Path, actual: Path) -> list[str]:
    found: list[str] = []
    cmp = filecmp.dircmp(expected, actual, ignore=["__pycache__", ".stamp"])
    stack = [cmp]
    while stack:
        node = stack.pop()
        found += [f"missing: {node.right}/{n}" for n in node.left_only]
        found += [f"unexpected: {node.right}/{n}" for n in node.right_only]
        found += [f"stale: {node.right}/{n}" for n in node.diff_files]
        stack.extend(node.subdirs.values())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="generate into this folder")
    parser.add_argument("--check", type=Path, help="fail if this folder is not up to date")
    parser.add_argument(
        "--no-stubs", action="store_true", help="skip the .pyi stubs (container images)"
    )
    ns = parser.parse_args()
    if ns.out:
        generate(ns.out, stubs=not ns.no_stubs)
    if ns.check:
        with tempfile.TemporaryDirectory() as scratch:
            fresh = Path(scratch) / "gen"
            generate(fresh)
            problems = differences(fresh, ns.check)
        if problems:
            sys.exit("generated code is out of date (run `make protos`):\n" + "\n".join(problems))
        print("generated code is up to date")


if __name__ == "__main__":
    main()
