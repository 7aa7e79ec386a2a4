"""The venue's devices as the world drives them: turnstiles, ride scanners and door
locks tap bands; tills charge them; ride cameras and photographers send captures;
kiosks let a guest claim a photo; the ops team sets a ride's status.

Each device message carries the venue time the thing happened. Calls of one party
run in order on the party's lane (its entry is decided before its first ride tap),
captures of one camera on the camera's lane.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from services.venue_model import Venue
from sim.frame import DayFrame
from sim.geography import Heard
from sim.population import Member, Party
from sim.ports import Item
from sim.suite.calls import Caller, Lane, Tasks
from sim.suite.channels import Stubs
from sim.suite.readers import Readers
from venue.access.v1 import access_pb2 as apb
from venue.common.v1 import common_pb2
from venue.photo.v1 import photo_pb2 as ppb
from venue.queue.v1 import queue_pb2 as qpb

if TYPE_CHECKING:
    from sim.world import World

CAPTURE_BATCH = 50
# A camera holds its captures this long (wall seconds) to send them together.
CAPTURE_HOLD_WALL_S = 0.3


def _no_images(capture_id: str) -> tuple[str, str]:
    raise RuntimeError("devices not attached to a world")


# The least notice (venue seconds) with which ops post an expected reopen time.
REOPEN_NOTICE_S = 300.0


def timestamp(frame: DayFrame, seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(round(frame.epoch(seconds) * 1e9))
    return ts


class SuiteDevices:
    def __init__(
        self,
        venue: Venue,
        frame: DayFrame,
        stubs: Stubs,
        call: Caller,
        tokens: dict[str, str],
        ops_token: str,
        readers: Readers | None,
        services: set[str],
        tasks: Tasks,
        run_tag: str,
        ops_call: Caller | None = None,
    ) -> None:
        self.venue = venue
        self.frame = frame
        self.stubs = stubs
        self.call = call
        # The ops team's status posts go out on its own connection, not behind the
        # taps of a busy day (where they waited until their reopen time had gone).
        self.ops_call = ops_call or call
        self.tokens = tokens
        self.ops_token = ops_token
        self.readers = readers
        self.services = services
        self.tasks = tasks
        self.run = run_tag
        self.image_of: Callable[[str], tuple[str, str]] = _no_images
        # The shared venue clock (day seconds); the world's own time may lag it.
        self.clock_now: Callable[[], float] = lambda: float("-inf")
        self.errors: list[BaseException] = []
        self.lanes: dict[object, Lane] = {}
        self._seq = itertools.count(1)
        self.outcomes: Counter[str] = Counter()
        self.captures: dict[str, list[ppb.Capture]] = defaultdict(list)
        self.photo_ids: dict[str, str] = {}  # capture_id -> photo_id
        self.missing_token: Counter[str] = Counter()

    def attach(self, world: World) -> None:
        self.image_of = world.image_of

    def lane(self, key: object) -> Lane:
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane(self.tasks.spawn, self.errors)
        return lane

    def _token(self, venue_ref: str) -> str | None:
        token = self.tokens.get(venue_ref)
        if token is None:
            self.missing_token[venue_ref] += 1
        return token

    def _submit(self, key: object, job: Callable[[], Awaitable[None]]) -> None:
        self.call.stats.count_events()
        self.lane(key).submit(job)

    # --- taps ---------------------------------------------------------------------

    def tap(self, party: Party, member: Member, access_point: str, t: float) -> None:
        if "access" not in self.services:
            return
        token = self._token(access_point)
        if token is None:
            return
        kind = self.venue.access_point(access_point).kind.value
        request = apb.TapRequest(
            access_point_id=access_point,
            band_uid=member.band_uid,
            tapped_at=timestamp(self.frame, t),
            idempotency_key=f"{self.run}:tap:{next(self._seq)}",
        )

        async def job() -> None:
            reply = await self.call("access.Tap", self.stubs.access.Tap, request, token)
            if reply is None:
                self.outcomes[f"tap.{kind}.failed"] += 1
            elif reply.decision == apb.TAP_DECISION_ALLOW:
                self.outcomes[f"tap.{kind}.allow"] += 1
            else:
                reason = apb.DenyReason.Name(reply.deny_reason)
                self.outcomes[f"tap.{kind}.deny.{reason}"] += 1

        self._submit(party.index, job)

    # --- tills --------------------------------------------------------------------

    def charge(
        self,
        party: Party,
        member: Member,
        merchant: str,
        till: str,
        items: tuple[Item, ...],
        t: float,
        pin: str | None,
        category: str,
    ) -> None:
        if "access" not in self.services:
            return
        token = self._token(till)
        if token is None:
            return
        currency = self.venue.currency
        request = apb.ChargeRequest(
            merchant_id=merchant,
            band_uid=member.band_uid,
            items=[
                apb.LineItem(
                    sku=i.sku,
                    quantity=i.quantity,
                    unit_price=common_pb2.Money(minor_units=i.unit_minor, currency=currency),
                )
                for i in items
            ],
            amount=common_pb2.Money(
                minor_units=sum(i.quantity * i.unit_minor for i in items), currency=currency
            ),
            charged_at=timestamp(self.frame, t),
            idempotency_key=f"{self.run}:charge:{next(self._seq)}",
        )
        if pin is not None:
            request.pin = pin

        async def job() -> None:
            reply = await self.call("access.Charge", self.stubs.access.Charge, request, token)
            if reply is None:
                self.outcomes["charge.failed"] += 1
            elif reply.result == apb.CHARGE_RESULT_APPROVED:
                self.outcomes["charge.approved"] += 1
                self.outcomes[f"spend.{category}"] += reply.amount.minor_units
            else:
                reason = apb.DeclineReason.Name(reply.decline_reason)
                self.outcomes[f"charge.declined.{reason}"] += 1

        self._submit(party.index, job)

    # --- readers ------------------------------------------------------------------

    def hear(self, party: Party, heard: tuple[Heard, ...], t: float) -> None:
        if self.readers is not None:
            self.readers.hear(party, heard, t)

    # --- cameras, photographers and kiosks -------------------------------------------

    def capture(self, camera: str, capture_id: str, taken_s: float) -> None:
        if "photo" not in self.services or self._token(camera) is None:
            return
        uri, sha = self.image_of(capture_id)
        pending = self.captures[camera]
        pending.append(
            ppb.Capture(
                capture_id=capture_id,
                camera_id=camera,
                captured_at=timestamp(self.frame, taken_s),
                image_uri=uri,
                image_sha256=sha,
            )
        )
        if len(pending) == 1:
            # The camera sends what it has a moment later, in one batch.
            self.lane(camera).submit(lambda: self._send_captures(camera))

    async def _send_captures(self, camera: str) -> None:
        await asyncio.sleep(CAPTURE_HOLD_WALL_S)
        batch = self.captures.pop(camera, [])
        token = self.tokens[camera]
        for start in range(0, len(batch), CAPTURE_BATCH):
            part = batch[start : start + CAPTURE_BATCH]
            self.call.stats.count_events(len(part))
            reply = await self.call(
                "photo.IngestCaptures",
                self.stubs.photo.IngestCaptures,
                ppb.IngestCapturesRequest(
                    captures=part, idempotency_key=f"{self.run}:{camera}:{part[0].capture_id}"[:128]
                ),
                token,
            )
            if reply is None:
                self.outcomes["capture.failed"] += len(part)
                continue
            for ack in reply.acks:
                self.outcomes[f"capture.{ppb.CaptureOutcome.Name(ack.outcome)}"] += 1
                if ack.photo_id:
                    self.photo_ids[ack.capture_id] = ack.photo_id

    def photographer_tap(self, camera: str, party: Party, member: Member, t: float) -> None:
        if "photo" not in self.services:
            return
        token = self._token(camera)
        if token is None:
            return
        request = ppb.PhotographerTapRequest(
            band_uid=member.band_uid,
            tapped_at=timestamp(self.frame, t),
            idempotency_key=f"{self.run}:ptap:{next(self._seq)}",
        )

        async def job() -> None:
            reply = await self.call(
                "photo.PhotographerTap", self.stubs.photo.PhotographerTap, request, token
            )
            outcome = "failed" if reply is None else ppb.BandTapOutcome.Name(reply.outcome)
            self.outcomes[f"photographer.{outcome}"] += 1

        self.call.stats.count_events()
        self.lane(camera).submit(job)

    def kiosk(
        self, kiosk: str, attraction: str, party: Party, member: Member, capture_id: str, t: float
    ) -> None:
        if "photo" not in self.services:
            return
        token = self._token(kiosk)
        if token is None:
            return
        uri, _ = self.image_of(capture_id)

        async def job() -> None:
            shown = await self.call(
                "photo.ListKioskPhotos",
                self.stubs.photo.ListKioskPhotos,
                ppb.ListKioskPhotosRequest(attraction_id=attraction),
                token,
            )
            if shown is None:
                return
            mine = next((p for p in shown.photos if p.image_uri == uri), None)
            if mine is None:
                self.outcomes["kiosk.not_shown"] += 1
                return
            reply = await self.call(
                "photo.ClaimPhoto",
                self.stubs.photo.ClaimPhoto,
                ppb.ClaimPhotoRequest(
                    photo_id=mine.photo_id,
                    band_uid=member.band_uid,
                    tapped_at=timestamp(self.frame, t),
                    idempotency_key=f"{self.run}:claim:{next(self._seq)}",
                ),
                token,
            )
            outcome = "failed" if reply is None else ppb.BandTapOutcome.Name(reply.outcome)
            self.outcomes[f"kiosk.{outcome}"] += 1

        self._submit(party.index, job)

    # --- the ops team -----------------------------------------------------------------

    def ride_status(
        self, attraction: str, status: str, t: float, expected_back_s: float | None
    ) -> None:
        if "queue" not in self.services or not self.ops_token:
            return
        request = qpb.SetAttractionStatusRequest(
            attraction_id=attraction,
            status=qpb.ATTRACTION_STATUS_DOWN if status == "down" else qpb.ATTRACTION_STATUS_OPEN,
            reason=qpb.STATUS_REASON_TECHNICAL
            if status == "down"
            else qpb.STATUS_REASON_UNSPECIFIED,
            note="ride stopped by its operator" if status == "down" else "",
        )

        async def job() -> None:
            # Ops post a time to reopen only while it is still well ahead on the venue
            # clock when the call goes out: the call may wait behind others in its
            # lane, and a busy suite answers seconds (many venue minutes) later; the
            # queue rightly refuses a reopen time already gone.
            if expected_back_s is not None and expected_back_s > self.clock_now() + REOPEN_NOTICE_S:
                request.expected_reopen_at.CopyFrom(timestamp(self.frame, expected_back_s))
            else:
                request.ClearField("expected_reopen_at")
            reply = await self.ops_call(
                "queue.SetAttractionStatus",
                self.stubs.queue.SetAttractionStatus,
                request,
                self.ops_token,
            )
            self.outcomes[f"ops.{status}.{'ok' if reply else 'failed'}"] += 1

        self._submit(("ops", attraction), job)
