"""A plan as the JSON document the store keeps, and back."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from services.itinerary.model import (
    Booking,
    Place,
    Plan,
    PlanSettings,
    SkippedWish,
    Stop,
    Window,
    Wish,
)

Json = dict[str, Any]


def _t(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _req(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _window(window: Window | None) -> list[str] | None:
    return None if window is None else [window.start.isoformat(), window.end.isoformat()]


def _win(value: list[str] | None) -> Window | None:
    return None if value is None else Window(_req(value[0]), _req(value[1]))


def _place(place: Place) -> list[str]:
    return [place.zone_id, place.node_id]


def _pl(value: list[str]) -> Place:
    return Place(value[0], value[1])


def _stop(s: Stop) -> Json:
    return {
        "id": s.stop_id,
        "poi": s.poi_id,
        "state": s.state,
        "wish": s.wish_id,
        "booking": s.booking_id,
        "must": s.must_do,
        "window": _window(s.window),
        "arrive": _t(s.arrive_at),
        "walk": s.walk_s,
        "wait": s.wait_s,
        "start": _t(s.start_at),
        "end": _t(s.end_at),
        "zones": list(s.route_zones),
        "joined": _t(s.joined_at),
        "actual_start": _t(s.actual_start_at),
        "actual_end": _t(s.actual_end_at),
    }


def _stop_of(d: Json) -> Stop:
    return Stop(
        stop_id=d["id"],
        poi_id=d["poi"],
        state=d["state"],
        wish_id=d["wish"],
        booking_id=d["booking"],
        must_do=d["must"],
        window=_win(d["window"]),
        arrive_at=_dt(d["arrive"]),
        walk_s=d["walk"],
        wait_s=d["wait"],
        start_at=_dt(d["start"]),
        end_at=_dt(d["end"]),
        route_zones=tuple(d["zones"]),
        joined_at=_dt(d["joined"]),
        actual_start_at=_dt(d["actual_start"]),
        actual_end_at=_dt(d["actual_end"]),
    )


def plan_to_json(plan: Plan) -> str:
    s = plan.settings
    doc: Json = {
        "plan_id": plan.plan_id,
        "party_id": plan.party_id,
        "date": plan.date.isoformat(),
        "version": plan.version,
        "settings": {
            "start": _place(s.start_place),
            "arrive": _t(s.arrive_at),
            "leave": _t(s.leave_at),
            "speed": s.walking_speed_mps,
            "accessible": s.accessible,
            "avoid_crowds": s.avoid_crowds,
        },
        "wishes": [
            {
                "id": w.wish_id,
                "poi": w.poi_id,
                "priority": w.priority,
                "window": _window(w.window),
                "duration": w.duration_s,
                "guests": list(w.guest_ids),
            }
            for w in plan.wishes
        ],
        "bookings": [
            {
                "id": b.booking_id,
                "kind": b.kind,
                "poi": b.poi_id,
                "window": _window(b.window),
                "ref": b.external_ref,
                "guests": list(b.guest_ids),
                "called": _t(b.called_at),
            }
            for b in plan.bookings
        ],
        "stops": [_stop(s) for s in plan.stops],
        "skipped": [[k.wish_id, k.reason, k.detail] for k in plan.skipped],
        "last_replan_reason": plan.last_replan_reason,
        "planned_at": _t(plan.planned_at),
        "created_at": _t(plan.created_at),
        "updated_at": _t(plan.updated_at),
        "place": _place(plan.place),
        "place_at": _t(plan.place_at),
        "entered_at": _t(plan.entered_at),
        "left_at": _t(plan.left_at),
        "guest_skipped": sorted(plan.guest_skipped),
        "not_before": [[w, t.isoformat()] for w, t in plan.not_before],
        "tap_ids": list(plan.tap_ids),
        "behind_replan_at": _t(plan.behind_replan_at),
        "previous_next": plan.previous_next_stop_id,
        "dropped_refs": sorted(plan.dropped_refs),
    }
    return json.dumps(doc, separators=(",", ":"))


def plan_from_json(raw: str) -> Plan:
    d = json.loads(raw)
    s = d["settings"]
    return Plan(
        plan_id=d["plan_id"],
        party_id=d["party_id"],
        date=date.fromisoformat(d["date"]),
        version=d["version"],
        settings=PlanSettings(
            start_place=_pl(s["start"]),
            arrive_at=_dt(s["arrive"]),
            leave_at=_dt(s["leave"]),
            walking_speed_mps=s["speed"],
            accessible=s["accessible"],
            avoid_crowds=s["avoid_crowds"],
        ),
        wishes=tuple(
            Wish(
                w["id"],
                w["poi"],
                w["priority"],
                _win(w["window"]),
                w["duration"],
                tuple(w["guests"]),
            )
            for w in d["wishes"]
        ),
        bookings=tuple(
            Booking(
                b["id"],
                b["kind"],
                b["poi"],
                _win(b["window"]),
                b["ref"],
                tuple(b["guests"]),
                _dt(b["called"]),
            )
            for b in d["bookings"]
        ),
        stops=tuple(_stop_of(x) for x in d["stops"]),
        skipped=tuple(SkippedWish(w, r, t) for w, r, t in d["skipped"]),
        last_replan_reason=d["last_replan_reason"],
        planned_at=_dt(d["planned_at"]),
        created_at=_req(d["created_at"]),
        updated_at=_req(d["updated_at"]),
        place=_pl(d["place"]),
        place_at=_dt(d["place_at"]),
        entered_at=_dt(d["entered_at"]),
        left_at=_dt(d["left_at"]),
        guest_skipped=frozenset(d["guest_skipped"]),
        not_before=tuple((w, _req(t)) for w, t in d["not_before"]),
        tap_ids=tuple(d["tap_ids"]),
        behind_replan_at=_dt(d["behind_replan_at"]),
        previous_next_stop_id=d["previous_next"],
        dropped_refs=frozenset(d.get("dropped_refs", ())),
    )
