"""A venue small enough to check routes by hand, written the way venue files are.

    A(0,0) --100-- B(100,0) --100-- C(200,0)        floor 0
      \\             ^ (one way D->B, 100)  /
       150          |                   160
         \\--------- D(100,100) --------/

    B --stairs 10 m-- U1(100,0,f1) --140-- U2(200,0,f1) --10-- U3(210,0,f1)
    C --elevator 60 s (two way)-- U2;   U3 --escalator 5 s (down, one way)--> C

B sits alone in the zone "junction", so crowding it forces a detour through D.
Drinks: K1 at C (12:00-18:00), K2 at U2 (all day); a restroom at D.
"""

from __future__ import annotations

from pathlib import Path

TINY_VENUE = """
schema_version: 1
venue:
  id: tiny-crossroads
  name: Tiny Crossroads
  kind: theme_park
  timezone: America/New_York
  currency: USD
  currency_exponent: 2
  hours: {open: "09:00", close: "21:00"}
  rules:
    pin_threshold_minor: 5000
    return_window: {slot_minutes: 60, early_grace_minutes: 5, late_grace_minutes: 15}
    max_holdings_per_guest: 3
    return_time_capacity_share: 0.4
    ping_retention_hours: 24
    trail_retention_minutes: 60
    photo_retention_days: 30
    photo_dispatch_window_seconds: 8
    nudges: {max_per_hour: 3, min_gap_minutes: 15}
zones:
  - {id: land.west, name: West, kind: land, capacity: 100, floor: 0}
  - {id: junction, name: Junction, kind: plaza, capacity: 100, floor: 0}
  - {id: land.east, name: East, kind: land, capacity: 100, floor: 0}
  - {id: plaza, name: Plaza, kind: plaza, capacity: 100, floor: 0}
  - {id: upper, name: Upper deck, kind: floor, capacity: 50, floor: 1}
nodes:
  - {id: n.a, x: 0, y: 0, floor: 0, zone: land.west}
  - {id: n.b, x: 100, y: 0, floor: 0, zone: junction}
  - {id: n.c, x: 200, y: 0, floor: 0, zone: land.east}
  - {id: n.d, x: 100, y: 100, floor: 0, zone: plaza}
  - {id: n.u1, x: 100, y: 0, floor: 1, zone: upper}
  - {id: n.u2, x: 200, y: 0, floor: 1, zone: upper}
  - {id: n.u3, x: 210, y: 0, floor: 1, zone: upper}
edges:
  - {id: ab, from: n.a, to: n.b, length_m: 100, kind: walkway}
  - {id: bc, from: n.b, to: n.c, length_m: 100, kind: walkway}
  - {id: ad, from: n.a, to: n.d, length_m: 150, kind: walkway}
  - {id: dc, from: n.d, to: n.c, length_m: 160, kind: walkway}
  - {id: db, from: n.d, to: n.b, length_m: 100, kind: walkway, one_way: true}
  - {id: b-u1, from: n.b, to: n.u1, length_m: 10, kind: stairs}
  - {id: u1u2, from: n.u1, to: n.u2, length_m: 140, kind: walkway}
  - {id: u2u3, from: n.u2, to: n.u3, length_m: 10, kind: walkway}
  - {id: lift, from: n.c, to: n.u2, length_m: 6, kind: elevator, traverse_seconds: 60}
  - {id: esc, from: n.u3, to: n.c, length_m: 15, kind: escalator, one_way: true,
     traverse_seconds: 5}
pois:
  - {id: k1, name: East Drinks, kind: drink, node: n.c, zone: land.east, tags: [cold_drink],
     hours: {open: "12:00", close: "18:00"},
     merchant: {price_list: [{sku: cola, name: Cola, price_minor: 350}]}}
  - {id: k2, name: Deck Drinks, kind: drink, node: n.u2, zone: upper, tags: [cold_drink],
     merchant: {price_list: [{sku: cola, name: Cola, price_minor: 350}]}}
  - {id: wc, name: Plaza Restrooms, kind: restroom, node: n.d, zone: plaza}
readers:
  - {id: rd.a, node: n.a, zone: land.west, range_m: 150}
  - {id: rd.c, node: n.c, zone: land.east, range_m: 150}
  - {id: rd.d, node: n.d, zone: plaza, range_m: 150}
  - {id: rd.u, node: n.u2, zone: upper, range_m: 150}
access_points: []
tills:
  - {id: till.k1, merchant: k1, node: n.c, zone: land.east}
  - {id: till.k2, merchant: k2, node: n.u2, zone: upper}
cameras: []
demand:
  typical_daily_guests: 100
  arrivals_by_hour: [{hour: 9, weight: 1}]
  departures_by_hour: [{hour: 20, weight: 1}]
  party_sizes: [{size: 2, weight: 1}]
  archetypes:
    - {id: fan, weight: 1, description: Walks., stay_minutes: 300,
       attraction_preference: 0.5, max_wait_minutes: 30}
  popularity: []
  spend: [{category: drink, mean_minor_per_guest: 300}]
"""


def write_tiny_venue(folder: Path) -> Path:
    path = folder / "tiny-crossroads.yaml"
    path.write_text(TINY_VENUE)
    return path
