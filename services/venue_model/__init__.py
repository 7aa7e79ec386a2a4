"""The venue definition: one YAML file per venue, read the same way by every service.

    venue = load_venue(path_to_venue_yaml)
    venue.attraction(attraction_id).queue          # capacity, ride length, access points
    graph.add_edges_from((a.source, a.target, {"edge": a.edge}) for a in venue.graph_edges())

The format is published as venues/schema/venue.schema.json, which documents every field;
venues/README.md says what services may rely on.
"""

from services.venue_model.coverage import Gap, uncovered_points
from services.venue_model.errors import Problem, VenueFileError
from services.venue_model.load import load_venue
from services.venue_model.model import (
    ACCESSIBLE_EDGE_KINDS,
    WALKING_EDGE_KINDS,
    AccessPoint,
    AccessPointKind,
    Arc,
    Archetype,
    CalibrationSource,
    Camera,
    CameraKind,
    Demand,
    Edge,
    EdgeKind,
    HotelSpec,
    HourWeight,
    MerchantSpec,
    Node,
    NudgeBudget,
    OpeningHours,
    PartySize,
    Poi,
    PoiKind,
    Popularity,
    PriceItem,
    QueueSpec,
    Reader,
    ReturnWindowRule,
    Room,
    Rules,
    ShowSpec,
    Spend,
    SpendCategory,
    Till,
    VenueKind,
    Zone,
    ZoneKind,
    format_clock,
)
from services.venue_model.schema import SCHEMA_PATH
from services.venue_model.venue import UnknownIdError, Venue

__all__ = [
    "ACCESSIBLE_EDGE_KINDS",
    "SCHEMA_PATH",
    "WALKING_EDGE_KINDS",
    "AccessPoint",
    "AccessPointKind",
    "Arc",
    "Archetype",
    "CalibrationSource",
    "Camera",
    "CameraKind",
    "Demand",
    "Edge",
    "EdgeKind",
    "Gap",
    "HotelSpec",
    "HourWeight",
    "MerchantSpec",
    "Node",
    "NudgeBudget",
    "OpeningHours",
    "PartySize",
    "Poi",
    "PoiKind",
    "Popularity",
    "PriceItem",
    "Problem",
    "QueueSpec",
    "Reader",
    "ReturnWindowRule",
    "Room",
    "Rules",
    "ShowSpec",
    "Spend",
    "SpendCategory",
    "Till",
    "UnknownIdError",
    "Venue",
    "VenueFileError",
    "VenueKind",
    "Zone",
    "ZoneKind",
    "format_clock",
    "load_venue",
    "uncovered_points",
]
