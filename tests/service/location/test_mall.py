"""The same service on the two-floor mall, with no code change: its readers,
its zones nested shop > concourse > floor, and a gateway for the whole mall."""

from __future__ import annotations

from services.platform.config import ROOT
from services.venue_model import load_venue
from tests.service.location.conftest import LocationFactory, now_ms
from tests.support.stubs import bearer
from venue.location.v1 import location_pb2 as pb

MALL = ROOT / "venues" / "millbrook-galleria.yaml"


async def test_the_mall_places_guests_and_counts_its_floors(
    location_factory: LocationFactory,
) -> None:
    venue = load_venue(MALL)
    reader = venue.readers[0]
    chain = [reader.zone, *(z.id for z in venue.zone_ancestors(reader.zone))]
    mall = await location_factory(env={"VENUE_FILE": str(MALL)})
    _, mall.gateway = await mall.reader_device(venue.id)
    zones = await mall.stub.ListZones(
        pb.ListZonesRequest(kind=pb.ZONE_KIND_FLOOR), metadata=bearer(mall.ops)
    )
    assert {z.zone_id for z in zones.zones} == {z.id for z in venue.zones if z.kind == "floor"}
    before = {zone: await mall.count(zone) for zone in chain}

    ann = await mall.guest()
    ack = await mall.ping_when_known([(ann.band_uid, reader.id, now_ms(), -50)])
    assert ack.outcome == pb.PING_BATCH_OUTCOME_ACCEPTED and not ack.rejected
    await mall.placed_in(ann.guest_id, reader.zone)

    async def counted() -> bool:
        return all([await mall.count(zone) == before[zone] + 1 for zone in chain])

    await mall.until(counted, what="the shop, its concourse and its floor counting ann")
    # A park reader means nothing here.
    ack = await mall.ping([(ann.band_uid, "rd.river-expedition-cruise.q1", now_ms(), -50)])
    assert [r.reason for r in ack.rejected] == [pb.PING_REJECT_REASON_UNKNOWN_READER]
