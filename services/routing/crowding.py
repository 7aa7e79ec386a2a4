"""Crowding: how much slower a walk gets through a crowded zone.

The location service reports each zone's occupancy as a density (count / the zone's
capacity from the venue definition). Walking speed falls as a space fills, the way
pedestrian flow studies describe it (Weidmann's fundamental diagram: free walking
up to a comfortable density, then a steep drop): an arc's time is multiplied by

    factor(d) = 1                                   for d <= FREE_DENSITY
    factor(d) = 1 + SLOPE * (d - FREE_DENSITY) ** 2 above, capped at MAX_FACTOR

with d the density of the zone of each end of the arc (the mean of the two factors).
A zone at its capacity takes 2.5x as long to cross; one at 150% hits the cap.
The factor is never below 1, so crowd-aware times are never shorter than uncrowded
ones.

Routes are re-computed only when a factor moved materially (`MATERIAL_CHANGE`),
so a stream of small occupancy changes does not throw away the cached paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from services.routing.graph import FloatArray, WalkGraph
from services.venue_model import Venue

FREE_DENSITY = 0.3
SLOPE = 3.0
MAX_FACTOR = 4.0
# Relative change of a zone's factor that makes new routes worth computing.
MATERIAL_CHANGE = 0.05


def slowdown(density: float) -> float:
    """Time multiplier for walking through a zone at this density (>= 1)."""
    if not density > FREE_DENSITY:  # also NaN
        return 1.0
    return min(MAX_FACTOR, 1.0 + SLOPE * (density - FREE_DENSITY) ** 2)


@dataclass(frozen=True, slots=True)
class ZoneReading:
    density: float
    # Venue time (POSIX seconds) the count is valid for.
    as_of: float


class CrowdBoard:
    """Latest density of every zone, and the crowd factors routes are computed with.

    Fed by the location service's OccupancyChanged events (and a snapshot at start);
    an older reading never replaces a newer one, so replays and snapshots may
    arrive in any order.
    """

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        self._readings: dict[str, ZoneReading] = {}
        # Factor per zone as of the current version (1 when unknown).
        self._applied: dict[str, float] = {}
        self.version = 0
        # Nearest zone with a reading, per node zone: its own, else an ancestor.
        self._lineage: dict[str, tuple[str, ...]] = {
            zone.id: (zone.id, *(z.id for z in venue.zone_ancestors(zone.id)))
            for zone in venue.zones
        }
        self._arc_factors: dict[tuple[int, int], FloatArray] = {}

    def update(self, zone_id: str, density: float, as_of: float) -> bool:
        """Record a reading; True when it changed the factors routes use."""
        if zone_id not in self._lineage or not np.isfinite(density) or density < 0:
            return False
        known = self._readings.get(zone_id)
        if known is not None and known.as_of > as_of:
            return False
        self._readings[zone_id] = ZoneReading(density, as_of)
        factor = slowdown(density)
        # A zone's first reading replaces what it inherited from its parents.
        before = self._applied.get(zone_id)
        if before is None:
            self._applied[zone_id] = factor
            lineage = self._lineage[zone_id]
            inherited = self.zone_factor(lineage[1]) if len(lineage) > 1 else 1.0
            changed = factor != inherited
        else:
            changed = abs(factor - before) > MATERIAL_CHANGE * before
            if changed:
                self._applied[zone_id] = factor
        if changed:
            self.version += 1
            self._arc_factors.clear()
        return changed

    def density(self, zone_id: str) -> float | None:
        reading = self._readings.get(zone_id)
        return None if reading is None else reading.density

    def zone_factor(self, zone_id: str) -> float:
        for zone in self._lineage.get(zone_id, ()):
            if zone in self._applied:
                return self._applied[zone]
        return 1.0

    def crowded(self) -> bool:
        return any(f > 1.0 for f in self._applied.values())

    def arc_factors(self, graph: WalkGraph) -> FloatArray:
        """The factor of every arc of `graph` under the current version."""
        key = (id(graph), self.version)
        cached = self._arc_factors.get(key)
        if cached is not None:
            return cached
        node_factor = np.array(
            [self.zone_factor(self._venue.node(n).zone) for n in graph.node_ids],
            dtype=np.float64,
        )
        factors = (node_factor[graph.arc_source] + node_factor[graph.arc_target]) / 2.0
        self._arc_factors[key] = factors
        return factors

    def load(self, readings: Iterable[tuple[str, float, float]]) -> None:
        for zone_id, density, as_of in readings:
            self.update(zone_id, density, as_of)
