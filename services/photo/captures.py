"""Checking one capture record of a batch (pure).

A bad record is refused on its own, with a reason the camera can log, so that
one broken record never holds back the rest of its batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.photo.catalog import CameraInfo, Catalog
from services.platform.validation import EARLIEST, LATEST
from venue.photo.v1 import photo_pb2 as pb

MAX_BATCH = 500
_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_URI = re.compile(r"^[\x21-\x7e]{1,2048}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VEHICLE = re.compile(r"^[\x20-\x7e]{0,64}$")
MAX_ROW = 1000


@dataclass(frozen=True, slots=True)
class CheckedCapture:
    capture_id: str
    camera: CameraInfo
    captured_at: datetime
    vehicle_id: str
    row: int
    image_uri: str
    image_sha256: str

    def content(self) -> tuple[datetime, str, str, str, int]:
        """What must match for a resent capture to be the same capture."""
        return (self.captured_at, self.image_uri, self.image_sha256, self.vehicle_id, self.row)


def _when(capture: pb.Capture, catalog: Catalog, now: datetime) -> datetime | int:
    ts = capture.captured_at
    if ts.seconds == 0 and ts.nanos == 0:
        return pb.CAPTURE_REJECT_REASON_MISSING_CAPTURED_AT
    if not 0 <= ts.nanos < 1_000_000_000:
        return pb.CAPTURE_REJECT_REASON_MALFORMED
    try:
        captured_at = ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        return pb.CAPTURE_REJECT_REASON_MALFORMED
    if not EARLIEST <= captured_at < LATEST:
        return pb.CAPTURE_REJECT_REASON_MALFORMED
    if captured_at > now + timedelta(seconds=catalog.config.future_seconds):
        return pb.CAPTURE_REJECT_REASON_TIME_IN_FUTURE
    if captured_at < now - catalog.retention:
        return pb.CAPTURE_REJECT_REASON_TOO_OLD
    return captured_at


def _image(capture: pb.Capture) -> tuple[str, str] | int:
    if not capture.image_uri:
        return pb.CAPTURE_REJECT_REASON_MISSING_IMAGE_URI
    if not _URI.match(capture.image_uri):
        return pb.CAPTURE_REJECT_REASON_MALFORMED
    checksum = capture.image_sha256.lower()
    if not _SHA256.match(checksum):
        return pb.CAPTURE_REJECT_REASON_MALFORMED_CHECKSUM
    return capture.image_uri, checksum


def check(
    capture: pb.Capture,
    device_camera: str,
    catalog: Catalog,
    now: datetime,
) -> CheckedCapture | int:
    """The checked capture, or the CaptureRejectReason that refuses it."""
    if not capture.capture_id:
        return pb.CAPTURE_REJECT_REASON_MISSING_CAPTURE_ID
    if not _ID.match(capture.capture_id):
        return pb.CAPTURE_REJECT_REASON_MALFORMED
    camera = catalog.camera(capture.camera_id)
    if camera is None:
        return pb.CAPTURE_REJECT_REASON_UNKNOWN_CAMERA
    if capture.camera_id != device_camera:
        return pb.CAPTURE_REJECT_REASON_CAMERA_NOT_ALLOWED
    captured_at = _when(capture, catalog, now)
    if isinstance(captured_at, int):
        return captured_at
    image = _image(capture)
    if isinstance(image, int):
        return image
    if not _VEHICLE.match(capture.vehicle_id) or not 0 <= capture.row <= MAX_ROW:
        return pb.CAPTURE_REJECT_REASON_MALFORMED
    return CheckedCapture(
        capture.capture_id,
        camera,
        captured_at,
        capture.vehicle_id.strip(),
        capture.row,
        image[0],
        image[1],
    )
