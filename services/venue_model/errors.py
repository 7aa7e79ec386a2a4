"""What the loader says when a venue file is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PathPart = str | int
FieldPath = tuple[PathPart, ...]

# A file with hundreds of mistakes is usually one mistake repeated; past this many
# the rest is noise.
MAX_REPORTED = 25


def format_path(path: FieldPath) -> str:
    """('edges', 17, 'to') -> 'edges[17].to'; the empty path is the whole document."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "<document>"


@dataclass(frozen=True, slots=True)
class Problem:
    path: FieldPath
    reason: str
    line: int | None = None

    @property
    def field(self) -> str:
        return format_path(self.path)

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.field}{where}: {self.reason}"


class VenueFileError(Exception):
    """A venue file that cannot be used: names the file, each bad field and why."""

    def __init__(self, file: Path | str, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("a VenueFileError needs at least one problem")
        self.file = Path(file)
        self.problems = tuple(problems)
        super().__init__(self._message())

    @property
    def field(self) -> str:
        """Path of the first bad field, e.g. 'edges[17].to'."""
        return self.problems[0].field

    @property
    def reason(self) -> str:
        return self.problems[0].reason

    def _message(self) -> str:
        shown = self.problems[:MAX_REPORTED]
        if len(shown) == 1:
            return f"{self.file}: {shown[0]}"
        lines = [f"{self.file}: {len(self.problems)} problems"]
        lines += [f"  {self.file}: {p}" for p in shown]
        if len(self.problems) > len(shown):
            lines.append(f"  ... and {len(self.problems) - len(shown)} more")
        return "\n".join(lines)
