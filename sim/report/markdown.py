"""report.md and the terminal summary, written from the report card's figures."""

from __future__ import annotations

from typing import Any

from sim.day import DayResult

Figures = dict[str, Any]
Images = dict[str, str | None]


def _v(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}{unit}"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def _status(part: Figures, key: str = "status") -> str | None:
    value = part.get(key)
    return value if isinstance(value, str) else None


def _img(images: Images, key: str, alt: str) -> str:
    name = images.get(key)
    return f"\n![{alt}]({name})\n" if name else ""


def _lat(lat: Figures) -> str:
    return f"p50 {_v(lat.get('p50_ms'))} ms, p99 {_v(lat.get('p99_ms'))} ms"


def _table(rows: list[Figures], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(_v(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def _pairs(d: Figures, key: str = "what", value: str = "count") -> str:
    if not d:
        return "_none_"
    return _table([{"k": k, "v": v} for k, v in d.items()], [("k", key), ("v", value)])


# --- the headline -----------------------------------------------------------------


def _waits_line(w: Figures) -> list[tuple[str, str]]:
    if "mae_min" not in w:
        return [("posted wait error", _status(w) or "n/a")]
    lines = [
        (
            "posted wait error",
            f"MAE {w['mae_min']} min, bias {w['bias_min']:+} min, "
            f"{w['within_5_pct']}% within 5 min, {w['within_10_pct']}% within 10 min "
            f"over {w['joins_with_posted_wait']:,} joins (a real park: MAE 13.8, bias +10.4)",
        )
    ]
    fc = w.get("forecast_1h", {})
    if "mae_min" in fc:
        lines.append(("forecast 1 h ahead", f"MAE {fc['mae_min']} min over {fc['slots']} slots"))
    return lines


def _taps_line(t: Figures) -> tuple[str, str]:
    if isinstance(t.get("decided"), str):
        return ("taps", f"{t['total_made']:,} made; {t['decided']}")
    denied = sum(t["denied"].values())
    return (
        "taps",
        f"{t['total_made']:,} made, {t['allowed']:,} allowed, {denied:,} denied, "
        f"{t['failed']:,} failed; {_lat(t.get('latency', {}))}",
    )


def _payments_line(p: Figures) -> tuple[str, str]:
    if isinstance(p.get("charges"), str):
        return ("payments", p["charges"])
    return (
        "payments",
        f"{p['approved']:,} approved, {sum(p['declined'].values()):,} declined, "
        f"{p['failed']:,} failed; {_lat(p.get('latency', {}))}",
    )


def _photos_line(ph: Figures) -> tuple[str, str]:
    if isinstance(ph.get("linking"), str):
        return ("photos", f"{ph['ride_captures']:,} ride captures; {ph['linking']}")
    return (
        "photos",
        f"{ph['links_correct']:,} links correct, {ph['links_wrong']:,} wrong "
        f"(precision {_v(ph['precision_pct'])}%, recall {_v(ph['recall_pct'])}%)",
    )


def _nudges_line(n: Figures) -> tuple[str, str]:
    if "received" not in n:
        return ("nudges", _status(n) or "n/a")
    return (
        "nudges",
        f"{n['received']:,} received, {n['accepted']:,} accepted, "
        f"{n['dismissed']:,} dismissed, {n['followed']:,} followed"
        + (
            f" ({n['no_longer_applied']:,} no longer applied when acknowledged)"
            if n.get("no_longer_applied")
            else ""
        ),
    )


def headline(f: Figures) -> list[tuple[str, str]]:
    """The figures that matter most, as (label, value) lines."""
    a = f["attendance"]
    loc = f["location"]
    c = f["calls"]
    world = f["world"]
    lines = [
        (
            "guests",
            f"{a['entered']:,} entered, {a['left']:,} left, {a['still_inside']:,} still "
            f"inside (peak {a['peak_inside']:,} at {a['peak_at']})"
            + (
                f"; {a['late_at_desk']:,} parties late from the desk, "
                f"{a['never_registered']:,} never registered"
                if a["late_at_desk"] or a["never_registered"]
                else ""
            ),
        ),
        (
            "rides",
            f"{f['rides']['boardings']:,} boardings, {f['rides']['per_guest']} per guest, "
            f"mean actual standby wait {_v(f['rides']['mean_wait_min'])} min",
        ),
        *_waits_line(f["posted_waits"]),
        _taps_line(f["taps"]),
        _payments_line(f["payments"]),
        (
            "location",
            f"'where is my family' right zone {loc['correct_zone_pct']}% of {loc['asked']:,}"
            if "correct_zone_pct" in loc
            else _status(loc) or "n/a",
        ),
        _photos_line(f["photos"]),
        _nudges_line(f["nudges"]),
        (
            "events",
            f"{c['events']:,} device and app events, {_v(c['events_per_s_mean'])}/s mean, "
            f"{c['events_per_s_peak']:,}/s peak; {c['total']:,} calls, {c['failed']:,} failed",
        ),
        *(
            [("failed calls", ", ".join(f"{k} {n}" for k, n in by_status.items()))]
            if (by_status := c.get("failures_by_status"))
            else []
        ),
        (
            "world",
            f"{_v(world['cpu_s_per_venue_hour_mean'])} CPU s per venue hour, max lag "
            f"{world['max_lag_venue_s']} venue s; wall {f['wall_s']} s",
        ),
    ]
    return lines


def summary(f: Figures) -> str:
    lines = [f"Day report: {f['venue']} {f['day']}, {f['guests']:,} guests, seed {f['seed']}"]
    lines += [f"  {label:<18} {value}" for label, value in headline(f)]
    return "\n".join(lines)


# --- the sections -----------------------------------------------------------------------


def _intro(r: DayResult, f: Figures) -> list[str]:
    span = f", {f['hours']} hours from opening" if f["hours"] else ", the whole day"
    if f.get("interrupted_at"):
        span += f" (interrupted at {f['interrupted_at']})"
    stopped = f["services_stopped_early"]
    return [
        f"# Day report: {r.venue.name}, {f['day']}",
        "",
        f"{f['guests']:,} guests, seed {f['seed']}, venue clock at {f['speed']:g}x{span}. "
        f"Services running: {', '.join(f['services'])}."
        + (f" **Stopped early: {', '.join(stopped)}.**" if stopped else ""),
        "",
        "The world is the ground truth; the services are the twin. This report compares "
        "what the twin said with what really happened in the world.",
        "",
        "## Headline",
        "",
        *[f"- **{label}**: {value}" for label, value in headline(f)],
    ]


def _attendance(f: Figures, images: Images) -> list[str]:
    a = f["attendance"]
    conserved = (
        "every guest who entered left or is still inside."
        if a["conserved"]
        else "**guests not conserved!**"
    )
    return [
        "## Attendance",
        "",
        f"{a['arrived']:,} guests arrived, {a['entered']:,} entered, {a['left']:,} left and "
        f"{a['still_inside']:,} are still inside: {conserved} Peak {a['peak_inside']:,} inside "
        f"at {a['peak_at']}. Parties the ticket desk kept waiting past their arrival: "
        f"{a['late_at_desk']:,} (on average {a['desk_delay_min_mean']} min); "
        f"never registered: {a['never_registered']:,}.",
        _img(images, "attendance", "attendance"),
    ]


def _occupancy(f: Figures, images: Images) -> list[str]:
    out = ["## Zone occupancy", ""]
    twin = f["occupancy"].get("twin")
    if isinstance(twin, str):
        out.append(f"Twin: {twin}.")
    elif isinstance(twin, dict):
        out += [
            f"Compared {twin['compared_samples']} samples. The venue's total was off by "
            f"{_v(twin['venue_total_error_pct'])}% on average. Mean absolute error by zone kind:",
            "",
            _pairs(twin["mae_by_zone_kind"], "zone kind", "MAE (guests)"),
        ]
    out.append(_img(images, "occupancy", "occupancy heat map"))
    loc = f["location"]
    out += ["## Where guests are (location)", ""]
    if _status(loc):
        out.append(str(loc["status"]))
        return out
    out.append(
        f"'Where is my family' was asked {loc['asked']:,} times: placed {loc['placed_pct']}%, "
        f"right zone {loc['correct_zone_pct']}% ({loc['correct_when_placed_pct']}% of those "
        f"placed). Against where the guest was at the read that placed them (a median "
        f"{_v(loc['read_age_s_p50'])} venue seconds before the question): right zone "
        f"{_v(loc['correct_at_read_pct'])}%."
    )
    pings = {k: v for k, v in loc.get("pings", {}).items() if not isinstance(v, dict)}
    out += ["", _pairs(pings, "reads", "value")]
    return out


def _waits(f: Figures, images: Images) -> list[str]:
    w = f["posted_waits"]
    out = ["", "## Posted waits against actual waits", ""]
    if "mae_min" in w:
        out.append(
            f"Over {w['joins_with_posted_wait']:,} standby joins that saw a posted wait (of "
            f"{w['standby_joins']:,}): MAE **{w['mae_min']} min**, bias "
            f"**{w['bias_min']:+} min**, {w['within_5_pct']}% within 5 minutes, "
            f"{w['within_10_pct']}% within 10. A real park's posted waits: MAE 13.8 min, "
            "bias +10.4 min."
        )
        fc = w.get("forecast_1h", {})
        out.append("")
        out.append(
            f"Forecast one hour ahead: MAE {fc['mae_min']} min, bias {fc['bias_min']:+} min "
            f"over {fc['slots']} slots."
            if "mae_min" in fc
            else f"Forecast: {fc.get('status', 'n/a')}."
        )
    else:
        out.append(str(w.get("status")))
    out += [
        _img(images, "waits", "posted against actual waits"),
        _img(images, "wait_error", "wait error"),
        "### By attraction",
        "",
        _table(
            f["rides"]["by_attraction"],
            [
                ("name", "attraction"),
                ("riders", "riders"),
                ("via_return", "return/VQ"),
                ("mean_wait_min", "mean wait (min)"),
                ("max_wait_min", "max wait"),
                ("mae_min", "MAE"),
                ("bias_min", "bias"),
                ("abandoned", "gave up"),
            ],
        ),
    ]
    return out


def _taps(f: Figures) -> list[str]:
    t = f["taps"]
    out = ["", "## Taps", "", "Made by the world:", "", _pairs(t["made"], "access point"), ""]
    if isinstance(t.get("decided"), str):
        out.append(f"Decisions: {t['decided']}.")
        return out
    verdict = (
        "every tap in the world was decided by the suite."
        if t["all_decided"]
        else "**not every tap was decided**."
    )
    out.append(
        f"Decided by the suite: {t['allowed']:,} allowed, {sum(t['denied'].values()):,} "
        f"denied, {t['failed']:,} failed: {verdict}"
    )
    if t["denied"]:
        out += ["", _pairs(t["denied"], "denied")]
    out.append(f"\nTap latency at the device: {_lat(t.get('latency', {}))}.")
    return out


def _payments(f: Figures, images: Images) -> list[str]:
    p = f["payments"]
    spend = ", ".join(f"{k} {v}" for k, v in p["spend_per_guest"].items())
    out = [
        "",
        "## Payments",
        "",
        f"{p['purchases']:,} purchases; spend per guest ({p['currency']}): {spend}.",
    ]
    if isinstance(p.get("charges"), str):
        out.append(f"Charges: {p['charges']}.")
    else:
        declined = ", ".join(f"{k} {v}" for k, v in p["declined"].items()) or "none"
        out.append(
            f"Charges: {p['approved']:,} approved, {sum(p['declined'].values()):,} declined "
            f"({declined}), {p['failed']:,} failed. Payment latency at the till: "
            f"{_lat(p.get('latency', {}))}."
        )
    out.append(_img(images, "latency", "latency"))
    return out


def _photos(f: Figures) -> list[str]:
    ph = f["photos"]
    out = [
        "## Photos",
        "",
        f"{ph['ride_captures']:,} ride captures and {ph['photographer_captures']:,} "
        "photographer captures (camera clocks off by up to 3 s).",
    ]
    if isinstance(ph.get("linking"), str):
        out.append(f"Linking: {ph['linking']}.")
        return out
    out.append(
        f"Links: {ph['links_correct']:,} correct, {ph['links_wrong']:,} wrong: precision "
        f"{_v(ph['precision_pct'])}%, recall (consenting guests in ride photos linked to them) "
        f"{_v(ph['recall_pct'])}%."
    )
    kiosk = {f"kiosk {k}": v for k, v in ph.get("kiosk", {}).items()}
    out += ["", _pairs({**ph.get("acks", {}), **kiosk})]
    return out


def _nudges(f: Figures, images: Images) -> list[str]:
    n = f["nudges"]
    out = ["", "## Nudges", ""]
    if "received" not in n:
        out.append(str(n.get("status")))
        return out
    out.append(
        f"{n['received']:,} nudges reached the apps: {n['accepted']:,} accepted, "
        f"{n['dismissed']:,} dismissed, {n['followed']:,} followed (the party went where the "
        f"nudge said within 30 minutes). Plans: {n['plans']:,}."
    )
    fv = n.get("followers_vs_others", {})
    if fv:
        out += ["", "Guests who follow the app against those who ignore it:", "", _pairs(fv)]
    if "median_per_guest_hour" in n:
        out.append(
            f"\nNudges per guest and hour: median {n['median_per_guest_hour']}, "
            f"most {n['max_per_guest_hour']}."
        )
    out.append(_img(images, "nudges", "nudges"))
    return out


def _calls(f: Figures, images: Images) -> list[str]:
    o = f["ops"]
    posts = ", ".join(f"{k} {v}" for k, v in o.get("status_posts", {}).items())
    c = f["calls"]
    rows = [
        {
            "method": k,
            **{kk: vv for kk, vv in v.items() if kk != "failed"},
            "failed": sum(v["failed"].values()),
        }
        for k, v in c["by_method"].items()
    ]
    out = [
        "## Rides down",
        "",
        f"{o['breakdowns']} breakdowns, {o['downtime_min']} ride-minutes down; the ops team "
        f"posted: {posts or 'nothing (queue not running)'}.",
        "",
        "## Calls and events",
        "",
        f"{c['events']:,} device and app events ({_v(c['events_per_s_mean'])} per second on "
        f"average, {c['events_per_s_peak']:,} at peak); {c['total']:,} calls, "
        f"**{c['failed']:,} failed**.",
        "",
        _table(
            rows,
            [
                ("method", "call"),
                ("ok", "ok"),
                ("failed", "failed"),
                ("retries", "retries"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
            ],
        ),
    ]
    if c.get("failures_by_status"):
        out += [
            "",
            "Failed calls by RPC and status code:",
            "",
            *[f"- `{k}`: {n:,}" for k, n in c["failures_by_status"].items()],
        ]
    if c["failure_log"]:
        out += ["", "First failures:", "", *[f"- `{line}`" for line in c["failure_log"]]]
    if c["world_errors"]:
        out += ["", "Errors inside the world:", "", *[f"- `{e}`" for e in c["world_errors"]]]
    out.append(_img(images, "events", "events per second and world CPU"))
    return out


def _cost(f: Figures) -> list[str]:
    wc = f["world"]
    return [
        "## The world's own cost",
        "",
        f"{_v(wc['cpu_s_per_venue_hour_mean'])} CPU seconds per venue hour on average; "
        f"{wc['events_handled']:,} world events; at most {wc['max_lag_venue_s']} venue "
        "seconds behind the clock.",
        "",
        _pairs(wc["cpu_s_by_venue_hour"], "venue hour", "CPU s"),
        "",
        "Wall time by phase (s):",
        "",
        _pairs(wc["phases_wall_s"], "phase", "seconds"),
        "",
    ]


def _traces(f: Figures) -> list[str]:
    t = f.get("traces") or {}
    out = ["## Slowest traces", ""]
    if t.get("status") != "ok":
        return [*out, f"Not summarized: {t.get('status', 'no telemetry')}.", ""]
    out += [
        f"The services kept {t['server_spans_kept']:,} server spans (errors, the slowest per "
        f"RPC per minute, and a sample) as OTLP/JSON in `{t['folder']}`; find a trace there by "
        "its id.",
        "",
        _table(
            t["slowest"],
            [
                ("ms", "ms"),
                ("service", "service"),
                ("rpc", "call"),
                ("status", "status"),
                ("where", "venue attributes"),
                ("trace_id", "trace id"),
            ],
        ),
        "",
    ]
    if t["errors_by_rpc"]:
        out += ["Spans that ended in error:", "", _pairs(t["errors_by_rpc"], "call", "spans"), ""]
    return out


def markdown(r: DayResult, f: Figures, images: Images) -> str:
    parts = [
        _intro(r, f),
        _attendance(f, images),
        _occupancy(f, images),
        _waits(f, images),
        _taps(f),
        _payments(f, images),
        _photos(f),
        _nudges(f, images),
        _calls(f, images),
        _traces(f),
        _cost(f),
    ]
    return "\n".join(line for part in parts for line in part)
