"""The world's core: guests, lines and rides on the venue's own clock.

Parties move as one (a family walks together) but every member taps, is read and
rides on their own band. Each party is an agent with a small state machine:

    arriving -> (gate taps) -> deciding -> walking -> in line -> riding -> deciding ...
                                        -> at a meal / show / shop / snack / rest ...
                                        -> leaving -> (exit taps) -> gone

Everything is scheduled on the Engine in venue seconds; what devices would report
goes to `devices` as it happens, and whatever the apps learn from the suite comes
back through `inject`. With the Offline ports the same seed plays the same day.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.venue_model import PoiKind, Venue
from sim.config import WorldConfig
from sim.engine import Engine
from sim.frame import DayFrame
from sim.geography import Geography, Walk
from sim.lines import BOARD_LEAD_S, Line, Rider, Status
from sim.places import Attraction, Places, items_tagged
from sim.population import Party
from sim.ports import Apps, Devices, Item, Pass
from sim.truth import CaptureTruth, RideRecord, StatusSpan, Truth

# Seconds between two members' taps at the same scanner.
TAP_GAP = (1.5, 3.5)
# Each ping period is played in this many ticks, one bucket of parties each.
PING_TICKS = 6
# Boarding taps fall in the last seconds before the vehicle leaves.
BOARD_WINDOW_MAX_S = 20.0
# A photographer's turn with a party (a tap, photos at +20 s and +45 s), and the
# longest a party waits for its turn before giving up on the photo spot.
PHOTOGRAPHER_TURN_S = 60.0
PHOTOGRAPHER_MAX_WAIT_S = 600.0


class State:
    EXPECTED = "expected"
    ARRIVING = "arriving"
    DECIDING = "deciding"
    WALKING = "walking"
    IN_LINE = "in_line"
    RIDING = "riding"
    BUSY = "busy"  # at a meal, show, shop, snack, photo spot or resting
    LEAVING = "leaving"
    GONE = "gone"


@dataclass(slots=True)
class Agent:
    party: Party
    state: str = State.EXPECTED
    node: str = ""
    walk: Walk | None = None
    busy_node: str = ""
    inside: bool = False  # past the gates (in a mall: in the building)
    present: bool = False  # somewhere readers may hear them
    token: int = 0  # bumps on each decision, so stale replies are ignored
    # In a line:
    line: Line | None = None
    line_seq: int = 0
    line_taps: list[float] = field(default_factory=list)
    posted: tuple[float | None, float | None] = (None, None)
    waiting_members: int = 0
    riding_pieces: int = 0
    ride_start_s: float = 0.0
    ride_poi: str = ""
    ride_captures: list[str] = field(default_factory=list)
    via_return: bool = False
    must: bool = False
    committed: bool = False  # goes whatever the line (the plan said so, or it is lunch)
    # The day so far:
    rides: Counter[str] = field(default_factory=Counter)
    meals_done: int = 0
    shows_seen: set[str] = field(default_factory=set)
    passes: list[Pass] = field(default_factory=list)
    directive: str | None = None  # a place a nudge sent them to
    directive_since: float = 0.0
    followed: list[tuple[str, float]] = field(default_factory=list)


class World:
    def __init__(
        self,
        venue: Venue,
        frame: DayFrame,
        config: WorldConfig,
        parties: list[Party],
        devices: Devices,
        apps: Apps,
        run_tag: str,
        geo: Geography | None = None,
    ) -> None:
        self.venue = venue
        self.frame = frame
        self.config = config
        self.devices = devices
        self.apps = apps
        self.run_tag = run_tag
        self.geo = geo or Geography(venue)
        self.places = Places(venue, self.geo)
        self.truth = Truth()
        seeds = np.random.SeedSequence(config.seed).spawn(4)
        self.rng = np.random.default_rng(seeds[0])
        self.fault_rng = np.random.default_rng(seeds[1])
        self.radio_rng = np.random.default_rng(seeds[2])
        self.camera_rng = np.random.default_rng(seeds[3])
        self.open_s = frame.at_clock(venue.hours.opens)
        self.close_s = frame.at_clock(venue.hours.closes)
        self.end_s = (
            min(self.close_s, self.open_s + config.hours * 3600)
            if config.hours is not None
            else math.inf
        )
        self.engine = Engine(self.open_s - 3600)
        self.lines = self.places.lines(venue.rules.return_time_capacity_share)
        self.line_seq: dict[str, int] = dict.fromkeys(self.lines, 0)
        self.line_served: dict[str, int] = dict.fromkeys(self.lines, 0)
        self.agents = [Agent(p) for p in parties]
        self.by_party: dict[int, Agent] = {a.party.index: a for a in self.agents}
        self.present: dict[int, Agent] = {}
        self.ping_buckets: list[set[int]] = [set() for _ in range(PING_TICKS)]
        self.performances = {
            poi.id: tuple(frame.at_clock(m) for m in poi.show.performances)
            for poi in self.places.shows
            if poi.show is not None
        }
        self.camera_skew = {
            c.id: float(self.camera_rng.uniform(-config.camera_skew_s, config.camera_skew_s))
            for c in venue.cameras
        }
        self.captures_taken = 0
        self.photographer_free: dict[str, float] = {}
        self.show_seats: Counter[tuple[str, float]] = Counter()
        self._zone_index = {z.id: i for i, z in enumerate(venue.zones)}
        self._zone_rollup = {
            z.id: [self._zone_index[z.id]]
            + [self._zone_index[a.id] for a in venue.zone_ancestors(z.id)]
            for z in venue.zones
        }
        self.truth.zones = [z.id for z in venue.zones]
        self._gate_turn = 0
        self.expected_parties = sum(1 for a in self.agents if a.party.arrive_s < self.end_s)
        self.gone_parties = 0
        # Parties the ticket desk kept waiting past their arrival, and for how long.
        self.late_arrivals = 0
        self.desk_delay_s = 0.0
        self.no_shows = 0

    # --- the day's schedule -----------------------------------------------------

    def start(self) -> None:
        """Put the day's fixed events on the heap: arrivals, pings, faults, samples."""
        for agent in self.agents:
            if agent.party.arrive_s < self.end_s:
                self.engine.at(agent.party.arrive_s, self.arrive, agent)
        for attraction, line in self.lines.items():
            self.truth.status[attraction].append(StatusSpan(Status.OPEN.value, self.open_s))
            self._schedule_fault(line, self.open_s)
            if self.close_s < self.end_s:
                self.engine.at(self.close_s, self.close_standby, line)
        period = self.config.occupancy_period_s
        first = math.ceil(self.open_s / period) * period
        self.engine.at(first, self.sample)
        self.engine.at(self.open_s - 3600, self.ping_tick, 0)

    def inject(self, handler: Callable[..., None], *args: Any) -> None:
        """Something the suite answered reaches the world now (see ports.py)."""
        self.engine.at(self.engine.now, handler, *args)

    @property
    def done(self) -> bool:
        """The day is over: its end reached, or everyone who came has gone home."""
        return self.engine.now >= self.end_s or (
            self.gone_parties == self.expected_parties and not self._lines_busy()
        )

    def _lines_busy(self) -> bool:
        return any(line.waiting() for line in self.lines.values())

    # --- arriving and leaving ------------------------------------------------------

    def arrive(self, agent: Agent) -> None:
        party = agent.party
        if not party.registered:
            # Still at the ticket desk: they come through when the desk is done with
            # them; if the desk failed them, or it is closing time, they go home.
            # Both are in the report.
            if party.extra.get("desk_failed") or self.engine.now >= self.close_s:
                self.no_shows += 1
                agent.state = State.GONE
                self.gone_parties += 1
            else:
                if "desk_wait_from" not in party.extra:
                    party.extra["desk_wait_from"] = self.engine.now
                    self.late_arrivals += 1
                self.engine.at(self.engine.now + 30.0, self.arrive, agent)
            return
        waited_from = party.extra.get("desk_wait_from")
        if isinstance(waited_from, float):
            self.desk_delay_s += self.engine.now - waited_from
        agent.present = True
        self.present[party.index] = agent
        self.truth.arrived_parties += 1
        self.truth.arrived_guests += party.size
        start = (
            self.places.hotel_node.get(party.hotel_room or "")
            or self._pick(self.places.entrances).node
        )
        agent.node = start
        self.ping_buckets[party.index % PING_TICKS].add(party.index)
        if self.places.has_gates:
            ap = self.places.entry_aps[self._gate_turn % len(self.places.entry_aps)]
            self._gate_turn += 1
            agent.state = State.ARRIVING
            self._walk(agent, ap.node, self.at_gate, agent, ap.id)
        else:
            self.enter(agent)

    def at_gate(self, agent: Agent, access_point: str) -> None:
        last = self._taps(agent, access_point, "entry")
        self.engine.at(last + 2.0, self.enter, agent)

    def enter(self, agent: Agent) -> None:
        t = self.engine.now
        agent.inside = True
        self.truth.entries.append((t, agent.party.size))
        self.apps.arrived(agent.party, t, [w.attraction for w in agent.party.wishes])
        self.decide(agent)

    def leave(self, agent: Agent) -> None:
        agent.state = State.LEAVING
        agent.token += 1
        if self.places.has_gates:
            ap = self._nearest_ap(agent.node, self.places.exit_aps)
            self._walk(agent, ap.node, self.at_exit_gate, agent, ap.id)
        else:
            exit_poi = min(
                self.places.exits,
                key=lambda p: self.geo.walk_seconds(agent.node, p.node, agent.party.walking_speed),
            )
            self._walk(agent, exit_poi.node, self.gone, agent)

    def at_exit_gate(self, agent: Agent, access_point: str) -> None:
        last = self._taps(agent, access_point, "exit")
        self.engine.at(last + 1.0, self.outside, agent)

    def outside(self, agent: Agent) -> None:
        agent.inside = False
        self.truth.exits.append((self.engine.now, agent.party.size))
        self.truth.left_guests += agent.party.size
        self.apps.left(agent.party, self.engine.now)
        room = agent.party.hotel_room
        if room and room in self.places.door_of_room:
            ap, node = self.places.door_of_room[room]
            self._walk(agent, node, self.at_door, agent, ap)
        else:
            self.gone(agent)

    def at_door(self, agent: Agent, access_point: str) -> None:
        self.devices.tap(agent.party, agent.party.payer, access_point, self.engine.now)
        self.truth.taps["hotel_door"] += 1
        self.gone(agent)

    def gone(self, agent: Agent) -> None:
        if not self.places.has_gates and agent.inside:
            agent.inside = False
            self.truth.exits.append((self.engine.now, agent.party.size))
            self.truth.left_guests += agent.party.size
            self.apps.left(agent.party, self.engine.now)
        agent.state = State.GONE
        self.gone_parties += 1
        agent.present = False
        agent.walk = None
        self.present.pop(agent.party.index, None)
        self.ping_buckets[agent.party.index % PING_TICKS].discard(agent.party.index)

    # --- deciding what next ----------------------------------------------------------

    def decide(self, agent: Agent) -> None:
        if agent.state in (State.LEAVING, State.GONE):
            return
        t = self.engine.now
        agent.state = State.DECIDING
        agent.token += 1
        party = agent.party
        if t >= party.leave_s or t >= self.close_s:
            self.leave(agent)
            return
        ready = self._usable_pass(agent, t)
        if ready is not None:
            self.go_ride(agent, ready.attraction, via_pass=ready)
            return
        if agent.directive is not None:
            target, agent.directive = agent.directive, None
            if self._do_poi(agent, target):
                agent.followed.append((target, agent.directive_since))
                return
        if agent.meals_done < len(party.meals_s) and t >= party.meals_s[agent.meals_done]:
            agent.meals_done += 1
            if self.go_meal(agent):
                return
        if party.follows_app:
            token = agent.token

            def reply(poi: str | None) -> None:
                self.inject(self._plan_reply, agent, token, poi)

            if self.apps.next_stop(party, t, reply):
                # Looking at the phone; if the app says nothing, they decide alone.
                self.engine.at(t + 60.0, self._plan_reply, agent, token, None)
                return
        self.decide_alone(agent)

    def _plan_reply(self, agent: Agent, token: int, poi: str | None) -> None:
        if agent.token != token or agent.state != State.DECIDING:
            return
        agent.token += 1
        if poi is not None and self._do_poi(agent, poi):
            return
        self.decide_alone(agent)

    def decide_alone(self, agent: Agent) -> None:
        t = self.engine.now
        party = agent.party
        show = self._show_soon(agent, t)
        if show is not None and self.rng.random() < 0.5 + 0.4 * (
            1 - party.archetype.attraction_preference
        ):
            self.go_show(agent, show[0], show[1])
            return
        if self.rng.random() < party.archetype.attraction_preference:
            choice = self._choose_ride(agent, t)
            if choice is not None:
                self.go_ride(agent, choice)
                return
        self.go_other(agent)

    def _do_poi(self, agent: Agent, poi_id: str) -> bool:
        """Go to a place the app named; False if it is not something they can do now."""
        if not self.venue.has(poi_id):
            return False
        try:
            poi = self.venue.poi(poi_id)
        except KeyError:
            return False
        t = self.engine.now
        if poi.queue is not None and poi.id in self.lines:
            line = self.lines[poi.id]
            if line.standby_open and line.status is not Status.CLOSED:
                self.go_ride(agent, poi.id, committed=True)
                return True
            return False
        if poi in self.places.meals:
            return self.go_meal(agent, poi)
        if poi in self.places.snacks:
            self._go_snack(agent, poi)
            return True
        if poi.show is not None:
            slot = self._next_performance(poi, t)
            if slot is not None:
                self.go_show(agent, poi, slot)
                return True
        if poi.kind is PoiKind.SHOP and poi.merchant is not None:
            self._go_shop(agent, poi)
            return True
        return False

    def _choose_ride(self, agent: Agent, t: float) -> str | None:
        party = agent.party
        speed = party.walking_speed
        best: tuple[float, str, bool] | None = None
        wishes = [w for w in party.wishes if agent.rides[w.attraction] == 0]
        rerides = not wishes
        if rerides:
            # Wish list done: the keen ride their favourites again, the rest wander.
            if self.rng.random() > party.archetype.attraction_preference:
                return None
            wishes = list(party.wishes)
        for wish in wishes:
            line = self.lines.get(wish.attraction)
            if line is None or not line.standby_open or line.status is Status.CLOSED:
                continue
            seen = self._seen_wait(agent, wish.attraction, t)
            if seen is None:
                continue
            limit = party.tolerance_s * (1.5 if wish.must else 1.0) * (0.6 if rerides else 1.0)
            if seen > limit:
                continue
            walk = self.geo.walk_seconds(
                agent.node, self.places.attractions[wish.attraction].standby_node, speed
            )
            # Must-dos first; among the rest, the least time lost.
            score = walk + seen - (1800.0 if wish.must else 0.0)
            score += agent.rides[wish.attraction] * 1200.0
            if best is None or score < best[0]:
                best = (score, wish.attraction, wish.must)
        if best is None:
            return None
        agent.must = best[2]
        return best[1]

    def _seen_wait(self, agent: Agent, attraction: str, t: float) -> float | None:
        """The wait a party expects from afar; None if they know the ride is not running.

        App users read the tip board. Without it (or before the twin posts a wait)
        guests only know the ride is there, and judge the line when they reach it."""
        if agent.party.uses_app:
            seen = self.apps.seen(attraction, t)
            if seen.open is False:
                return None
            if seen.posted_s is not None:
                return seen.posted_s
        return 0.0

    def _apparent_wait(self, line: Line) -> float:
        """What a guest guesses from the length of the line in front of them."""
        per_hour = line.capacity * 3600.0 / line.interval_s
        guess = line.standby_guests / per_hour * 3600.0
        return guess * float(self.rng.uniform(0.7, 1.4))

    # --- rides ---------------------------------------------------------------------

    def go_ride(
        self,
        agent: Agent,
        attraction: str,
        via_pass: Pass | None = None,
        committed: bool = False,
    ) -> None:
        a = self.places.attractions[attraction]
        agent.via_return = via_pass is not None
        agent.committed = committed or via_pass is not None
        agent.must = any(w.attraction == attraction and w.must for w in agent.party.wishes)
        if via_pass is not None:
            via_pass.used = True
            assert a.merge_node is not None and a.merge_ap is not None
            self._walk(agent, a.merge_node, self.at_merge, agent, attraction)
        else:
            self._walk(agent, a.standby_node, self.at_standby, agent, attraction)

    def at_standby(self, agent: Agent, attraction: str) -> None:
        t = self.engine.now
        line = self.lines[attraction]
        a = self.places.attractions[attraction]
        if not line.standby_open or line.status is not Status.OPEN:
            self.truth.activities["found_closed"] += 1
            self.decide(agent)
            return
        seen = self.apps.seen(attraction, t)
        posted = seen.posted_s
        judged = posted if posted is not None else self._apparent_wait(line)
        limit = agent.party.tolerance_s * (1.5 if agent.must else 1.0)
        if judged > limit * 1.2 and not agent.committed:
            # The sign at the entrance (or the line itself) puts them off.
            self.truth.activities["turned_away"] += 1
            self.go_other(agent)
            return
        agent.posted = (posted, seen.age_s)
        self._join(agent, line, a, a.line_metres, a.standby_ap, via_return=False)

    def at_merge(self, agent: Agent, attraction: str) -> None:
        line = self.lines[attraction]
        a = self.places.attractions[attraction]
        if line.status is Status.CLOSED:
            self.decide(agent)
            return
        agent.posted = (None, None)
        assert a.merge_ap is not None
        self._join(agent, line, a, a.return_metres, a.merge_ap, via_return=True)

    def _join(
        self, agent: Agent, line: Line, a: Attraction, metres: float, ap: str, via_return: bool
    ) -> None:
        last = self._taps(agent, ap, "merge" if via_return else "standby")
        ready = last + metres / agent.party.walking_speed
        agent.state = State.IN_LINE
        agent.line = line
        agent.ride_poi = a.poi.id
        agent.waiting_members = agent.party.size
        agent.riding_pieces = 0
        agent.ride_captures = []
        agent.line_seq = self.line_seq[line.attraction]
        self.line_seq[line.attraction] += agent.party.size
        agent.busy_node = a.line_nodes[0] if not via_return else (a.merge_node or a.line_nodes[0])
        line.join(Rider(agent.party, tuple(range(agent.party.size)), last, ready, via_return))
        self._schedule_dispatch(line)

    def _schedule_dispatch(self, line: Line) -> None:
        due = line.due(self.engine.now)
        if due is None:
            return
        if line.scheduled_s is not None and line.scheduled_s <= due:
            return
        line.scheduled_s = due
        self.engine.at(due, self.dispatch, line, due)

    def dispatch(self, line: Line, planned: float) -> None:
        if line.scheduled_s != planned:
            return  # superseded by an earlier departure
        line.scheduled_s = None
        t = self.engine.now
        riders = line.dispatch(t)
        if riders:
            a = self.places.attractions[line.attraction]
            window = min(BOARD_WINDOW_MAX_S, 0.6 * line.interval_s)
            guests: list[int] = []
            parties: list[int] = []
            for rider in riders:
                self._board(rider, a, t, window)
                guests.extend(rider.party.members[i].index for i in rider.members)
                parties.append(rider.party.index)
            served = sum(r.count for r in riders)
            self.line_served[line.attraction] += served
            if a.camera is not None:
                jitter = float(self.camera_rng.uniform(-a.camera_jitter_s, a.camera_jitter_s))
                self.engine.at(
                    t + a.camera_delay_s + jitter,
                    self.capture,
                    a.camera,
                    a.poi.id,
                    tuple(guests),
                    tuple(dict.fromkeys(parties)),
                    [r.party for r in riders],
                )
        self._schedule_dispatch(line)
        if not line.waiting() and not line.standby_open and line.status is Status.OPEN:
            self._set_status(line, Status.CLOSED)

    def _board(self, rider: Rider, a: Attraction, t: float, window: float) -> None:
        party: Party = rider.party
        agent = self.by_party[party.index]
        offsets = np.sort(
            self.rng.uniform(BOARD_LEAD_S / 2, max(window, BOARD_LEAD_S), rider.count)
        )
        posted, age = agent.posted
        for member_pos, offset in zip(rider.members, offsets[::-1], strict=True):
            member = party.members[member_pos]
            tap_s = t - float(offset)
            self.devices.tap(party, member, a.boarding_ap, tap_s)
            self.truth.taps["boarding"] += 1
            joined = agent.line_taps[member_pos] if member_pos < len(agent.line_taps) else tap_s
            self.truth.ride_done(
                RideRecord(
                    guest=member.index,
                    party=party.index,
                    attraction=a.poi.id,
                    via_return=rider.via_return,
                    joined_s=joined,
                    boarded_s=tap_s,
                    posted_s=None if rider.via_return else posted,
                    posted_age_s=None if rider.via_return else age,
                    archetype=party.archetype.id,
                    follows_app=party.follows_app,
                    uses_app=party.uses_app,
                    must=agent.must,
                )
            )
        agent.waiting_members -= rider.count
        agent.riding_pieces += 1
        if agent.waiting_members == 0:
            agent.state = State.RIDING
            agent.ride_start_s = t
        self.engine.at(t + self.lines[a.poi.id].ride_s, self.ride_over, agent)

    def capture(
        self,
        camera: str,
        attraction: str,
        guests: tuple[int, ...],
        parties: tuple[int, ...],
        riders: list[Party],
    ) -> None:
        t = self.engine.now
        self.captures_taken += 1
        capture_id = f"{self.run_tag}-{camera}-{self.captures_taken:06d}"
        self.truth.captures[capture_id] = CaptureTruth(
            capture_id, camera, attraction, t, guests, parties
        )
        self.devices.capture(camera, capture_id, t + self.camera_skew[camera])
        for party in riders:
            agent = self.by_party[party.index]
            if agent.ride_poi == attraction and agent.state in (State.RIDING, State.IN_LINE):
                agent.ride_captures.append(capture_id)

    def ride_over(self, agent: Agent) -> None:
        agent.riding_pieces -= 1
        if agent.riding_pieces > 0 or agent.waiting_members > 0:
            return
        a = self.places.attractions[agent.ride_poi]
        agent.rides[agent.ride_poi] += 1
        agent.line = None
        agent.node = a.exit_node
        self.truth.activities["ride"] += 1
        self.apps.did(agent.party, agent.ride_poi, self.engine.now)
        t = self.engine.now
        if a.poi.merchant is not None and self.venue.tills_for(a.poi.id):
            # A counter or a store with a line: the purchase is what they came for.
            if items_tagged(a.poi, "meal"):
                self._buy(agent, a.poi, "food", t)
                self._busy(agent, a.exit_node, float(self.rng.uniform(900, 1800)), "meal")
                return
            self._buy(agent, a.poi, "merchandise", t)
        if (
            a.kiosk is not None
            and agent.ride_captures
            and self.rng.random() < self.config.shares.kiosk
        ):
            self.engine.at(
                t + 30.0,
                self.devices.kiosk,
                a.kiosk,
                a.poi.id,
                agent.party,
                agent.party.payer,
                agent.ride_captures[0],
                t + 30.0,
            )
            self._busy(agent, a.exit_node, 90.0, "kiosk")
            return
        self.decide(agent)

    # --- faults, closing and the ops team ------------------------------------------------

    def _schedule_fault(self, line: Line, after: float) -> None:
        mtbf = self.config.mtbf_hours * 3600.0
        if mtbf <= 0:
            return
        when = after + float(self.fault_rng.exponential(mtbf))
        if when < min(self.close_s, self.end_s):
            self.engine.at(when, self.breakdown, line)

    def breakdown(self, line: Line) -> None:
        if line.status is not Status.OPEN:
            return
        t = self.engine.now
        outage = float(
            np.clip(
                self.fault_rng.lognormal(math.log(self.config.outage_median_minutes * 60), 0.6),
                300,
                5400,
            )
        )
        self._set_status(line, Status.DOWN)
        # Ops learn of it from the ride's operator and post it a little later.
        guess = outage * float(self.fault_rng.lognormal(0, 0.3))
        expected = t + guess if self.fault_rng.random() < 0.5 else None
        posted = t + float(self.fault_rng.uniform(60, 240))
        self.engine.at(posted, self.devices.ride_status, line.attraction, "down", posted, expected)
        for rider in list(line.standby):
            agent = self.by_party[rider.party.index]
            if self.rng.random() < 0.6:
                self.engine.at(t + float(self.rng.uniform(300, 1500)), self.give_up, agent, line)
        self.engine.at(t + outage, self.repair, line)

    def give_up(self, agent: Agent, line: Line) -> None:
        if agent.line is not line or line.status is Status.OPEN or agent.riding_pieces:
            return
        gone = line.leave(agent.party)
        if not gone:
            return
        count = sum(r.count for r in gone)
        self.line_served[line.attraction] += count
        self.truth.abandoned[line.attraction] += count
        agent.line = None
        agent.waiting_members = 0
        agent.node = self.places.attractions[line.attraction].standby_node
        self.decide(agent)

    def repair(self, line: Line) -> None:
        t = self.engine.now
        if line.status is not Status.DOWN:
            return
        self._set_status(line, Status.OPEN)
        posted = t + float(self.fault_rng.uniform(30, 120))
        self.engine.at(posted, self.devices.ride_status, line.attraction, "open", posted, None)
        self._schedule_dispatch(line)
        self._schedule_fault(line, t)

    def close_standby(self, line: Line) -> None:
        line.standby_open = False
        if line.status is Status.OPEN and not line.waiting():
            self._set_status(line, Status.CLOSED)

    def _set_status(self, line: Line, status: Status) -> None:
        t = self.engine.now
        spans = self.truth.status[line.attraction]
        if spans and spans[-1].end_s is None:
            spans[-1].end_s = t
        spans.append(StatusSpan(status.value, t))
        line.status = status

    # --- meals, shows, shops, snacks and rest ------------------------------------------

    def go_meal(self, agent: Agent, poi: Any = None) -> bool:
        meals = self.places.meals
        if not meals:
            return False
        target = poi or min(
            meals,
            key=lambda p: (
                self.geo.walk_seconds(agent.node, p.node, agent.party.walking_speed)
                + float(self.rng.uniform(0, 120))
            ),
        )
        if target.queue is not None and target.id in self.lines:
            line = self.lines[target.id]
            if not line.standby_open or line.status is not Status.OPEN:
                return False
            self.go_ride(agent, target.id, committed=True)
            return True
        self._walk(agent, target.node, self.at_meal, agent, target)
        return True

    def at_meal(self, agent: Agent, poi: Any) -> None:
        t = self.engine.now
        order = float(self.rng.uniform(180, 600))
        self._buy(agent, poi, "food", t + order)
        self.apps.did(agent.party, poi.id, t)
        self._busy(agent, poi.node, order + float(self.rng.uniform(1200, 2400)), "meal")

    def _go_snack(self, agent: Agent, poi: Any) -> None:
        self._walk(agent, poi.node, self.at_snack, agent, poi)

    def at_snack(self, agent: Agent, poi: Any) -> None:
        t = self.engine.now
        self._buy(agent, poi, "drink", t + float(self.rng.uniform(60, 240)))
        self.apps.did(agent.party, poi.id, t)
        self._busy(agent, poi.node, float(self.rng.uniform(300, 900)), "snack")

    def _go_shop(self, agent: Agent, poi: Any) -> None:
        self._walk(agent, poi.node, self.at_shop, agent, poi)

    def at_shop(self, agent: Agent, poi: Any) -> None:
        t = self.engine.now
        browse = float(self.rng.uniform(480, 1500))
        if self.rng.random() < 0.45:
            self._buy(agent, poi, "merchandise", t + browse - 60)
        self._busy(agent, poi.node, browse, "shop")

    def _show_soon(self, agent: Agent, t: float) -> tuple[Any, float] | None:
        for poi in self.places.shows:
            if poi.id in agent.shows_seen:
                continue
            slot = self._next_performance(poi, t)
            if slot is None:
                continue
            walk = self.geo.walk_seconds(agent.node, poi.node, agent.party.walking_speed)
            if t + walk + 120 <= slot <= t + walk + 1500 and slot < agent.party.leave_s:
                return poi, slot
        return None

    def _next_performance(self, poi: Any, t: float) -> float | None:
        for start in self.performances.get(poi.id, ()):
            if start >= t:
                return start
        return None

    def go_show(self, agent: Agent, poi: Any, slot: float) -> None:
        agent.shows_seen.add(poi.id)
        self._walk(agent, poi.node, self.at_show, agent, poi, slot)

    def at_show(self, agent: Agent, poi: Any, slot: float) -> None:
        t = self.engine.now
        seats = self.show_seats[(poi.id, slot)]
        if seats + agent.party.size > poi.show.capacity or t > slot + 300:
            self.go_other(agent)
            return
        self.show_seats[(poi.id, slot)] += agent.party.size
        self.apps.did(agent.party, poi.id, t)
        self._busy(agent, poi.node, max(slot - t, 0) + poi.show.duration_minutes * 60, "show")

    def go_other(self, agent: Agent) -> None:
        r = self.rng.random()
        places = self.places
        if r < 0.3 and places.snacks:
            self._go_snack(agent, self._near(agent, places.snacks))
        elif r < 0.55 and places.shops:
            self._go_shop(agent, self._near(agent, places.shops))
        elif r < 0.65 and places.photo_spots:
            spot = places.photo_spots[int(self.rng.integers(len(places.photo_spots)))]
            self._walk(agent, spot.node, self.at_photo_spot, agent, spot.id)
        elif r < 0.75 and places.restrooms:
            poi = self._near(agent, list(places.restrooms))
            self._walk(agent, poi.node, self._busy_then, agent, poi.node, 300.0, "restroom")
        else:
            node = places.rest_nodes[int(self.rng.integers(len(places.rest_nodes)))]
            self._walk(
                agent,
                node,
                self._busy_then,
                agent,
                node,
                float(self.rng.uniform(600, 1500)),
                "rest",
            )

    def at_photo_spot(self, agent: Agent, camera: str) -> None:
        t = self.engine.now
        party = agent.party
        # A photographer serves one party at a time: the next party waits its
        # turn (its tap would otherwise claim the photos of the party before).
        start = max(t, self.photographer_free.get(camera, t))
        if start - t > PHOTOGRAPHER_MAX_WAIT_S:
            self._busy(agent, self.venue.camera(camera).node, 30.0, "photo_spot_skipped")
            return
        self.photographer_free[camera] = start + PHOTOGRAPHER_TURN_S
        skew = self.camera_skew[camera]
        self.engine.at(
            start, self.devices.photographer_tap, camera, party, party.payer, start + skew
        )
        guests = tuple(m.index for m in party.members)
        for k in range(2):
            self.captures_taken += 1
            capture_id = f"{self.run_tag}-{camera}-{self.captures_taken:06d}"
            taken = start + 20.0 + 25.0 * k
            self.truth.captures[capture_id] = CaptureTruth(
                capture_id, camera, None, taken, guests, (party.index,)
            )
            self.engine.at(taken, self.devices.capture, camera, capture_id, taken + skew)
        self._busy(agent, self.venue.camera(camera).node, start - t + 90.0, "photo_spot")

    def _buy(self, agent: Agent, poi: Any, category: str, t: float) -> None:
        tills = self.venue.tills_for(poi.id)
        if not tills or poi.merchant is None:
            return
        party = agent.party
        prices = poi.merchant.price_list
        items: dict[str, tuple[int, int]] = {}

        def add(item: Any, n: int = 1) -> None:
            q, _ = items.get(item.sku, (0, item.price_minor))
            items[item.sku] = (q + n, item.price_minor)

        if category == "food":
            mains = items_tagged(poi, "meal") or list(prices)
            drinks = items_tagged(poi, "cold_drink", "hot_drink")
            for member in party.members:
                main = (
                    min(mains, key=lambda i: i.price_minor)
                    if not member.adult
                    else mains[int(self.rng.integers(len(mains)))]
                )
                add(main)
                if drinks and self.rng.random() < 0.7:
                    add(drinks[int(self.rng.integers(len(drinks)))])
        elif category == "drink":
            options = items_tagged(poi, "snack", "cold_drink", "hot_drink") or list(prices)
            for _ in range(max(1, party.size - int(self.rng.integers(0, 2)))):
                add(options[int(self.rng.integers(len(options)))])
        else:
            for _ in range(1 + int(self.rng.poisson(party.size / 3))):
                add(prices[int(self.rng.integers(len(prices)))])
        basket = tuple(Item(sku, q, price) for sku, (q, price) in items.items())
        amount = sum(i.quantity * i.unit_minor for i in basket)
        pin = party.pin if amount > self.venue.rules.pin_threshold_minor else None
        till = tills[int(self.rng.integers(len(tills)))]
        self.engine.at(t, self._pay, party, poi.id, till.id, basket, pin, category, amount)

    def _pay(
        self,
        party: Party,
        merchant: str,
        till: str,
        basket: tuple[Item, ...],
        pin: str | None,
        category: str,
        amount: int,
    ) -> None:
        """The party pays at the till (a purchase counts once it is paid for)."""
        t = self.engine.now
        self.devices.charge(party, party.payer, merchant, till, basket, t, pin, category)
        self.truth.purchases.append((t, party.index, merchant, amount, category))

    def _busy(self, agent: Agent, node: str, seconds: float, what: str) -> None:
        agent.state = State.BUSY
        agent.node = node
        agent.busy_node = node
        agent.walk = None
        self.truth.activities[what] += 1
        token = agent.token
        self.engine.at(self.engine.now + seconds, self._done_busy, agent, token)

    def _busy_then(self, agent: Agent, node: str, seconds: float, what: str) -> None:
        self._busy(agent, node, seconds, what)

    def _done_busy(self, agent: Agent, token: int) -> None:
        if agent.token == token and agent.state == State.BUSY:
            self.decide(agent)

    # --- passes and nudges from the apps ----------------------------------------------

    def on_pass(self, party: Party, booked: Pass) -> None:
        agent = self.by_party[party.index]
        for held in agent.passes:
            if held.booking_id == booked.booking_id:
                held.window = booked.window
                return
        agent.passes.append(booked)

    def _usable_pass(self, agent: Agent, t: float) -> Pass | None:
        rule = self.venue.rules.return_window
        for held in agent.passes:
            if held.used or held.window is None:
                continue
            start, end = held.window
            a = self.places.attractions.get(held.attraction)
            if a is None or a.merge_node is None:
                continue
            walk = self.geo.walk_seconds(agent.node, a.merge_node, agent.party.walking_speed)
            line = self.lines[held.attraction]
            if line.status is Status.CLOSED:
                continue
            if start - rule.early_grace_minutes * 60 + 30 <= t + walk <= end - 60:
                return held
            if t + walk > end:
                held.used = True  # missed
        return None

    def on_nudge(self, party: Party, destination: str | None, follow: bool) -> None:
        """A nudge the app showed; followers go where it says (after what they are doing)."""
        agent = self.by_party[party.index]
        if not follow or destination is None or agent.state in (State.LEAVING, State.GONE):
            return
        agent.directive = destination
        agent.directive_since = self.engine.now

    # --- where everyone is ----------------------------------------------------------------

    def position(self, agent: Agent, t: float) -> str:
        if agent.state in (State.WALKING, State.ARRIVING, State.LEAVING) and agent.walk is not None:
            return agent.walk.node_at(t)
        if agent.state == State.IN_LINE and agent.line is not None:
            a = self.places.attractions[agent.line.attraction]
            if agent.via_return:
                return a.merge_node or a.line_nodes[-2]
            ahead = max(0, agent.line_seq - self.line_served[agent.line.attraction])
            steps = len(a.line_nodes) - 2
            return a.line_nodes[max(0, steps - ahead // a.per_node)]
        if agent.state == State.RIDING:
            a = self.places.attractions[agent.ride_poi]
            ride_s = max(a.poi.queue.ride_seconds if a.poi.queue else 1.0, 1.0)
            k = int((t - agent.ride_start_s) / ride_s * (len(a.ride_nodes) - 1))
            return a.ride_nodes[min(max(k, 0), len(a.ride_nodes) - 1)]
        if agent.state == State.BUSY:
            return agent.busy_node
        return agent.node

    def ping_tick(self, tick: int) -> None:
        """Readers hear every band in range about once a period: each tick takes one
        bucket of the parties present, each party at its own moment in the tick."""
        t = self.engine.now
        span = self.config.ping_period_s / PING_TICKS
        heard_at = self.geo.heard
        hear = self.devices.hear
        zone_of = self.geo.zone_of
        was_in = self.truth.was_in
        for index in self.ping_buckets[tick % PING_TICKS]:
            agent = self.by_party[index]
            at = t + (index * 7919 % 1000) / 1000.0 * span
            node = self.position(agent, at)
            was_in(index, zone_of[node], at)
            heard = heard_at.get(node, ())
            if heard:
                hear(agent.party, heard, at)
        if not self.done or tick < PING_TICKS:
            self.engine.at(t + span, self.ping_tick, tick + 1)

    def sample(self) -> None:
        t = self.engine.now
        counts = [0] * len(self.truth.zones)
        inside = 0
        for agent in self.present.values():
            node = self.position(agent, t)
            zone = self.geo.zone_of[node]
            for i in self._zone_rollup[zone]:
                counts[i] += agent.party.size
            if agent.inside:
                inside += agent.party.size
        self.truth.occupancy_times.append(t)
        self.truth.occupancy.append(counts)
        self.truth.inside_times.append(t)
        self.truth.inside.append(inside)
        if t < self.end_s and (t < self.close_s + 3 * 3600) and not self._all_gone(t):
            self.engine.at(t + self.config.occupancy_period_s, self.sample)

    def _all_gone(self, t: float) -> bool:
        return t > self.open_s and self.gone_parties == self.expected_parties

    # --- helpers ----------------------------------------------------------------------------

    def _walk(self, agent: Agent, destination: str, then: Callable[..., None], *args: Any) -> None:
        t = self.engine.now
        if agent.state not in (State.ARRIVING, State.LEAVING):
            agent.state = State.WALKING
        if destination == agent.node:
            agent.walk = None
            self.engine.at(t, then, *args)
            return
        walk = self.geo.walk(agent.node, destination, agent.party.walking_speed, t)
        agent.walk = walk
        agent.node = destination
        self.engine.at(t + walk.seconds, then, *args)

    def _taps(self, agent: Agent, access_point: str, kind: str) -> float:
        """Every member taps in turn; returns when the last one did."""
        t = self.engine.now
        taps: list[float] = []
        for member in agent.party.members:
            self.devices.tap(agent.party, member, access_point, t)
            taps.append(t)
            t += float(self.rng.uniform(*TAP_GAP))
        self.truth.taps[kind] += agent.party.size
        agent.line_taps = taps
        agent.walk = None
        return taps[-1]

    def _pick(self, items: Any) -> Any:
        return items[int(self.rng.integers(len(items)))]

    def _near(self, agent: Agent, pois: list[Any]) -> Any:
        speed = agent.party.walking_speed
        ranked = sorted(pois, key=lambda p: self.geo.walk_seconds(agent.node, p.node, speed))
        return ranked[int(self.rng.integers(min(3, len(ranked))))]

    def _nearest_ap(self, node: str, aps: Any) -> Any:
        return min(aps, key=lambda a: self.geo.walk_seconds(node, a.node, 1.25))

    def image_of(self, capture_id: str) -> tuple[str, str]:
        """The image store reference of a capture: its URI and SHA-256."""
        uri = f"https://photos.{self.venue.id}.example/{self.run_tag}/{capture_id}.jpg"
        return uri, hashlib.sha256(capture_id.encode()).hexdigest()
