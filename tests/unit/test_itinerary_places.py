"""Where the itinerary asks routing from: every place location can report (a
reader's node, inside a line or on a ride too) is one routing accepts, on both
venues. Location puts a guest at the node of the reader that saw them; routing
only routes from the walkway graph."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.itinerary.facts import from_venue
from services.itinerary.model import Place, PlanSettings
from services.itinerary.planning import Item, ItemKind, Question
from services.itinerary.router import Router as ItineraryRouter
from services.routing.crowding import CrowdBoard
from services.routing.routes import Router
from services.venue_model import load_venue

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("venue_file", ["lantern-bay-park.yaml", "millbrook-galleria.yaml"])
def test_every_reader_place_is_routable(venue_file: str) -> None:
    venue = load_venue(ROOT / "venues" / venue_file)
    facts = from_venue(venue)
    router = Router(venue, CrowdBoard(venue))
    inside = 0
    for reader in venue.readers:
        node = venue.node(reader.node)
        place = facts.routable(Place(node.zone, node.id))
        if place.node_id:
            assert place.node_id == node.id
            assert router.routable_node(place.node_id) == node.id
        else:
            inside += 1
            assert place.zone_id == node.zone
            assert router.node_of_zone(place.zone_id)  # the attraction's entrance
    if venue_file.startswith("lantern"):
        assert inside > 0, "the park has readers inside lines: the case this guards"


def test_a_walkway_node_is_kept_and_a_zone_alone_is_untouched() -> None:
    venue = load_venue(ROOT / "venues" / "lantern-bay-park.yaml")
    facts = from_venue(venue)
    walk = next(n for n in venue.graph_nodes())
    assert facts.routable(Place(walk.zone, walk.id)) == Place(walk.zone, walk.id)
    assert facts.routable(Place(zone_id=walk.zone)) == Place(zone_id=walk.zone)


async def test_no_time_left_is_answered_without_asking_routing() -> None:
    """A plan made after the party's leave time (or closing) has start == leave;
    routing refuses that as INVALID_ARGUMENT, which surfaced as INTERNAL on
    CreatePlan. Nothing fits: every item is skipped for lack of time."""

    def no_channel() -> object:
        raise AssertionError("routing must not be called")

    venue = load_venue(ROOT / "venues" / "lantern-bay-park.yaml")
    router = ItineraryRouter(no_channel, from_venue(venue))  # type: ignore[arg-type]
    at = datetime(2026, 7, 4, 22, tzinfo=UTC)
    poi = venue.pois[0].id
    q = Question(Place(), at, at, (Item("w1", poi, ItemKind.ATTRACTION, False, None, None),))
    answer = await router.plan(q, PlanSettings())
    assert answer.stops == ()
    assert [(s.item_id, s.reason) for s in answer.skipped] == [("w1", 1)]
