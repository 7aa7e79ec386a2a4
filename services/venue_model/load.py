"""load_venue: from a file on disk to a checked Venue, or a VenueFileError."""

from __future__ import annotations

import os
from pathlib import Path

from services.venue_model.errors import Problem, VenueFileError
from services.venue_model.parse import build_venue
from services.venue_model.schema import SCHEMA_PATH, schema_problems
from services.venue_model.source import line_of, read_document
from services.venue_model.validate import semantic_problems
from services.venue_model.venue import Venue


def load_venue(path: str | os.PathLike[str], *, schema_path: Path = SCHEMA_PATH) -> Venue:
    """Read, validate and build the venue in `path`.

    Structure is checked against the JSON Schema first, then meaning (references,
    geometry, connectivity, hours ...). Every problem found at the failing stage is
    reported at once, each with its field path and line.
    """
    file = Path(path)
    document = read_document(file)

    def fail(problems: list[Problem]) -> VenueFileError:
        located = [
            Problem(p.path, p.reason, p.line or line_of(document.root, p.path)) for p in problems
        ]
        return VenueFileError(file, located)

    problems = schema_problems(document.data, schema_path)
    if problems:
        raise fail(problems)
    assert isinstance(document.data, dict)  # the schema requires an object
    venue = build_venue(document.data, source_path=file)
    problems = semantic_problems(venue)
    if problems:
        raise fail(problems)
    return venue
