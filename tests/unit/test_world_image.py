"""The suite's image can play a day: everything `venue run` imports from the
repository is copied into it."""

from __future__ import annotations

import ast

from services.platform.config import ROOT


def local_packages_imported_by(folder: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if (ROOT / top).is_dir() and (ROOT / top / "__init__.py").exists():
                    found.add(top)
    return found


def test_the_image_holds_what_the_world_imports() -> None:
    copied = {
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    needed = local_packages_imported_by("sim") | {"sim", "venues"}
    assert needed <= copied, needed - copied
