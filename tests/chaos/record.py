"""What the suite acknowledged to the world's devices and apps during the day.

A Caller of the world (sim.suite.calls) that also keeps every acknowledged write
the audit checks: a reply is the suite's promise, and after the faults each
promise must be found in the databases exactly once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from sim.suite.calls import Caller
from sim.suite.stats import CallStats
from venue.access.v1 import access_pb2 as apb
from venue.photo.v1 import photo_pb2 as ppb

R = TypeVar("R")


@dataclass(frozen=True)
class AckedTap:
    key: str
    tap_id: str
    allowed: bool


@dataclass(frozen=True)
class AckedCharge:
    key: str
    charge_id: str
    approved: bool
    amount_minor: int
    party_id: str


@dataclass
class Acknowledged:
    taps: list[AckedTap] = field(default_factory=list)
    charges: list[AckedCharge] = field(default_factory=list)
    # capture id -> photo id, for captures acked as stored (or already stored).
    captures: dict[str, str] = field(default_factory=dict)
    # nudge id -> the guest's answer the service acknowledged.
    nudge_acks: dict[str, int] = field(default_factory=dict)
    photographer_taps: int = 0


class RecordingCaller(Caller):
    def __init__(self, stats: CallStats, max_in_flight: int, acked: Acknowledged, **kw: Any):
        super().__init__(stats, max_in_flight, **kw)
        self.acked = acked

    async def __call__(
        self,
        name: str,
        method: Callable[..., Awaitable[R]],
        request: Any,
        token: str | None = None,
        *,
        deadline_s: float | None = None,
        retry: bool = True,
        answers: frozenset[grpc.StatusCode] = frozenset(),
    ) -> R | None:
        reply = await super().__call__(
            name,
            method,
            request,
            token,
            deadline_s=deadline_s,
            retry=retry,
            answers=answers,
        )
        if reply is not None:
            self._keep(name, request, reply)
        return reply

    def _keep(self, name: str, request: Any, reply: Any) -> None:
        acked = self.acked
        if name == "access.Tap":
            acked.taps.append(
                AckedTap(
                    request.idempotency_key,
                    reply.tap_id,
                    reply.decision == apb.TAP_DECISION_ALLOW,
                )
            )
        elif name == "access.Charge":
            acked.charges.append(
                AckedCharge(
                    request.idempotency_key,
                    reply.charge_id,
                    reply.result == apb.CHARGE_RESULT_APPROVED,
                    reply.amount.minor_units,
                    reply.party_id,
                )
            )
        elif name == "photo.IngestCaptures":
            for ack in reply.acks:
                if ack.outcome in (
                    ppb.CAPTURE_OUTCOME_ACCEPTED,
                    ppb.CAPTURE_OUTCOME_DUPLICATE,
                ):
                    acked.captures[ack.capture_id] = ack.photo_id
        elif name == "photo.PhotographerTap":
            acked.photographer_taps += 1
        elif name == "itinerary.AcknowledgeNudge":
            acked.nudge_acks[request.nudge_id] = int(request.ack)


def recording_callers(
    callers: dict[str, Caller], acked: Acknowledged, attempts: int
) -> dict[str, Caller]:
    """The world's callers, each with its cap, recording what was acknowledged.

    `attempts` is how often a device tries before it gives up: a real turnstile or
    till keeps a message until it is answered, so under faults it keeps trying
    past a service's restart."""
    return {
        kind: RecordingCaller(
            c.stats, c.limit, acked, kind=kind, attempts=attempts, deadline_s=c.deadline_s
        )
        for kind, c in callers.items()
    }
