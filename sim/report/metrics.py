"""The report card's figures: what the twin said against what really happened.

Pure functions of a played day (sim.day.DayResult); the charts and the Markdown
are drawn from what they return. A part that needs a service which was not running
says so instead of a figure ("not measured yet: queue not running").
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.day import DayResult
from sim.suite.readers import READ_SKEW_MS
from sim.truth import RideRecord

FORECAST_SLOT_S = 900.0


def not_running(service: str) -> str:
    return f"not measured yet: {service} not running"


def _minutes(seconds: float) -> float:
    return round(seconds / 60.0, 2)


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


@dataclass(frozen=True)
class WaitError:
    joins: int
    mae_min: float
    bias_min: float
    within_5: float
    within_10: float


def wait_error(records: list[RideRecord]) -> WaitError | None:
    pairs = [(r.posted_s, r.wait_s) for r in records if r.posted_s is not None]
    if not pairs:
        return None
    errors = np.array([p - a for p, a in pairs]) / 60.0
    return WaitError(
        joins=len(pairs),
        mae_min=round(float(np.mean(np.abs(errors))), 2),
        bias_min=round(float(np.mean(errors)), 2),
        within_5=round(100.0 * float(np.mean(np.abs(errors) <= 5)), 2),
        within_10=round(100.0 * float(np.mean(np.abs(errors) <= 10)), 2),
    )


def attendance(r: DayResult) -> dict[str, Any]:
    t = r.world.truth
    entered = sum(n for _, n in t.entries)
    left = sum(n for _, n in t.exits)
    inside_now = sum(a.party.size for a in r.world.present.values() if a.inside)
    peak = max(t.inside) if t.inside else 0
    peak_at = t.inside_times[t.inside.index(peak)] if t.inside else 0.0
    return {
        "expected_guests": sum(a.party.size for a in r.world.agents),
        "arrived": t.arrived_guests,
        "entered": entered,
        "left": left,
        "still_inside": inside_now,
        "conserved": entered == left + inside_now,
        "peak_inside": peak,
        "peak_at": r.frame.label(peak_at),
        "late_at_desk": r.world.late_arrivals,
        "desk_delay_min_mean": _minutes(r.world.desk_delay_s / r.world.late_arrivals)
        if r.world.late_arrivals
        else 0.0,
        "never_registered": r.world.no_shows,
    }


def rides(r: DayResult) -> dict[str, Any]:
    records = r.world.truth.rides
    guests = max(1, r.world.truth.arrived_guests)
    by_attr: dict[str, list[RideRecord]] = defaultdict(list)
    for rec in records:
        by_attr[rec.attraction].append(rec)
    table = []
    for poi in r.venue.attractions():
        recs = by_attr.get(poi.id, [])
        standby = [x for x in recs if not x.via_return]
        err = wait_error(standby)
        table.append(
            {
                "attraction": poi.id,
                "name": poi.name,
                "riders": len(recs),
                "via_return": len(recs) - len(standby),
                "mean_wait_min": _minutes(statistics.mean(x.wait_s for x in standby))
                if standby
                else None,
                "max_wait_min": _minutes(max(x.wait_s for x in standby)) if standby else None,
                "mae_min": err.mae_min if err else None,
                "bias_min": err.bias_min if err else None,
                "abandoned": r.world.truth.abandoned.get(poi.id, 0),
            }
        )
    standby_all = [x for x in records if not x.via_return]
    return {
        "boardings": len(records),
        "per_guest": round(len(records) / guests, 2),
        "mean_wait_min": _minutes(statistics.mean(x.wait_s for x in standby_all))
        if standby_all
        else None,
        "abandoned": sum(r.world.truth.abandoned.values()),
        "by_attraction": table,
        "activities": dict(r.world.truth.activities),
    }


def posted_waits(r: DayResult) -> dict[str, Any]:
    if "queue" not in r.services:
        return {"status": not_running("queue")}
    standby = [x for x in r.world.truth.rides if not x.via_return]
    err = wait_error(standby)
    seen = sum(1 for x in standby if x.posted_s is not None)
    out: dict[str, Any] = {
        "standby_joins": len(standby),
        "joins_with_posted_wait": seen,
        "boards": r.apps.stats.boards if r.apps else 0,
        "real_park_mae_min": 13.8,
        "real_park_bias_min": 10.4,
    }
    if err is None:
        out["status"] = "the twin posted no wait for any guest who joined a line"
        return out
    out.update(
        mae_min=err.mae_min,
        bias_min=err.bias_min,
        within_5_pct=err.within_5,
        within_10_pct=err.within_10,
    )
    out["forecast_1h"] = forecast_error(r)
    return out


def forecast_error(r: DayResult) -> dict[str, Any]:
    """The forecast made an hour ahead against the waits of those who joined in its slot."""
    if r.observer is None or not r.observer.seen.forecasts:
        return {"status": "no forecasts received"}
    joins: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rec in r.world.truth.rides:
        if not rec.via_return:
            joins[rec.attraction].append((rec.joined_s, rec.wait_s))
    for v in joins.values():
        v.sort()
    errors = []
    for _, start, attraction, wait in r.observer.seen.forecasts:
        rows = joins.get(attraction, [])
        lo = bisect_right(rows, (start, -math.inf))
        hi = bisect_right(rows, (start + FORECAST_SLOT_S, math.inf))
        if hi > lo:
            actual = statistics.mean(w for _, w in rows[lo:hi])
            errors.append((wait - actual) / 60.0)
    if not errors:
        return {"status": "no forecast slot had guests joining"}
    arr = np.array(errors)
    return {
        "slots": len(errors),
        "mae_min": round(float(np.mean(np.abs(arr))), 2),
        "bias_min": round(float(np.mean(arr)), 2),
    }


def occupancy(r: DayResult) -> dict[str, Any]:
    t = r.world.truth
    out: dict[str, Any] = {"samples": len(t.occupancy_times), "zones": len(t.zones)}
    if "location" not in r.services:
        out["twin"] = not_running("location")
        return out
    if r.observer is None or not r.observer.seen.occupancy:
        out["twin"] = "no occupancy received"
        return out
    index = {z: i for i, z in enumerate(t.zones)}
    kinds = {z.id: z.kind.value for z in r.venue.zones}
    errs: dict[str, list[float]] = defaultdict(list)
    totals: list[tuple[int, int]] = []
    top = [z.id for z in r.venue.zones if z.parent is None]
    for when, counts in r.observer.seen.occupancy:
        k = min(range(len(t.occupancy_times)), key=lambda i: abs(t.occupancy_times[i] - when))
        if abs(t.occupancy_times[k] - when) > 120:
            continue
        true = t.occupancy[k]
        for zone, count in counts.items():
            if zone in index:
                errs[kinds.get(zone, "other")].append(abs(count - true[index[zone]]))
        totals.append((sum(counts.get(z, 0) for z in top), sum(true[index[z]] for z in top)))
    out["twin"] = {
        "compared_samples": len(totals),
        "mae_by_zone_kind": {k: round(statistics.mean(v), 1) for k, v in sorted(errs.items())},
        "venue_total_error_pct": round(
            100.0 * statistics.mean(abs(a - b) / b for a, b in totals if b), 1
        )
        if any(b for _, b in totals)
        else None,
    }
    return out


def location(r: DayResult) -> dict[str, Any]:
    if "location" not in r.services:
        return {"status": not_running("location")}
    rows = r.observer.seen.locations if r.observer else []
    if not rows:
        return {"status": "no party locations asked"}
    correct = sum(1 for _, _, twin, true, _, _ in rows if twin == true)
    placed = sum(1 for _, _, twin, _, _, _ in rows if twin)
    # The twin's answer against where the guest was when the read that placed them
    # was taken: placement right or wrong, apart from how old the read is.
    truth = r.world.truth
    at_read = [
        (twin, truth.zone_at_read(party, read_s, READ_SKEW_MS / 1000), t - read_s)
        for t, _, twin, _, party, read_s in rows
        if twin and read_s is not None
    ]
    return {
        "asked": len(rows),
        "placed_pct": _pct(placed, len(rows)),
        "correct_zone_pct": _pct(correct, len(rows)),
        "correct_when_placed_pct": _pct(correct, placed),
        "correct_at_read_pct": _pct(
            sum(1 for twin, was, _ in at_read if twin == was), len(at_read)
        ),
        "read_age_s_p50": round(float(np.percentile([a for *_, a in at_read], 50)), 1)
        if at_read
        else None,
        "pings": ping_figures(r),
    }


def ping_figures(r: DayResult) -> dict[str, Any]:
    if r.readers is None:
        return {}
    s = r.readers.stats
    return {
        "rows_sent": s.rows_sent,
        "rows_accepted": s.rows_accepted,
        "batches": s.batches_sent,
        "batches_acked": s.batches_acked,
        "duplicates": s.duplicates,
        "resent": s.resent,
        "rejected": dict(s.rejected),
        "refused": dict(s.refused),
        "stream_errors": dict(s.stream_errors),
        "ack_p50_ms": round(float(np.percentile(s.ack_ms, 50)), 1) if s.ack_ms else None,
        "ack_p99_ms": round(float(np.percentile(s.ack_ms, 99)), 1) if s.ack_ms else None,
    }


def taps(r: DayResult) -> dict[str, Any]:
    made = dict(r.world.truth.taps)
    out: dict[str, Any] = {"made": made, "total_made": sum(made.values())}
    if "access" not in r.services or r.devices is None:
        out["decided"] = not_running("access")
        return out
    outcomes = r.devices.outcomes
    decided = {k[4:]: v for k, v in outcomes.items() if k.startswith("tap.")}
    allowed = sum(v for k, v in decided.items() if k.endswith(".allow"))
    denied = {k: v for k, v in decided.items() if ".deny." in k}
    failed = sum(v for k, v in decided.items() if k.endswith(".failed"))
    out.update(
        allowed=allowed,
        denied=denied,
        failed=failed,
        all_decided=allowed + sum(denied.values()) == out["total_made"] and failed == 0,
        latency=latency(r, "access.Tap"),
    )
    return out


def payments(r: DayResult) -> dict[str, Any]:
    t = r.world.truth
    spent: Counter[str] = Counter()
    for _, _, _, amount, category in t.purchases:
        spent[category] += amount
    guests = max(1, t.arrived_guests)
    out: dict[str, Any] = {
        "purchases": len(t.purchases),
        "spend_per_guest": {
            k: round(v / guests / 10**r.venue.currency_exponent, 2) for k, v in spent.items()
        },
        "currency": r.venue.currency,
    }
    if "access" not in r.services or r.devices is None:
        out["charges"] = not_running("access")
        return out
    o = r.devices.outcomes
    out["approved"] = o.get("charge.approved", 0)
    out["declined"] = {k[16:]: v for k, v in o.items() if k.startswith("charge.declined.")}
    out["failed"] = o.get("charge.failed", 0)
    out["all_decided"] = out["approved"] + sum(out["declined"].values()) == len(t.purchases)
    out["latency"] = latency(r, "access.Charge")
    return out


def latency(r: DayResult, method: str) -> dict[str, Any]:
    m = r.calls.methods.get(method)
    if m is None or not m.latencies_ms:
        return {}
    return {
        "calls": m.ok,
        "p50_ms": round(m.percentile(50) or 0.0, 2),
        "p99_ms": round(m.percentile(99) or 0.0, 2),
        "retries": m.retries,
    }


def photos(r: DayResult) -> dict[str, Any]:
    truth = r.world.truth.captures
    out: dict[str, Any] = {
        "ride_captures": sum(1 for c in truth.values() if c.attraction),
        "photographer_captures": sum(1 for c in truth.values() if not c.attraction),
    }
    if "photo" not in r.services or r.observer is None or r.devices is None:
        out["linking"] = not_running("photo")
        return out
    o = r.devices.outcomes
    out["acks"] = {k[8:]: v for k, v in o.items() if k.startswith("capture.")}
    consent = {m.index: m.consent.photos for a in r.world.agents for m in a.party.members}
    linked: dict[str, set[int]] = defaultdict(set)
    for capture_id, guests in r.observer.seen.photos.values():
        linked[capture_id] |= set(guests)
    correct = wrong = 0
    shown = found = 0
    for capture_id, cap in truth.items():
        got = linked.get(capture_id, set())
        true = set(cap.guests)
        correct += len(got & true)
        wrong += len(got - true)
        if cap.attraction:
            consenting = {g for g in true if consent.get(g)}
            shown += len(consenting)
            found += len(got & consenting)
    out["links_correct"] = correct
    out["links_wrong"] = wrong
    out["precision_pct"] = _pct(correct, correct + wrong)
    out["recall_pct"] = _pct(found, shown)
    out["kiosk"] = {k[6:]: v for k, v in o.items() if k.startswith("kiosk.")}
    out["photographer"] = {k[13:]: v for k, v in o.items() if k.startswith("photographer.")}
    if r.apps:
        out["suggestions"] = dict(r.apps.stats.suggestions)
    return out


def nudges(r: DayResult) -> dict[str, Any]:
    if "itinerary" not in r.services or r.apps is None:
        return {"status": not_running("itinerary")}
    seen = r.apps.stats.nudges
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    followed_by_party: dict[int, list[tuple[str, float]]] = {
        a.party.index: a.followed for a in r.world.agents
    }
    followed = 0
    for n in seen:
        by_kind[n.kind]["sent"] += 1
        by_kind[n.kind][n.ack.removeprefix("NUDGE_ACK_KIND_").lower()] += 1
        done = followed_by_party.get(n.party, [])
        if n.destination and any(
            dest == n.destination and abs(since - n.at_s) < 1800 for dest, since in done
        ):
            followed += 1
            by_kind[n.kind]["followed"] += 1
    out: dict[str, Any] = {
        "received": len(seen),
        "accepted": sum(1 for n in seen if n.ack.endswith("ACCEPTED")),
        "dismissed": sum(1 for n in seen if n.ack.endswith("DISMISSED")),
        # Acknowledged too late: the itinerary said the nudge no longer applied.
        "no_longer_applied": r.calls.outcomes.get(
            "itinerary.AcknowledgeNudge.FAILED_PRECONDITION", 0
        ),
        "followed": followed,
        "by_kind": {k: dict(v) for k, v in by_kind.items()},
        "plans": r.apps.stats.plans,
        "stream_errors": dict(r.apps.stats.stream_errors),
        "followers_vs_others": followers_vs_others(r),
    }
    stats = r.observer.seen.nudge_stats if r.observer else None
    if stats is not None:
        out["median_per_guest_hour"] = stats.median_per_guest_hour
        out["max_per_guest_hour"] = stats.max_per_guest_hour
    return out


def followers_vs_others(r: DayResult) -> dict[str, Any]:
    """Guests who follow the app against those who ignore it, same archetypes."""
    groups: dict[str, list[RideRecord]] = {"follow": [], "ignore": []}
    for rec in r.world.truth.rides:
        if rec.uses_app and not rec.via_return:
            groups["follow" if rec.follows_app else "ignore"].append(rec)
    out: dict[str, Any] = {}
    for name, recs in groups.items():
        if recs:
            out[f"{name}_mean_wait_min"] = _minutes(statistics.mean(x.wait_s for x in recs))
    musts: dict[bool, list[float]] = {True: [], False: []}
    for a in r.world.agents:
        p = a.party
        if not p.uses_app or not p.wishes or a.state == "expected":
            continue
        wanted = [w.attraction for w in p.wishes if w.must]
        done = r.world.truth.wishes_done.get(p.index, set())
        musts[p.follows_app].append(sum(1 for w in wanted if w in done) / len(wanted))
    for flag, name in ((True, "follow"), (False, "ignore")):
        if musts[flag]:
            out[f"{name}_must_dos_done_pct"] = round(100 * statistics.mean(musts[flag]), 1)
    if out.get("follow_mean_wait_min") and out.get("ignore_mean_wait_min"):
        out["wait_reduction_pct"] = round(
            100 * (1 - out["follow_mean_wait_min"] / out["ignore_mean_wait_min"]), 1
        )
    return out


def calls(r: DayResult) -> dict[str, Any]:
    per_method = {
        name: {
            "ok": m.ok,
            "failed": dict(m.failures),
            "retries": m.retries,
            "p50_ms": round(m.percentile(50) or 0.0, 2),
            "p99_ms": round(m.percentile(99) or 0.0, 2),
        }
        for name, m in sorted(r.calls.methods.items())
    }
    seconds = r.calls.events
    rates = [seconds[s] for s in range(max(seconds) + 1)] if seconds else []
    day_s = r.phases.get("day", 0.0)
    return {
        "total": r.calls.total_calls,
        "failed": r.calls.total_failures,
        "failure_log": r.calls.failure_log[:20],
        # Every failed call, by RPC and status code (the log above keeps only the first).
        "failures_by_status": {
            f"{name} {code}": n
            for name, m in sorted(r.calls.methods.items())
            for code, n in sorted(m.failures.items())
        },
        "by_method": per_method,
        "events": sum(rates),
        "events_per_s_mean": round(sum(rates) / day_s, 1) if day_s else None,
        "events_per_s_peak": max(rates) if rates else 0,
        "world_errors": r.errors,
    }


def world_cost(r: DayResult) -> dict[str, Any]:
    hours = {r.frame.label(h): round(c, 2) for h, c in sorted(r.cpu_by_hour.items())}
    played = [c for h, c in r.cpu_by_hour.items() if h >= r.world.open_s - 3600]
    lags = [lag for _, lag in r.lag_samples]
    return {
        "cpu_s_by_venue_hour": hours,
        "cpu_s_per_venue_hour_mean": round(statistics.mean(played), 2) if played else None,
        "max_lag_venue_s": round(max(lags), 1) if lags else 0.0,
        "events_handled": r.world.engine.handled,
        "phases_wall_s": {k: round(v, 1) for k, v in r.phases.items()},
        # Each kind of caller's cap, and the most of its calls ever held back by it.
        "in_flight_cap": {k: c.limit for k, c in r.callers.items()},
        "peak_held_by_cap": {k: c.peak_waiting for k, c in r.callers.items()},
    }


def ops(r: DayResult) -> dict[str, Any]:
    spans = r.world.truth.status
    downs = sum(1 for v in spans.values() for s in v if s.status == "down")
    down_min = sum(
        ((s.end_s or r.world.engine.now) - s.start_s) / 60
        for v in spans.values()
        for s in v
        if s.status == "down"
    )
    out: dict[str, Any] = {"breakdowns": downs, "downtime_min": round(down_min, 1)}
    if r.devices is not None:
        out["status_posts"] = {
            k[4:]: v for k, v in r.devices.outcomes.items() if k.startswith("ops.")
        }
    return out


def card(r: DayResult) -> dict[str, Any]:
    """Every figure of the report, as plain data (also written as report.json)."""
    return {
        "venue": r.venue.id,
        "day": r.frame.day.isoformat(),
        "seed": r.config.seed,
        "guests": r.config.guests,
        "speed": r.config.speed,
        "hours": r.config.hours,
        "interrupted_at": r.frame.label(r.interrupted_at) if r.interrupted_at else None,
        "services": sorted(r.services),
        "attendance": attendance(r),
        "rides": rides(r),
        "posted_waits": posted_waits(r),
        "occupancy": occupancy(r),
        "location": location(r),
        "taps": taps(r),
        "payments": payments(r),
        "photos": photos(r),
        "nudges": nudges(r),
        "ops": ops(r),
        "calls": calls(r),
        "world": world_cost(r),
        "desk": {
            "parties_registered": r.desk.registered if r.desk else 0,
            "parties_failed": r.desk.failed if r.desk else 0,
            "devices_registered": r.credentials.registered if r.credentials else 0,
        },
    }
