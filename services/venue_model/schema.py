"""Structural validation against the published JSON Schema.

The schema file under venues/schema/ is the one source of truth for the format: this
module only runs it and turns jsonschema's findings into field paths a person can
act on (`edges[17].to: is required`).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from services.venue_model.errors import FieldPath, Problem

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "venues" / "schema" / "venue.schema.json"


@cache
def _validator(schema_path: Path) -> Draft202012Validator:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def load_schema(schema_path: Path = SCHEMA_PATH) -> dict[str, Any]:
    schema: dict[str, Any] = _validator(schema_path).schema  # type: ignore[assignment]
    return schema


def schema_problems(document: object, schema_path: Path = SCHEMA_PATH) -> list[Problem]:
    validator = _validator(schema_path)
    problems: list[Problem] = []
    for error in validator.iter_errors(document):
        problems.extend(_explain(error))
    # Report in document order, so the first problem is the first one in the file.
    problems.sort(key=lambda p: _sort_key(p.path))
    return problems


def _sort_key(path: FieldPath) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in path)


def _explain(error: ValidationError) -> list[Problem]:
    path: FieldPath = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        required = error.validator_value
        assert isinstance(required, list)
        docs = schema.get("properties", {})
        return [
            Problem((*path, name), _with_doc("is required", docs.get(name)))
            for name in required
            if name not in instance
        ]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = set(schema.get("properties", {}))
        return [
            Problem((*path, name), "is not a field of this format (misspelt?)")
            for name in instance
            if name not in known
        ]
    if error.validator == "not" and "description" in schema:
        return [Problem(path, f"is not allowed here: {schema['description']}")]
    title = schema.get("title")
    if title and error.validator in ("pattern", "type"):
        reason = f"{instance!r} is not a valid {title}"
        if title.startswith("local time") and isinstance(instance, int):
            reason += (
                '; write times in quotes, e.g. "21:00" '
                "(unquoted, YAML reads 21:00 as the number 1260)"
            )
        return [Problem(path, reason)]
    if error.validator == "const" and "description" in schema:
        return [Problem(path, f"{error.message} ({schema['description']})")]
    return [Problem(path, error.message)]


def _with_doc(reason: str, field_schema: object) -> str:
    # Say what the missing field is for, when the schema says it.
    if isinstance(field_schema, dict) and "description" in field_schema:
        return f"{reason} ({field_schema['description']})"
    return reason
