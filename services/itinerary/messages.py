"""Records as protobuf messages, and the event payloads the itinerary emits."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from services.itinerary.model import (
    Action,
    Book,
    Booking,
    MoveStop,
    Nudge,
    OpenPlan,
    OpenRoute,
    Place,
    Plan,
    PlanSettings,
    Preferences,
    Progress,
    SkipStop,
    Stop,
    Window,
    Wish,
)
from services.platform.validation import to_timestamp
from venue.common.v1 import common_pb2
from venue.itinerary.v1 import itinerary_pb2 as pb

# Event kinds in the itinerary's table. Feed events are keyed by guest and
# served by SubscribeNudges; the rest are the service stream's.
FEED_NUDGE = "feed.nudge"
FEED_WITHDRAWN = "feed.nudge_withdrawn"
FEED_PLAN = "feed.plan_updated"
FEED_KINDS = frozenset({FEED_NUDGE, FEED_WITHDRAWN, FEED_PLAN})
PLAN_CHANGED = "plan_changed"
NUDGE_SENT = "nudge_sent"
NUDGE_ACKNOWLEDGED = "nudge_acknowledged"
STREAM_KINDS = {
    pb.ITINERARY_EVENT_KIND_PLAN_CHANGED: PLAN_CHANGED,
    pb.ITINERARY_EVENT_KIND_NUDGE_SENT: NUDGE_SENT,
    pb.ITINERARY_EVENT_KIND_NUDGE_ACKNOWLEDGED: NUDGE_ACKNOWLEDGED,
}


def times(**values: datetime | None) -> dict[str, Timestamp]:
    """Timestamp fields for a message constructor, leaving out the unset ones
    (an empty Timestamp would read as set)."""
    return {name: to_timestamp(v) for name, v in values.items() if v is not None}


def duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def place_pb(place: Place) -> common_pb2.Place:
    return common_pb2.Place(zone_id=place.zone_id, node_id=place.node_id)


def window_pb(window: Window | None) -> common_pb2.TimeRange:
    if window is None:
        return common_pb2.TimeRange()
    return common_pb2.TimeRange(start=to_timestamp(window.start), end=to_timestamp(window.end))


def date_pb(plan: Plan) -> common_pb2.VenueDate:
    return common_pb2.VenueDate(year=plan.date.year, month=plan.date.month, day=plan.date.day)


def settings_pb(s: PlanSettings) -> pb.PlanSettings:
    return pb.PlanSettings(
        start_place=place_pb(s.start_place),
        **times(arrive_at=s.arrive_at, leave_at=s.leave_at),
        walking_speed_mps=s.walking_speed_mps,
        accessible=s.accessible,
        avoid_crowds=s.avoid_crowds,
    )


def wish_pb(w: Wish) -> pb.WishItem:
    item = pb.WishItem(
        wish_id=w.wish_id,
        poi_id=w.poi_id,
        priority=w.priority,  # type: ignore[arg-type]
        guest_ids=list(w.guest_ids),
    )
    if w.window is not None:
        item.start_window.CopyFrom(window_pb(w.window))
    if w.duration_s is not None:
        item.duration.CopyFrom(duration(w.duration_s))
    return item


def booking_pb(b: Booking) -> pb.PlanBooking:
    return pb.PlanBooking(
        booking_id=b.booking_id,
        kind=b.kind,  # type: ignore[arg-type]
        poi_id=b.poi_id,
        window=window_pb(b.window),
        external_ref=b.external_ref,
        guest_ids=list(b.guest_ids),
    )


def stop_pb(s: Stop) -> pb.PlanStop:
    return pb.PlanStop(
        stop_id=s.stop_id,
        wish_id=s.wish_id,
        booking_id=s.booking_id,
        poi_id=s.poi_id,
        state=s.state,  # type: ignore[arg-type]
        walk=duration(s.walk_s),
        wait=duration(s.wait_s),
        **times(
            arrive_at=s.arrive_at,
            start_at=s.start_at,
            end_at=s.end_at,
            actual_start_at=s.actual_start_at or s.joined_at,
            actual_end_at=s.actual_end_at,
        ),
    )


def progress_pb(p: Progress) -> pb.Progress:
    message = pb.Progress(
        stops_done=p.stops_done,
        stops_remaining=p.stops_remaining,
        next_stop_id=p.next_stop_id,
        as_of=to_timestamp(p.as_of),
    )
    if p.offset_s is not None:
        message.schedule_offset.CopyFrom(duration(p.offset_s))
    if p.place:
        message.last_known_place.CopyFrom(place_pb(p.place))
    return message


def plan_pb(plan: Plan, progress: Progress) -> pb.Plan:
    return pb.Plan(
        plan_id=plan.plan_id,
        party_id=plan.party_id,
        date=date_pb(plan),
        version=plan.version,
        settings=settings_pb(plan.settings),
        wish_list=[wish_pb(w) for w in plan.wishes],
        bookings=[booking_pb(b) for b in plan.bookings],
        stops=[stop_pb(s) for s in plan.stops],
        skipped=[
            pb.SkippedWish(wish_id=k.wish_id, reason=k.reason, detail=k.detail)  # type: ignore[arg-type]
            for k in plan.skipped
        ],
        progress=progress_pb(progress),
        last_replan_reason=plan.last_replan_reason,  # type: ignore[arg-type]
        **times(planned_at=plan.planned_at, updated_at=plan.updated_at),
    )


# --- nudges -------------------------------------------------------------------


def action_pb(action: Action) -> pb.NudgeAction:
    match action:
        case OpenRoute():
            return pb.NudgeAction(
                open_route=pb.OpenRouteAction(
                    destination_poi_id=action.destination_poi_id,
                    node_ids=list(action.node_ids),
                    walking_time=duration(action.walking_s),
                )
            )
        case Book():
            return pb.NudgeAction(
                book=pb.BookAction(
                    attraction_id=action.attraction_id,
                    window=window_pb(action.window),
                    virtual_queue=action.virtual_queue,
                )
            )
        case SkipStop():
            return pb.NudgeAction(skip_stop=pb.SkipStopAction(stop_id=action.stop_id))
        case MoveStop():
            return pb.NudgeAction(
                move_stop=pb.MoveStopAction(
                    stop_id=action.stop_id, before_stop_id=action.before_stop_id
                )
            )
        case OpenPlan():
            return pb.NudgeAction(open_plan=pb.OpenPlanAction(plan_version=action.plan_version))


def action_of(raw: bytes) -> Action:
    message = pb.NudgeAction.FromString(raw)
    which = message.WhichOneof("action")
    if which == "open_route":
        r = message.open_route
        return OpenRoute(
            r.destination_poi_id, tuple(r.node_ids), r.walking_time.ToNanoseconds() / 1e9
        )
    if which == "book":
        b = message.book
        window = None
        if b.HasField("window") and b.window.start.seconds:
            window = Window(
                b.window.start.ToDatetime(tzinfo=UTC), b.window.end.ToDatetime(tzinfo=UTC)
            )
        return Book(b.attraction_id, window, b.virtual_queue)
    if which == "skip_stop":
        return SkipStop(message.skip_stop.stop_id)
    if which == "move_stop":
        return MoveStop(message.move_stop.stop_id, message.move_stop.before_stop_id)
    return OpenPlan(message.open_plan.plan_version)


def nudge_pb(n: Nudge, now: datetime) -> pb.Nudge:
    return pb.Nudge(
        nudge_id=n.nudge_id,
        guest_id=n.guest_id,
        party_id=n.party_id,
        kind=n.kind,  # type: ignore[arg-type]
        title=n.title,
        body=n.body,
        reason=n.reason,
        action=action_pb(n.action),
        time_saved=duration(n.time_saved_s),
        urgency=n.urgency,  # type: ignore[arg-type]
        status=n.status_at(now),  # type: ignore[arg-type]
        created_at=to_timestamp(n.created_at),
        expires_at=to_timestamp(n.expires_at),
    )


def preferences_pb(p: Preferences) -> pb.NudgePreferences:
    return pb.NudgePreferences(
        guest_id=p.guest_id,
        quiet_periods=[window_pb(w) for w in p.quiet_periods],
        muted_kinds=sorted(p.muted_kinds),  # type: ignore[arg-type]
        max_per_hour=p.max_per_hour,
    )


# --- event payloads -------------------------------------------------------------


def feed_nudge(n: Nudge) -> bytes:
    # The feed shows the nudge as sent: its status then is what the app shows.
    return pb.SubscribeNudgesResponse(nudge=nudge_pb(n, n.created_at)).SerializeToString()


def feed_withdrawn(nudge_id: str) -> bytes:
    return pb.SubscribeNudgesResponse(
        nudge_withdrawn=pb.NudgeWithdrawn(nudge_id=nudge_id)
    ).SerializeToString()


def feed_plan(plan: Plan) -> bytes:
    return pb.SubscribeNudgesResponse(
        plan_updated=pb.PlanUpdated(
            plan_id=plan.plan_id,
            version=plan.version,
            reason=plan.last_replan_reason,  # type: ignore[arg-type]
        )
    ).SerializeToString()


def plan_changed(plan: Plan) -> bytes:
    return pb.WatchItineraryEventsResponse(
        plan_changed=pb.PlanChanged(
            plan_id=plan.plan_id,
            party_id=plan.party_id,
            version=plan.version,
            reason=plan.last_replan_reason,  # type: ignore[arg-type]
        )
    ).SerializeToString()


def nudge_sent(n: Nudge) -> bytes:
    return pb.WatchItineraryEventsResponse(
        nudge_sent=pb.NudgeSent(
            nudge_id=n.nudge_id,
            guest_id=n.guest_id,
            party_id=n.party_id,
            kind=n.kind,  # type: ignore[arg-type]
            urgency=n.urgency,  # type: ignore[arg-type]
            time_saved=duration(n.time_saved_s),
            expires_at=to_timestamp(n.expires_at),
        )
    ).SerializeToString()


def nudge_acknowledged(n: Nudge, ack: int) -> bytes:
    return pb.WatchItineraryEventsResponse(
        nudge_acknowledged=pb.NudgeAcknowledged(
            nudge_id=n.nudge_id,
            guest_id=n.guest_id,
            kind=n.kind,  # type: ignore[arg-type]
            ack=ack,  # type: ignore[arg-type]
        )
    ).SerializeToString()
