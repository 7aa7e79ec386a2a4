"""Reading a venue file's YAML, strictly, keeping where each value was written.

Plain `yaml.safe_load` silently keeps the last of two equal keys, which would let a
copy-paste slip redefine a field; here that is an error. The composed node tree is
kept so that any later problem can be reported with its line number.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from services.venue_model.errors import FieldPath, Problem, VenueFileError

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # PyYAML built without libyaml: same results, slower
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Document:
    data: object
    root: yaml.Node


def read_document(file: Path) -> Document:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VenueFileError(file, [Problem((), f"cannot read the file: {exc}")]) from exc
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise VenueFileError(file, [Problem((), "the file is empty")])
        duplicates = list(_duplicate_keys(root, ()))
        if duplicates:
            raise VenueFileError(file, duplicates)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        where = f", column {mark.column + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "syntax error"
        reason = f"not valid YAML: {what}{where}"
        raise VenueFileError(file, [Problem((), reason, line)]) from exc
    except yaml.YAMLError as exc:
        raise VenueFileError(file, [Problem((), f"not valid YAML: {exc}")]) from exc
    finally:
        loader.dispose()
    return Document(data=data, root=root)


def _duplicate_keys(node: yaml.Node, path: FieldPath) -> Iterator[Problem]:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line = key_node.start_mark.line + 1
                yield Problem((*path, key), "duplicate key (a second value would be ignored)", line)
            seen.add(key)
            yield from _duplicate_keys(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, index))


def line_of(root: yaml.Node, path: FieldPath) -> int | None:
    """Line (1-based) of the deepest part of `path` written in the file."""
    node = root
    for part in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if str(k.value) == part), None)
            if child is None:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            child = node.value[part]
        else:
            break
        node = child
    return node.start_mark.line + 1
