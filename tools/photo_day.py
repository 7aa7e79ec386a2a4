"""Where a real simulated day's ride photos go: `venue run` with the suite kept up
after the day, photo's own tables read at the report's moment and again once photo
has decided everything, and every (ride photo, consenting guest) pair of the
world's truth that is not linked counted under the first reason that explains it.

    .venv/bin/python tools/photo_day.py --guests 1000 --hours 1 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import asyncpg

from services.platform.clock import VenueClock
from services.platform.config import ROOT
from services.runner.suite import Suite, auto_ports, implemented_services
from services.venue_model import load_venue
from sim.config import WorldConfig
from sim.day import Day, DayResult
from sim.frame import DayFrame
from sim.report.metrics import photos as report_photos
from sim.run import head_start_s, next_day, remember_day, startup_allowance_s

MATCHED, AMBIGUOUS, NO_MATCH, PENDING = 2, 3, 4, 1


async def snapshot(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url, server_settings={"search_path": "photo"})
    try:
        photos = await conn.fetch(
            "SELECT photo_id::text, capture_id, camera_id, attraction_id, captured_at, "
            "match_state, match_reason, source FROM photos"
        )
        links = await conn.fetch(
            "SELECT g.photo_id::text, g.guest_id::text, l.source FROM photo_link_guests g "
            "JOIN photo_links l USING (photo_id, party_id) WHERE l.removed_at IS NULL"
        )
        taps = await conn.fetch(
            "SELECT tap_id, guest_id::text, party_id::text, access_point_id, tapped_at "
            "FROM boarding_taps"
        )
        guests = await conn.fetch(
            "SELECT guest_id::text, party_id::text, photo_linking FROM guests"
        )
        sugg = await conn.fetch(
            "SELECT photo_id::text, party_id::text, guest_ids::text[], state FROM suggestions"
        )
    finally:
        await conn.close()
    return {"photos": photos, "links": links, "taps": taps, "guests": guests, "suggestions": sugg}


def classify(  # noqa: PLR0912, PLR0915 (one pass, one reason per pair)
    result: DayResult, snap: dict[str, Any], venue: Any
) -> dict[str, Any]:
    world = result.world
    frame = result.frame
    index_of = result.guest_index  # guest_id -> index
    id_of = {i: g for g, i in index_of.items()}
    consent = {m.index: m.consent.photos for a in world.agents for m in a.party.members}
    by_capture = {r["capture_id"]: r for r in snap["photos"]}
    linked: dict[str, set[str]] = defaultdict(set)
    for r in snap["links"]:
        linked[r["photo_id"]].add(r["guest_id"])
    guests = {r["guest_id"]: r for r in snap["guests"]}
    taps: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in snap["taps"]:
        taps[(r["guest_id"], r["access_point_id"])].append(r["tapped_at"].timestamp())
    suggested: dict[str, set[str]] = defaultdict(set)
    for r in snap["suggestions"]:
        suggested[r["photo_id"]].update(r["guest_ids"])
    point_of = {c.id: c.boarding_access_point or "" for c in venue.cameras}
    reasons: Counter[str] = Counter()
    held_reasons: Counter[str] = Counter()
    wrong = correct = 0
    shown = found = 0
    per_camera: dict[str, Counter[str]] = defaultdict(Counter)
    for capture_id, cap in world.truth.captures.items():
        if not cap.attraction:
            continue
        row = by_capture.get(capture_id)
        true_ids = {id_of.get(g) for g in cap.guests}
        if row is not None:
            got = linked.get(row["photo_id"], set())
            correct += len(got & true_ids)
            wrong += len(got - true_ids)
        for g in cap.guests:
            if not consent.get(g):
                continue
            shown += 1
            gid = id_of.get(g)
            if row is not None and gid in linked.get(row["photo_id"], set()):
                found += 1
                per_camera[cap.camera]["linked"] += 1
                continue
            if row is None:
                why = "capture not in photo"
            elif gid is None:
                why = "guest never registered"
            elif gid not in guests:
                why = "guest unknown to photo"
            elif not guests[gid]["photo_linking"]:
                why = "consent off in photo"
            else:
                taken = frame.midnight + cap.taken_s
                point = point_of[cap.camera]
                near = [t for t in taps.get((gid, point), []) if taken - 400 <= t <= taken + 5]
                if not near:
                    why = "no boarding tap in photo"
                elif row["match_state"] == PENDING:
                    why = "pending (never decided)"
                elif row["match_state"] == AMBIGUOUS:
                    why = "held: " + row["match_reason"]
                    held_reasons[row["match_reason"]] += 1
                elif row["match_state"] == NO_MATCH:
                    why = "no match: " + row["match_reason"]
                else:
                    why = "matched without this guest"
            reasons[why] += 1
            per_camera[cap.camera][why] += 1
    return {
        "correct": correct,
        "wrong": wrong,
        "shown": shown,
        "found": found,
        "recall": round(found / shown, 4) if shown else None,
        "missing": dict(reasons.most_common()),
        "per_camera": {k: dict(v) for k, v in sorted(per_camera.items())},
    }


def dump(result: DayResult, snap: dict[str, Any], path: str) -> None:
    """The day's boarding taps and ride photos as photo kept them, and the truth
    of each ride photo (guest ids shown, consenting or not), for replays."""
    id_of = {i: g for g, i in result.guest_index.items()}
    consent = {m.index: m.consent.photos for a in result.world.agents for m in a.party.members}
    data = {
        "taps": [
            (
                r["tap_id"],
                r["access_point_id"],
                r["guest_id"],
                r["party_id"],
                r["tapped_at"].timestamp(),
            )
            for r in snap["taps"]
        ],
        "photos": [
            (
                r["photo_id"],
                r["capture_id"],
                r["camera_id"],
                r["captured_at"].timestamp(),
                r["match_state"],
                r["match_reason"],
            )
            for r in snap["photos"]
            if r["attraction_id"]
        ],
        "truth": {
            k: (
                c.camera,
                result.frame.midnight + c.taken_s,
                [id_of.get(g) for g in c.guests],
                [id_of.get(g) for g in c.guests if consent.get(g)],
            )
            for k, c in result.world.truth.captures.items()
            if c.attraction
        },
        "photo_consent": {r["guest_id"]: r["photo_linking"] for r in snap["guests"]},
    }
    Path(path).write_text(json.dumps(data))


async def main(args: argparse.Namespace) -> int:
    config = WorldConfig(guests=args.guests, hours=args.hours, seed=args.seed)
    venue = load_venue(config.venue_file)
    data_dir = args.data_dir.resolve()
    day = next_day(data_dir, venue)
    frame = DayFrame.of(day, venue.timezone)
    open_s = frame.at_clock(venue.hours.opens)
    services = implemented_services()
    allowance = startup_allowance_s(len(services))
    clock = VenueClock(
        start=frame.instant(open_s - head_start_s(config.guests, config.speed, open_s)),
        anchor=time.time() + allowance,
        speed=config.speed,
    )
    suite = Suite(
        data_dir=data_dir,
        services=services,
        clock=clock,
        ports=auto_ports(),
        venue_file=config.venue_file,
    )
    load0 = os.getloadavg()
    await suite.start(timeout=max(60.0, allowance))
    out: dict[str, Any] = {"guests": args.guests, "hours": args.hours, "load_start": load0}
    try:
        remember_day(data_dir, venue, day)
        admin = await suite.admin_token()
        running = {n for n, p in suite.processes.items() if p.running}
        play = Day(config, venue, clock, suite.addresses, running, admin)
        result = await play.play(None)
        out["load_end"] = os.getloadavg()
        out["report"] = {
            k: v
            for k, v in report_photos(result).items()
            if k in ("links_correct", "links_wrong", "precision_pct", "recall_pct", "acks")
        }
        assert suite.database_url
        first = await snapshot(suite.database_url)
        out["at_report"] = classify(result, first, venue)
        if args.dump:
            dump(result, first, args.dump)
        for wait in args.waits:
            await asyncio.sleep(wait)
            snap = await snapshot(suite.database_url)
            out[f"after_{wait}s"] = classify(result, snap, venue)
    finally:
        await suite.stop()
    text = json.dumps(out, indent=1, default=str)
    print(text)
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, text)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--guests", type=int, default=1000)
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "photo-day")
    p.add_argument("--waits", type=float, nargs="*", default=[20.0])
    p.add_argument("--json", default="")
    p.add_argument("--dump", default="")
    sys.exit(asyncio.run(main(p.parse_args())))
