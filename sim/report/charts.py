"""The report's charts (matplotlib, PNG). Each function draws one file and returns
its name, or None when there is nothing to draw."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from sim.day import DayResult

DPI = 110


def _hours(r: DayResult, seconds: list[float] | np.ndarray) -> np.ndarray:
    return np.asarray(seconds, dtype=float) / 3600.0


def _hour_axis(ax: Any) -> None:
    ax.xaxis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda x, _: f"{int(x):02d}:{round((x % 1) * 60):02d}")
    )


def attendance(r: DayResult, out: Path) -> str | None:
    t = r.world.truth
    if not t.inside_times:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(_hours(r, t.inside_times), t.inside, color="tab:blue", label="guests inside (truth)")
    if r.observer is not None and r.observer.seen.occupancy:
        roots = [z.id for z in r.venue.zones if z.parent is None]
        when = [w for w, _ in r.observer.seen.occupancy]
        twin = [sum(c.get(z, 0) for z in roots) for _, c in r.observer.seen.occupancy]
        top.plot(_hours(r, when), twin, color="tab:orange", label="counted by the twin (all zones)")
    top.set_ylabel("guests")
    top.set_title("Attendance over the day")
    top.legend(loc="upper left")
    arrivals = np.array([s for s, _ in t.entries])
    weights_in = np.array([n for _, n in t.entries])
    exits = np.array([s for s, _ in t.exits])
    weights_out = np.array([n for _, n in t.exits])
    lo = math.floor(min(t.inside_times) / 3600)
    hi = math.ceil(max(t.inside_times) / 3600) + 1
    bins = np.arange(lo, hi + 1)
    if len(arrivals):
        bottom.hist(_hours(r, arrivals), bins=bins, weights=weights_in, alpha=0.6, label="arrivals")
    if len(exits):
        bottom.hist(_hours(r, exits), bins=bins, weights=weights_out, alpha=0.6, label="departures")
    bottom.set_ylabel("guests per hour")
    if len(arrivals) or len(exits):
        bottom.legend(loc="upper right")
    _hour_axis(bottom)
    fig.tight_layout()
    fig.savefig(out / "attendance.png", dpi=DPI)
    plt.close(fig)
    return "attendance.png"


def _heat(
    ax: Any, fig: Any, m: np.ndarray, names: list[str], hours: np.ndarray, title: str, vmax: float
) -> None:
    image = ax.imshow(
        m,
        aspect="auto",
        interpolation="nearest",
        cmap="magma",
        vmin=0,
        vmax=max(vmax, 1.0),
        extent=(hours[0], hours[-1], len(names) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([n[:28] for n in names], fontsize=6)
    ax.set_title(title, fontsize=9)
    _hour_axis(ax)
    fig.colorbar(image, ax=ax, label="guests")


def _twin_matrix(r: DayResult, zones: list[str], times: list[float]) -> np.ndarray | None:
    if r.observer is None or not r.observer.seen.occupancy:
        return None
    seen = r.observer.seen.occupancy
    twin = np.full((len(zones), len(times)), np.nan)
    for k, when in enumerate(times):
        j = min(range(len(seen)), key=lambda i: abs(seen[i][0] - when))
        if abs(seen[j][0] - when) <= 150:
            for zi, z in enumerate(zones):
                twin[zi, k] = seen[j][1].get(z, 0)
    return twin


def occupancy(r: DayResult, out: Path) -> str | None:
    """Heat maps of the venue's areas and of its lines (each on its own scale): the
    world's truth, and the twin's counts beside it when location is running."""
    t = r.world.truth
    if not t.occupancy:
        return None
    index = {z: i for i, z in enumerate(t.zones)}
    groups = [
        ("areas", [z for z in r.venue.zones if z.parent is None]),
        ("lines", [z for z in r.venue.zones if z.kind.value == "queue"]),
    ]
    groups = [(name, zones) for name, zones in groups if zones]
    hours = _hours(r, t.occupancy_times)
    columns = 2 if r.observer is not None and r.observer.seen.occupancy else 1
    heights = [max(2.0, 0.16 * len(zones) + 1.0) for _, zones in groups]
    fig, axes = plt.subplots(
        len(groups),
        columns,
        figsize=(7.5 * columns, sum(heights) + 1),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for row, (name, zones) in enumerate(groups):
        ids = [z.id for z in zones]
        names = [z.name for z in zones]
        truth = np.array([[sample[index[z]] for sample in t.occupancy] for z in ids], dtype=float)
        vmax = float(np.nanmax(truth)) if truth.size else 1.0
        _heat(axes[row][0], fig, truth, names, hours, f"{name}: the world's truth", vmax)
        if columns == 2:
            twin = _twin_matrix(r, ids, t.occupancy_times)
            if twin is not None:
                _heat(axes[row][1], fig, twin, names, hours, f"{name}: the twin's count", vmax)
    fig.tight_layout()
    fig.savefig(out / "occupancy.png", dpi=DPI)
    plt.close(fig)
    return "occupancy.png"


def waits(r: DayResult, out: Path) -> str | None:
    """Small multiples, one per attraction: each guest's actual wait at the time they
    joined, the tip board's posted wait (broken where the ride was not open on the
    board), and the truth's breakdowns shaded."""
    records = [x for x in r.world.truth.rides if not x.via_return]
    if not records:
        return None
    by_attr: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for x in records:
        by_attr[x.attraction].append((x.joined_s, x.wait_s / 60))
    boards = r.apps.history if r.apps is not None else []
    board_t = _hours(r, [b.at_s for b in boards])
    attractions = [p for p in r.venue.attractions() if p.id in by_attr]
    cols = 4
    rows = math.ceil(len(attractions) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(16, 2.3 * rows), sharex=True, squeeze=False)
    for ax, poi in zip(axes.flat, attractions, strict=False):
        for span in r.world.truth.status.get(poi.id, []):
            if span.status == "down":
                end = span.end_s if span.end_s is not None else r.world.engine.now
                ax.axvspan(span.start_s / 3600, end / 3600, color="0.85", lw=0)
        pts = np.array(by_attr[poi.id])
        ax.scatter(
            _hours(r, pts[:, 0]), pts[:, 1], s=2, alpha=0.3, color="tab:blue", label="actual"
        )
        if boards:
            posted = []
            for b in boards:
                entry = b.waits.get(poi.id)
                posted.append(
                    entry[1] / 60 if entry and entry[0] and entry[1] is not None else np.nan
                )
            ax.plot(board_t, posted, color="tab:red", lw=0.9, label="posted")
        ax.set_title(poi.name[:32], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        _hour_axis(ax)
    for ax in list(axes.flat)[len(attractions) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(
        "Posted wait (the twin's tip board) against actual waits, in minutes by joining time "
        "(grey: the ride was really down)"
    )
    fig.tight_layout()
    fig.savefig(out / "waits.png", dpi=DPI)
    plt.close(fig)
    return "waits.png"


def wait_error(r: DayResult, out: Path) -> str | None:
    pairs = [
        (x.attraction, (x.posted_s - x.wait_s) / 60)
        for x in r.world.truth.rides
        if not x.via_return and x.posted_s is not None
    ]
    if not pairs:
        return None
    errors = np.array([e for _, e in pairs])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    left.hist(np.clip(errors, -30, 30), bins=60, color="tab:purple")
    left.axvline(0, color="black", lw=0.8)
    left.set_xlabel("posted minus actual wait (minutes, clipped at ±30)")
    left.set_ylabel("guests")
    left.set_title(
        f"Wait error: MAE {np.mean(np.abs(errors)):.1f} min, bias {np.mean(errors):+.1f} min"
    )
    by: dict[str, list[float]] = defaultdict(list)
    for a, e in pairs:
        by[a].append(abs(e))
    names = sorted(by, key=lambda a: -np.mean(by[a]))
    right.barh(range(len(names)), [np.mean(by[a]) for a in names], color="tab:purple")
    right.set_yticks(range(len(names)))
    right.set_yticklabels([r.venue.poi(a).name[:26] for a in names], fontsize=6)
    right.invert_yaxis()
    right.axvline(13.8, color="tab:red", ls="--", lw=1, label="a real park's posted waits")
    right.set_xlabel("mean absolute error (minutes)")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "wait_error.png", dpi=DPI)
    plt.close(fig)
    return "wait_error.png"


def latency(r: DayResult, out: Path) -> str | None:
    methods = [
        (name, r.calls.methods[name])
        for name in ("access.Tap", "access.Charge", "photo.IngestCaptures", "queue.GetWaitTimes")
        if name in r.calls.methods and r.calls.methods[name].latencies_ms
    ]
    if not methods:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, m in methods:
        values = np.sort(np.frombuffer(m.latencies_ms, dtype=float))
        ax.plot(
            values, np.linspace(0, 1, len(values)), label=f"{name} (p99 {m.percentile(99):.1f} ms)"
        )
    ax.set_xscale("log")
    ax.set_xlabel("latency seen by the device or app (ms)")
    ax.set_ylabel("share of calls")
    ax.set_title("Call latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=DPI)
    plt.close(fig)
    return "latency.png"


def events(r: DayResult, out: Path) -> str | None:
    seconds = r.calls.events
    if not seconds:
        return None
    xs = np.arange(max(seconds) + 1)
    ys = np.array([seconds[int(s)] for s in xs])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5))
    top.plot(xs, ys, lw=0.8)
    top.set_xlabel("wall seconds since the world started")
    top.set_ylabel("events per second")
    top.set_title("Device and app events sent to the suite (taps, reads, charges, captures, calls)")
    hours = sorted(r.cpu_by_hour)
    bottom.bar(
        [h / 3600 for h in hours], [r.cpu_by_hour[h] for h in hours], width=0.8, color="tab:green"
    )
    bottom.set_ylabel("world CPU seconds")
    bottom.set_title("The world's own CPU per venue hour")
    _hour_axis(bottom)
    fig.tight_layout()
    fig.savefig(out / "events.png", dpi=DPI)
    plt.close(fig)
    return "events.png"


def nudges(r: DayResult, out: Path, by_kind: dict[str, dict[str, int]]) -> str | None:
    if not by_kind:
        return None
    kinds = sorted(by_kind)
    fields = ("sent", "accepted", "dismissed", "followed")
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.2
    for i, f in enumerate(fields):
        ax.bar(
            np.arange(len(kinds)) + i * width,
            [by_kind[k].get(f, 0) for k in kinds],
            width,
            label=f,
        )
    ax.set_xticks(np.arange(len(kinds)) + 1.5 * width)
    ax.set_xticklabels([k.removeprefix("NUDGE_KIND_").lower() for k in kinds], fontsize=7)
    ax.set_title("Nudges by kind")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "nudges.png", dpi=DPI)
    plt.close(fig)
    return "nudges.png"
