"""The venue's app on the guests' phones, signed in with each party's own token.

- The tip board: the app refreshes the posted waits every few venue seconds (one
  refresh serves every phone, as a real app's shared cache would); guests read the
  latest snapshot when they choose a ride or join a line.
- Bookings: a party that books asks the queue service for a return time or a place
  in a virtual queue for one of its must-dos, and watches for its group call.
- The plan: the party's wish list goes to the itinerary service; followers ask the
  plan where to go next and act on its nudges, the others ignore them.
- Photos: before leaving, the party looks at its "is this you?" suggestions and may
  buy its photos.

Replies reach the world's core through World.inject, at the venue time they arrive.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
import numpy as np

from services.venue_model import Venue
from sim.clock import VenueTime
from sim.frame import DayFrame
from sim.population import Party
from sim.ports import Pass, Seen
from sim.suite.calls import Caller, Tasks, bearer
from sim.suite.channels import Stubs
from sim.suite.devices import timestamp
from sim.truth import CaptureTruth

if TYPE_CHECKING:
    from sim.world import World
from venue.common.v1 import common_pb2
from venue.itinerary.v1 import itinerary_pb2 as ipb
from venue.photo.v1 import photo_pb2 as ppb
from venue.queue.v1 import queue_pb2 as qpb

# A party waiting for its virtual-queue group looks at the app this often (venue s).
VQ_POLL_S = 300.0
# The app fetches the plan again at least this often (venue s), and at once when
# the nudge feed says it changed.
PLAN_REFRESH_S = 900.0


@dataclass(slots=True)
class Board:
    """One tip board snapshot: attraction -> (open, posted wait seconds)."""

    at_s: float
    waits: dict[str, tuple[bool, float | None]]


@dataclass(slots=True)
class NudgeSeen:
    nudge_id: str
    party: int
    kind: str
    destination: str | None
    at_s: float
    ack: str  # what the guest answered: SEEN only, ACCEPTED or DISMISSED


@dataclass
class AppStats:
    boards: int = 0
    plans: int = 0
    plan_reads: int = 0
    bookings: Counter[str] = field(default_factory=Counter)
    nudges: list[NudgeSeen] = field(default_factory=list)
    streams_opened: int = 0
    stream_errors: Counter[str] = field(default_factory=Counter)
    suggestions: Counter[str] = field(default_factory=Counter)
    purchases: Counter[str] = field(default_factory=Counter)


class SuiteApps:
    def __init__(
        self,
        venue: Venue,
        frame: DayFrame,
        stubs: Stubs,
        call: Caller,
        services: set[str],
        tasks: Tasks,
        run_tag: str,
        ops_token: str,
        venue_time: VenueTime,
        seed: int,
        tipboard_period_s: float,
        suggestion_share: float,
    ) -> None:
        self.venue = venue
        self.frame = frame
        self.stubs = stubs
        self.call = call
        self.services = services
        self.tasks = tasks
        self.run = run_tag
        self.ops_token = ops_token
        self.time = venue_time
        self._world: World | None = None
        self.captures: dict[str, CaptureTruth] = {}
        self.rng = np.random.default_rng(seed)
        self.period_s = tipboard_period_s
        self.suggestion_share = suggestion_share
        self.board: Board | None = None
        self.history: list[Board] = []
        self.stats = AppStats()
        self.plans: dict[int, str] = {}  # party index -> plan id
        self._plan_cache: dict[int, tuple[float, ipb.Plan]] = {}
        self._stale: set[int] = set()
        self._done: dict[int, set[str]] = {}
        self.streams: dict[int, asyncio.Task[None]] = {}
        self.signed_in: dict[int, Party] = {}
        self._seq = itertools.count(1)
        self._uri_to_capture: dict[str, str] = {}

    def attach(self, world: World) -> None:
        self._world = world
        self.captures = world.truth.captures

    @property
    def world(self) -> World:
        assert self._world is not None, "apps not attached to a world"
        return self._world

    def _inject(self, handler: Callable[..., None], *args: object) -> None:
        self.world.inject(handler, *args)

    # --- the tip board ----------------------------------------------------------

    def seen(self, attraction: str, t: float) -> Seen:
        board = self.board
        if board is None:
            return Seen(None, None, None)
        entry = board.waits.get(attraction)
        if entry is None:
            return Seen(None, None, None)
        return Seen(entry[0], entry[1], max(0.0, t - board.at_s))

    def _board_token(self) -> str:
        for party in self.signed_in.values():
            if party.app_token:
                return party.app_token
        return self.ops_token

    async def run_tipboard(self, until: Callable[[], bool]) -> None:
        """Refresh the tip board every period of venue time until the day ends."""
        if "queue" not in self.services:
            return
        while not until():
            now = self.time.now()
            await self.time.sleep_until(now + self.period_s)
            reply = await self.call(
                "queue.GetWaitTimes",
                self.stubs.queue.GetWaitTimes,
                qpb.GetWaitTimesRequest(),
                self._board_token(),
            )
            if reply is None:
                continue
            at = (
                reply.as_of.ToNanoseconds() / 1e9 - self.frame.midnight
                if reply.HasField("as_of")
                else now
            )
            waits: dict[str, tuple[bool, float | None]] = {}
            for w in reply.waits:
                open_ = w.status == qpb.ATTRACTION_STATUS_OPEN
                posted = (
                    w.posted_wait.ToTimedelta().total_seconds()
                    if w.HasField("posted_wait")
                    else None
                )
                waits[w.attraction_id] = (open_, posted if open_ else None)
            self.board = Board(at, waits)
            self.history.append(self.board)
            self.stats.boards += 1

    # --- arriving: the plan, the nudges and a booking ---------------------------------

    def arrived(self, party: Party, t: float, wishes: list[str]) -> None:
        if not party.uses_app or not party.app_token:
            return
        self.signed_in[party.index] = party
        if "itinerary" in self.services and party.payer.consent.nudges:
            self.tasks.spawn(self._plan_and_listen(party, t))
        if party.books and "queue" in self.services:
            self.tasks.spawn(self._book(party, t))

    async def _plan_and_listen(self, party: Party, t: float) -> None:
        wishes = [
            ipb.WishItem(
                poi_id=w.attraction,
                priority=ipb.WISH_PRIORITY_MUST_DO if w.must else ipb.WISH_PRIORITY_NICE_TO_DO,
            )
            for w in party.wishes
        ]
        node = self.world.by_party[party.index].node
        settings = ipb.PlanSettings(
            start_place=common_pb2.Place(zone_id=self.world.geo.zone_of[node], node_id=node),
            arrive_at=timestamp(self.frame, t),
            leave_at=timestamp(self.frame, party.leave_s),
            walking_speed_mps=party.walking_speed,
        )
        reply = await self.call(
            "itinerary.CreatePlan",
            self.stubs.itinerary.CreatePlan,
            ipb.CreatePlanRequest(
                party_id=party.party_id,
                settings=settings,
                wish_list=wishes,
                idempotency_key=f"{self.run}:plan:{party.index}",
            ),
            party.app_token,
        )
        if reply is not None:
            self.plans[party.index] = reply.plan.plan_id
            self.stats.plans += 1
        if party.index not in self.signed_in:
            # The party left, or the day ended, while the plan was being made (a
            # slow suite): nobody cancels a feed opened now, and the day's drain
            # would wait for it to its limit.
            return
        task = asyncio.current_task()
        assert task is not None
        self.streams[party.index] = task
        await self._listen(party)

    async def _listen(self, party: Party) -> None:
        """The app's nudge feed: resume from the last cursor after a dropped stream."""
        cursor = common_pb2.StreamCursor()
        session = f"{self.run}-app-{party.index}"
        delay = 0.2
        while True:
            try:
                self.stats.streams_opened += 1
                stream = self.stubs.itinerary.SubscribeNudges(
                    ipb.SubscribeNudgesRequest(start=cursor, app_session_id=session),
                    metadata=bearer(party.app_token),
                )
                async for event in stream:
                    cursor = common_pb2.StreamCursor(cursor=event.cursor)
                    delay = 0.2
                    if event.HasField("nudge"):
                        await self._on_nudge(party, event.nudge)
                    elif event.HasField("plan_updated"):
                        self._stale.add(party.index)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.CANCELLED:
                    return
                self.stats.stream_errors[err.code().name] += 1
                if err.code() in (
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.UNIMPLEMENTED,
                ):
                    self.call.stats.failed(
                        "itinerary.SubscribeNudges", err.code().name, err.details() or ""
                    )
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _on_nudge(self, party: Party, nudge: ipb.Nudge) -> None:
        if nudge.status not in (ipb.NUDGE_STATUS_SENT, ipb.NUDGE_STATUS_UNSPECIFIED):
            return  # replayed after a reconnect, already handled
        t = self.time.now()
        kind = ipb.NudgeKind.Name(nudge.kind)
        action = nudge.action.WhichOneof("action")
        destination: str | None = None
        if action == "open_route":
            destination = nudge.action.open_route.destination_poi_id or None
        elif action == "book":
            destination = nudge.action.book.attraction_id or None
        follow = party.follows_app
        if follow and action is not None:
            ack = ipb.NUDGE_ACK_KIND_ACCEPTED
        elif self.rng.random() < 0.4:
            ack = ipb.NUDGE_ACK_KIND_DISMISSED
        else:
            ack = ipb.NUDGE_ACK_KIND_SEEN
        self.stats.nudges.append(
            NudgeSeen(nudge.nudge_id, party.index, kind, destination, t, ipb.NudgeAckKind.Name(ack))
        )
        acked = await self.call(
            "itinerary.AcknowledgeNudge",
            self.stubs.itinerary.AcknowledgeNudge,
            ipb.AcknowledgeNudgeRequest(
                nudge_id=nudge.nudge_id, ack=ack, acknowledged_at=timestamp(self.frame, t)
            ),
            party.app_token,
            # The app shows "this suggestion no longer applies" and the guest moves on.
            answers=frozenset({grpc.StatusCode.FAILED_PRECONDITION}),
        )
        if acked is None:
            return
        if follow and destination is not None:
            self._inject(self.world.on_nudge, party, destination, True)
        if nudge.kind == ipb.NUDGE_KIND_BOARDING_GROUP_CALLED:
            self.tasks.spawn(self._refresh_bookings(party))

    async def _book(self, party: Party, t: float) -> None:
        guests = [m.guest_id for m in party.members]
        for wish in party.wishes:
            reply: qpb.JoinVirtualQueueResponse | qpb.BookReturnTimeResponse | None
            spec = self.venue.attraction(wish.attraction).queue
            if spec is None or spec.return_merge_access_point is None:
                continue
            if spec.virtual_queue:
                reply = await self.call(
                    "queue.JoinVirtualQueue",
                    self.stubs.queue.JoinVirtualQueue,
                    qpb.JoinVirtualQueueRequest(
                        attraction_id=wish.attraction,
                        guest_ids=guests,
                        idempotency_key=f"{self.run}:vq:{party.index}:{wish.attraction}"[:128],
                    ),
                    party.app_token,
                )
            elif spec.return_time and wish.must:
                reply = await self.call(
                    "queue.BookReturnTime",
                    self.stubs.queue.BookReturnTime,
                    qpb.BookReturnTimeRequest(
                        attraction_id=wish.attraction,
                        guest_ids=guests,
                        idempotency_key=f"{self.run}:rt:{party.index}:{wish.attraction}"[:128],
                    ),
                    party.app_token,
                )
            else:
                continue
            if reply is None:
                self.stats.bookings["failed"] += 1
                continue
            booking = reply.booking
            self.stats.bookings[qpb.BookingKind.Name(booking.kind)] += 1
            self._inject(self.world.on_pass, party, self._pass(booking))
            if booking.status == qpb.BOOKING_STATUS_WAITING:
                self.tasks.spawn(self._await_call(party, booking.booking_id))
            return  # one booking a party, at most

    def _pass(self, booking: qpb.Booking) -> Pass:
        window = None
        if booking.HasField("window"):
            window = (
                booking.window.start.ToNanoseconds() / 1e9 - self.frame.midnight,
                booking.window.end.ToNanoseconds() / 1e9 - self.frame.midnight,
            )
        return Pass(
            booking.booking_id,
            booking.attraction_id,
            window,
            booking.kind == qpb.BOOKING_KIND_VIRTUAL_QUEUE,
        )

    async def _await_call(self, party: Party, booking_id: str) -> None:
        """Look at the booking now and then until its group is called."""
        while party.index in self.signed_in:
            await self.time.sleep_until(self.time.now() + VQ_POLL_S)
            if party.index not in self.signed_in:
                return
            reply = await self.call(
                "queue.GetBooking",
                self.stubs.queue.GetBooking,
                qpb.GetBookingRequest(booking_id=booking_id),
                party.app_token,
            )
            if reply is None:
                continue
            booking = reply.booking
            if booking.status == qpb.BOOKING_STATUS_CALLED and booking.HasField("window"):
                self._inject(self.world.on_pass, party, self._pass(booking))
                return
            if booking.status not in (qpb.BOOKING_STATUS_WAITING,):
                return

    async def _refresh_bookings(self, party: Party) -> None:
        reply = await self.call(
            "queue.ListBookings",
            self.stubs.queue.ListBookings,
            qpb.ListBookingsRequest(party_id=party.party_id),
            party.app_token,
        )
        if reply is None:
            return
        for booking in reply.bookings:
            if booking.HasField("window"):
                self._inject(self.world.on_pass, party, self._pass(booking))

    # --- following the plan --------------------------------------------------------

    def next_stop(self, party: Party, t: float, reply: Callable[[str | None], None]) -> bool:
        """Where the plan says to go next. The app keeps the plan it last fetched and
        fetches it again when the feed says it changed or it is a while old."""
        if party.index not in self.plans or not party.app_token:
            return False
        cached = self._plan_cache.get(party.index)
        fresh = (
            cached is not None and party.index not in self._stale and t - cached[0] < PLAN_REFRESH_S
        )
        if fresh and cached is not None:
            reply(_next_poi(cached[1], self._done.get(party.index, set())))
            return True

        async def ask() -> None:
            self.stats.plan_reads += 1
            self._stale.discard(party.index)
            got = await self.call(
                "itinerary.GetPlan",
                self.stubs.itinerary.GetPlan,
                ipb.GetPlanRequest(party_id=party.party_id),
                party.app_token,
            )
            if got is None:
                reply(None)
                return
            self._plan_cache[party.index] = (t, got.plan)
            self._done.pop(party.index, None)
            reply(_next_poi(got.plan, set()))

        self.tasks.spawn(ask())
        return True

    def did(self, party: Party, poi: str, t: float) -> None:
        if party.index in self._plan_cache:
            self._done.setdefault(party.index, set()).add(poi)

    def close(self) -> None:
        """The day is over: every app still open stops listening and polling."""
        self.signed_in.clear()
        for stream in self.streams.values():
            stream.cancel()
        self.streams.clear()

    # --- leaving: photos, and the app goes quiet -----------------------------------------

    def left(self, party: Party, t: float) -> None:
        self.signed_in.pop(party.index, None)
        stream = self.streams.pop(party.index, None)
        if stream is not None:
            stream.cancel()
        if party.app_token and "photo" in self.services:
            self.tasks.spawn(self._photos(party))

    def _capture_of(self, photo: ppb.Photo) -> CaptureTruth | None:
        if photo.capture_id in self.captures:
            return self.captures[photo.capture_id]
        if not self._uri_to_capture:
            self._uri_to_capture = {self.world.image_of(c)[0]: c for c in self.captures}
        capture_id = self._uri_to_capture.get(photo.image_uri)
        return self.captures.get(capture_id) if capture_id else None

    async def _photos(self, party: Party) -> None:
        if self.rng.random() < self.suggestion_share:
            await self._suggestions(party)

    async def _suggestions(self, party: Party) -> None:
        reply = await self.call(
            "photo.ListSuggestions",
            self.stubs.photo.ListSuggestions,
            ppb.ListSuggestionsRequest(party_id=party.party_id),
            party.app_token,
        )
        if reply is None:
            return
        for suggestion in reply.suggestions:
            truth = self._capture_of(suggestion.photo)
            ours = truth is not None and party.index in truth.parties
            answer = ppb.SUGGESTION_ANSWER_IS_US if ours else ppb.SUGGESTION_ANSWER_NOT_US
            self.stats.suggestions["is_us" if ours else "not_us"] += 1
            await self.call(
                "photo.RespondToSuggestion",
                self.stubs.photo.RespondToSuggestion,
                ppb.RespondToSuggestionRequest(
                    suggestion_id=suggestion.suggestion_id, answer=answer
                ),
                party.app_token,
            )


def _next_poi(plan: ipb.Plan, done: set[str]) -> str | None:
    """The first stop still to do (leaving out what the party did since the fetch)."""
    for stop in plan.stops:
        if (
            stop.state in (ipb.STOP_STATE_UPCOMING, ipb.STOP_STATE_IN_PROGRESS)
            and stop.poi_id
            and stop.poi_id not in done
        ):
            return stop.poi_id
    return None
