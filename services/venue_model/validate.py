"""The semantic checks, in the order that lets each rely on the one before."""

from __future__ import annotations

from services.venue_model.errors import Problem
from services.venue_model.geometry import connectivity_problems, edge_problems, floor_problems
from services.venue_model.references import reference_problems, uniqueness_problems
from services.venue_model.semantics import (
    demand_problems,
    device_zone_problems,
    poi_problems,
    venue_problems,
    zone_problems,
)
from services.venue_model.venue import Venue


def semantic_problems(venue: Venue) -> list[Problem]:
    # Ids and references first: every later check looks things up by id.
    problems = uniqueness_problems(venue) + reference_problems(venue)
    if problems:
        return problems
    problems = venue_problems(venue) + zone_problems(venue)
    if any(p.path[-1:] == ("parent",) for p in problems):
        return problems  # later checks climb the zone tree
    problems += floor_problems(venue) + edge_problems(venue) + device_zone_problems(venue)
    problems += poi_problems(venue) + demand_problems(venue)
    if not problems:
        # Connectivity messages are only meaningful on an otherwise sound graph.
        problems = connectivity_problems(venue)
    return problems
