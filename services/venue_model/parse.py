"""Turning a schema-valid document into model values.

Runs only after the schema passed, so shapes and types are trusted here; meaning is
checked afterwards on the built values (validate.py), where cross-references are
easy to follow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.venue_model.model import (
    AccessPoint,
    AccessPointKind,
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
)
from services.venue_model.venue import Venue

Raw = dict[str, Any]


def clock_minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _hours(raw: Raw) -> OpeningHours:
    return OpeningHours(opens=clock_minutes(raw["open"]), closes=clock_minutes(raw["close"]))


def _rules(raw: Raw) -> Rules:
    window = raw["return_window"]
    nudges = raw["nudges"]
    return Rules(
        pin_threshold_minor=raw["pin_threshold_minor"],
        return_window=ReturnWindowRule(
            slot_minutes=window["slot_minutes"],
            early_grace_minutes=window["early_grace_minutes"],
            late_grace_minutes=window["late_grace_minutes"],
        ),
        max_holdings_per_guest=raw["max_holdings_per_guest"],
        return_time_capacity_share=float(raw["return_time_capacity_share"]),
        ping_retention_hours=raw["ping_retention_hours"],
        trail_retention_minutes=raw["trail_retention_minutes"],
        photo_retention_days=raw["photo_retention_days"],
        photo_dispatch_window_seconds=float(raw["photo_dispatch_window_seconds"]),
        nudges=NudgeBudget(
            max_per_hour=nudges["max_per_hour"], min_gap_minutes=nudges["min_gap_minutes"]
        ),
    )


def _zone(raw: Raw) -> Zone:
    return Zone(
        id=raw["id"],
        name=raw["name"],
        kind=ZoneKind(raw["kind"]),
        capacity=raw["capacity"],
        floor=raw["floor"],
        parent=raw.get("parent"),
    )


def _node(raw: Raw) -> Node:
    return Node(
        id=raw["id"], x=float(raw["x"]), y=float(raw["y"]), floor=raw["floor"], zone=raw["zone"]
    )


def _edge(raw: Raw) -> Edge:
    seconds = raw.get("traverse_seconds")
    return Edge(
        id=raw["id"],
        source=raw["from"],
        target=raw["to"],
        length_m=float(raw["length_m"]),
        kind=EdgeKind(raw["kind"]),
        one_way=raw.get("one_way", False),
        traverse_seconds=None if seconds is None else float(seconds),
    )


def _queue(raw: Raw) -> QueueSpec:
    source = raw.get("source")
    return QueueSpec(
        hourly_capacity=raw["hourly_capacity"],
        ride_minutes=float(raw["ride_minutes"]),
        vehicle_capacity=raw["vehicle_capacity"],
        min_height_cm=raw.get("min_height_cm"),
        queue_zone=raw["queue_zone"],
        standby_access_point=raw["standby_access_point"],
        return_merge_access_point=raw.get("return_merge_access_point"),
        boarding_access_point=raw["boarding_access_point"],
        exit_node=raw["exit_node"],
        return_time=raw["return_time"],
        virtual_queue=raw["virtual_queue"],
        source=None if source is None else CalibrationSource(source["dataset"], source["code"]),
    )


def _show(raw: Raw) -> ShowSpec:
    return ShowSpec(
        duration_minutes=float(raw["duration_minutes"]),
        capacity=raw["capacity"],
        performances=tuple(clock_minutes(t) for t in raw["performances"]),
    )


def _merchant(raw: Raw) -> MerchantSpec:
    return MerchantSpec(
        price_list=tuple(
            PriceItem(
                sku=item["sku"],
                name=item["name"],
                price_minor=item["price_minor"],
                tags=frozenset(item.get("tags", ())),
            )
            for item in raw["price_list"]
        )
    )


def _hotel(raw: Raw) -> HotelSpec:
    return HotelSpec(
        rooms=tuple(
            Room(
                id=room["id"],
                number=room["number"],
                floor=room["floor"],
                door_access_point=room["door_access_point"],
            )
            for room in raw["rooms"]
        )
    )


def _poi(raw: Raw, venue_hours: OpeningHours) -> Poi:
    return Poi(
        id=raw["id"],
        name=raw["name"],
        kind=PoiKind(raw["kind"]),
        node=raw["node"],
        zone=raw["zone"],
        tags=frozenset(raw.get("tags", ())),
        hours=_hours(raw["hours"]) if "hours" in raw else venue_hours,
        queue=_queue(raw["queue"]) if "queue" in raw else None,
        show=_show(raw["show"]) if "show" in raw else None,
        merchant=_merchant(raw["merchant"]) if "merchant" in raw else None,
        hotel=_hotel(raw["hotel"]) if "hotel" in raw else None,
    )


def _reader(raw: Raw) -> Reader:
    return Reader(id=raw["id"], node=raw["node"], zone=raw["zone"], range_m=float(raw["range_m"]))


def _access_point(raw: Raw) -> AccessPoint:
    return AccessPoint(
        id=raw["id"],
        kind=AccessPointKind(raw["kind"]),
        node=raw["node"],
        zone=raw["zone"],
        attraction=raw.get("attraction"),
        name=raw.get("name"),
    )


def _till(raw: Raw) -> Till:
    return Till(id=raw["id"], merchant=raw["merchant"], node=raw["node"], zone=raw["zone"])


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _camera(raw: Raw) -> Camera:
    return Camera(
        id=raw["id"],
        kind=CameraKind(raw["kind"]),
        node=raw["node"],
        zone=raw["zone"],
        name=raw.get("name"),
        attraction=raw.get("attraction"),
        boarding_access_point=raw.get("boarding_access_point"),
        delay_seconds=_optional_float(raw.get("delay_seconds")),
        jitter_seconds=_optional_float(raw.get("jitter_seconds")),
    )


def _hour_weights(raw: list[Raw]) -> tuple[HourWeight, ...]:
    return tuple(HourWeight(hour=h["hour"], weight=float(h["weight"])) for h in raw)


def _demand(raw: Raw) -> Demand:
    return Demand(
        typical_daily_guests=raw["typical_daily_guests"],
        arrivals_by_hour=_hour_weights(raw["arrivals_by_hour"]),
        departures_by_hour=_hour_weights(raw["departures_by_hour"]),
        party_sizes=tuple(
            PartySize(size=p["size"], weight=float(p["weight"])) for p in raw["party_sizes"]
        ),
        archetypes=tuple(
            Archetype(
                id=a["id"],
                weight=float(a["weight"]),
                description=a["description"],
                stay_minutes=float(a["stay_minutes"]),
                attraction_preference=float(a["attraction_preference"]),
                max_wait_minutes=float(a["max_wait_minutes"]),
            )
            for a in raw["archetypes"]
        ),
        popularity=tuple(
            Popularity(attraction=p["attraction"], weight=float(p["weight"]))
            for p in raw["popularity"]
        ),
        spend=tuple(
            Spend(
                category=SpendCategory(s["category"]),
                mean_minor_per_guest=s["mean_minor_per_guest"],
            )
            for s in raw["spend"]
        ),
        notes=raw.get("notes", ""),
    )


def build_venue(document: Raw, source_path: Path | None = None) -> Venue:
    info = document["venue"]
    hours = _hours(info["hours"])
    return Venue(
        id=info["id"],
        name=info["name"],
        kind=VenueKind(info["kind"]),
        timezone=info["timezone"],
        currency=info["currency"],
        currency_exponent=info["currency_exponent"],
        hours=hours,
        rules=_rules(info["rules"]),
        zones=tuple(_zone(z) for z in document["zones"]),
        nodes=tuple(_node(n) for n in document["nodes"]),
        edges=tuple(_edge(e) for e in document["edges"]),
        pois=tuple(_poi(p, hours) for p in document["pois"]),
        readers=tuple(_reader(r) for r in document["readers"]),
        access_points=tuple(_access_point(a) for a in document.get("access_points", ())),
        tills=tuple(_till(t) for t in document.get("tills", ())),
        cameras=tuple(_camera(c) for c in document.get("cameras", ())),
        demand=_demand(document["demand"]),
        source_path=source_path,
    )
