"""Who may do what, asserted against the running suite.

- The committed table (authz_matrix.txt) agrees with every service's policy.py.
- Every RPC of every running service, called by every kind of caller, is
  admitted or refused as the table says: refused means UNAUTHENTICATED for an
  anonymous or forged caller and PERMISSION_DENIED for the rest.
- A guest never reads or changes another party's data, RPC by RPC.
- A revoked device token, or a deactivated band, is refused by every running
  service shortly after the revocation commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from services.platform.config import DEFAULT_VENUE_FILE
from services.platform.validation import to_timestamp
from services.venue_model import load_venue
from tests.hardening.authz import TABLE, read_table, render
from tests.hardening.callers import caller_kinds
from tests.hardening.conftest import (
    REFUSED,
    Hardened,
    Outcome,
    Person,
    make_device,
    make_person,
    make_staff,
)
from tests.hardening.rpcs import Rpc, all_rpcs, rpc
from tests.support.stubs import bearer
from venue.access.v1 import access_pb2 as apb
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.photo.v1 import photo_pb2 as ppb
from venue.photo.v1 import photo_pb2_grpc

pytestmark = pytest.mark.e2e

FORGED = "eyJhbGciOiJFZERTQSIsImtpZCI6Im5vIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def test_the_table_is_the_policies() -> None:
    """A policy change shows as a diff of authz_matrix.txt."""
    committed = TABLE.read_text()
    assert committed == render(), (
        "a policy and tests/hardening/authz_matrix.txt disagree: run "
        "`.venv/bin/python -m tests.hardening.authz --write` and review the diff"
    )


async def _call(hardened: Hardened, target: Rpc, token: str, patience: float = 1.0) -> Outcome:
    """An empty request from the holder of `token`: far enough to pass or fail
    authorization, which runs before anything reads the request. A stream still
    open after `patience` seconds got past authorization (a refusal comes first)."""
    channel: Any = hardened.channel(target.service)
    metadata = bearer(token) if token else ()
    try:
        if target.unary:
            await channel.unary_unary(target.path)(b"", metadata=metadata, timeout=15)
            return Outcome(grpc.StatusCode.OK)
        if target.client_streaming:

            async def one() -> AsyncIterator[bytes]:
                yield b""
                await asyncio.sleep(1)

            call: Any = channel.stream_stream(target.path)(one(), metadata=metadata)
        else:
            call = channel.unary_stream(target.path)(b"", metadata=metadata)
        try:
            await asyncio.wait_for(call.read(), patience)
        except TimeoutError:
            call.cancel()
            return Outcome(grpc.StatusCode.OK)
        if call.done():
            return Outcome(await call.code(), details=await call.details() or "")
        call.cancel()
        return Outcome(grpc.StatusCode.OK)
    except grpc.aio.AioRpcError as err:
        return Outcome(err.code(), details=err.details() or "", error=err)


async def test_every_rpc_against_every_kind_of_caller(hardened: Hardened) -> None:
    table = read_table()
    running = [r for r in all_rpcs() if r.service in hardened.services]
    callers = [c for c in caller_kinds() if c.name in hardened.tokens]
    gate = asyncio.Semaphore(16)
    wrong: list[str] = []
    cells = 0

    async def cell(target: Rpc, caller: str, token: str, allowed: bool) -> None:
        nonlocal cells
        async with gate:
            # Waiting for a refusal that should come takes no longer than it
            # comes; waiting out an admitted stream costs `patience`.
            outcome = await _call(hardened, target, token, 1.0 if allowed else 10.0)
        cells += 1
        if allowed and outcome.code in REFUSED:
            wrong.append(f"{target.key} {caller}: expected allowed, got {outcome.code.name}")
        if not allowed:
            expected = (
                grpc.StatusCode.UNAUTHENTICATED
                if not token or token == FORGED
                else grpc.StatusCode.PERMISSION_DENIED
            )
            if outcome.code != expected:
                wrong.append(
                    f"{target.key} {caller}: expected {expected.name}, got "
                    f"{outcome.code.name} {outcome.details}"
                )

    jobs: list[Awaitable[None]] = []
    for target in running:
        row = table.get(target.key)
        assert row is not None, f"{target.key} is not in {TABLE.name}: regenerate the table"
        for caller in callers:
            jobs.append(cell(target, caller.name, hardened.tokens[caller.name], row[caller.name]))
        # A token no identity signed is refused like no token, even where a
        # public RPC would let an anonymous caller in.
        if not target.rule.anonymous:
            jobs.append(cell(target, "forged", FORGED, False))
    await asyncio.gather(*jobs)
    assert not wrong, "\n".join(wrong)
    assert cells == len(jobs)
    hardened.figures["matrix"] = {
        "rpcs": len(running),
        "callers": len(callers),
        "calls": cells,
        "allowed": sum(row[c.name] for r in running for c in callers for row in [table[r.key]]),
    }


async def test_a_refused_stream_gets_its_refusal_while_the_client_writes(
    hardened: Hardened,
) -> None:
    """A client-streaming call refused while the client's first writes are still
    in flight gets the refusal itself, not INTERNAL (grpc.aio lets a failed write
    replace the status: the server hears such a caller out before refusing)."""
    streams = [r for r in all_rpcs() if r.service in hardened.services and r.client_streaming]
    assert streams, "no running service has a client-streaming RPC"
    table = read_table()
    codes: dict[str, int] = {}
    wrong: list[str] = []

    async def refused(target: Rpc, caller: str) -> None:
        token = hardened.tokens.get(caller, FORGED)

        async def burst() -> AsyncIterator[bytes]:
            # Writes still in flight when the refusal comes, then a pause (a
            # device waiting for acks).
            for _ in range(50):
                yield b""
            await asyncio.sleep(5)

        channel: Any = hardened.channel(target.service)
        kind = channel.stream_stream if target.server_streaming else channel.stream_unary
        call: Any = kind(target.path)(burst(), metadata=bearer(token), timeout=15)
        try:
            if target.server_streaming:
                async for _ in call:
                    pass
            else:
                await call
            code = await call.code()
        except grpc.aio.AioRpcError as err:
            code = err.code()
        expected = (
            grpc.StatusCode.UNAUTHENTICATED
            if caller == "forged"
            else grpc.StatusCode.PERMISSION_DENIED
        )
        key = f"{target.key} {caller}: {code.name}"
        codes[key] = codes.get(key, 0) + 1
        if code != expected:
            wrong.append(f"{key}, expected {expected.name}")

    jobs = []
    for target in streams:
        row = table[target.key]
        for caller in ("forged", "staff:admin", "service:access", "device:gate"):
            if caller == "forged" or not row[caller]:
                jobs += [refused(target, caller) for _ in range(12)]
    await asyncio.gather(*jobs)
    assert not wrong, f"{len(wrong)} of {len(jobs)} refused streams: {codes}"
    assert sum(codes.values()) == len(jobs)
    hardened.figures["refused_streams"] = codes


# --- a guest and another party's data -----------------------------------------

# Request fields that name a party's resource, and where the person keeps it.
PARTY_FIELDS: dict[str, Callable[[Person], str]] = {
    "guest_id": lambda p: p.guest_id,
    "party_id": lambda p: p.party_id,
    "band_id": lambda p: p.band_id,
    "old_band_id": lambda p: p.band_id,
    "band_uid": lambda p: p.band_uid,
    "member_guest_id": lambda p: p.guest_id,
}
# Self-service calls whose effect on the caller's own data the test must not
# have (erasing the caller would end the test's session).
DESTRUCTIVE = {"identity.EraseGuest", "identity.RemovePartyMember", "identity.DeactivateBand"}


def party_request(target: Rpc, person: Person, currency: str) -> Message | None:
    """The RPC's request aimed at `person`'s data by its first party field (one
    is enough, and some requests take only one), or None when it names none."""
    request = target.request()
    aimed = False
    for field in target.input.fields:
        if field.name in PARTY_FIELDS and field.type == field.TYPE_STRING:
            if not aimed:
                setattr(request, field.name, PARTY_FIELDS[field.name](person))
            aimed = True
        elif field.name.endswith("_uid") and field.type == field.TYPE_STRING:
            setattr(request, field.name, f"HB-{uuid.uuid4().hex[:12]}")
        elif field.name == "idempotency_key":
            setattr(request, field.name, uuid.uuid4().hex)
        elif field.type == field.TYPE_MESSAGE and field.message_type is common_pb2.Money.DESCRIPTOR:
            getattr(request, field.name).CopyFrom(
                common_pb2.Money(minor_units=100, currency=currency)
            )
    return request if aimed else None


# RPCs whose request the generic filling above cannot make whole (a second id,
# an enum, a photo of the party's): each gets every variant of "another party's
# data" spelled out, and the same request about the caller's own.
Complete = Callable[[Person, Person, dict[str, str]], list[Message]]


def _link_band(person: Person, caller: Person, photos: dict[str, str]) -> list[Message]:
    return [
        ipb.LinkBandRequest(
            guest_id=person.guest_id,
            band_uid=f"HB-{uuid.uuid4().hex[:12]}",
            idempotency_key=uuid.uuid4().hex,
        )
    ]


def _unlink_photo(person: Person, caller: Person, photos: dict[str, str]) -> list[Message]:
    # Their photo out of their party, and their photo "out of" the caller's own
    # party; for each reason a guest may give (NOT_US refunds a purchase).
    parties = dict.fromkeys([person.party_id, caller.party_id])
    return [
        ppb.UnlinkPhotoRequest(photo_id=photos[person.guest_id], party_id=party, reason=reason)
        for reason in (ppb.UNLINK_REASON_NOT_US, ppb.UNLINK_REASON_NOT_WANTED)
        for party in parties
    ]


COMPLETE: dict[str, Complete] = {
    "identity.LinkBand": _link_band,
    "photo.UnlinkPhoto": _unlink_photo,
}


async def linked_photo(hardened: Hardened, person: Person) -> str:
    """A photo in `person`'s party account: a ride camera's capture, claimed with
    the person's band at the ride's exit kiosk."""
    venue = load_venue(DEFAULT_VENUE_FILE)
    kiosk_ref = hardened.refs["device:kiosk"]
    ride = next(p.attraction for p in venue.access_points if p.id == kiosk_ref)
    camera = next(c.id for c in venue.cameras if c.attraction == ride)
    _, camera_token = await make_device(
        hardened.identity(), hardened.admin, common_pb2.DEVICE_KIND_CAMERA, camera
    )
    photo = photo_pb2_grpc.PhotoServiceStub(hardened.channel("photo"))
    now = datetime.now(UTC)
    ident = f"cap-{uuid.uuid4().hex[:12]}"
    shot = await photo.IngestCaptures(
        ppb.IngestCapturesRequest(
            captures=[
                ppb.Capture(
                    capture_id=ident,
                    camera_id=camera,
                    captured_at=to_timestamp(now - timedelta(minutes=1)),
                    image_uri=f"s3://photos/{ident}.jpg",
                    image_sha256=hashlib.sha256(ident.encode()).hexdigest(),
                )
            ],
            idempotency_key=uuid.uuid4().hex,
        ),
        metadata=bearer(camera_token),
    )
    photo_id = shot.acks[0].photo_id
    assert photo_id, f"the capture was not taken: {shot}"
    # The photo service learns of the band from identity's stream: poll.
    for _ in range(200):
        claimed = await photo.ClaimPhoto(
            ppb.ClaimPhotoRequest(
                photo_id=photo_id,
                band_uid=person.band_uid,
                tapped_at=to_timestamp(datetime.now(UTC)),
                idempotency_key=uuid.uuid4().hex,
            ),
            metadata=bearer(hardened.tokens["device:kiosk"]),
        )
        if claimed.outcome in (ppb.BAND_TAP_OUTCOME_LINKED, ppb.BAND_TAP_OUTCOME_ALREADY_LINKED):
            return photo_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"the kiosk never linked the photo: {claimed}")


async def table_digests(hardened: Hardened, schema: str) -> dict[str, str]:
    """Each table's content as a digest: a refused call changes no row, not only
    no count (an unlink or a band swap is an UPDATE)."""
    tables = await hardened.db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema
    )
    digests: dict[str, str] = {}
    for t in tables:
        name = t["tablename"]
        digests[name] = await hardened.db.fetchval(
            f"SELECT md5(coalesce(string_agg(r::text, ',' ORDER BY r::text), '')) "
            f'FROM "{schema}"."{name}" r'
        )
    return digests


@dataclass
class PartyFinding:
    rpc: str
    other: str
    own: str


async def test_a_guest_never_reaches_another_partys_data(hardened: Hardened) -> None:
    identity = hardened.identity()
    access = hardened.access() if "access" in hardened.services else None
    currency = "USD"
    desk = hardened.tokens["staff:desk"]
    me = await make_person(identity, access, hardened.admin, desk, currency)
    other = await make_person(identity, access, hardened.admin, desk, currency)
    hardened.tokens["guest:me"] = me.token
    photos: dict[str, str] = {}
    if "photo" in hardened.services:
        for person in (me, other):
            photos[person.guest_id] = await linked_photo(hardened, person)
    guest_rpcs = [
        r
        for r in all_rpcs()
        if r.service in hardened.services and r.rule.guests and not r.server_streaming
    ]
    findings: list[PartyFinding] = []
    leaks: list[str] = []
    # Own-data calls that change the guest's band or photos go late, destructive last.
    for target in sorted(guest_rpcs, key=lambda r: (r.key in DESTRUCTIVE, r.key in COMPLETE)):
        if target.key in COMPLETE:
            complete = COMPLETE[target.key]
            pairs = [(t, complete(me, me, photos)[0]) for t in complete(other, me, photos)]
        else:
            theirs = party_request(target, other, currency)
            own = party_request(target, me, currency)
            if theirs is None or own is None:
                continue
            pairs = [(theirs, own)]
        for theirs, own in pairs:
            await _probe(hardened, target, theirs, own, other, leaks, findings)
    assert not leaks, "\n".join(leaks)
    # The same request about the guest's own party gets past the party check:
    # the refusal above is about whose data it is, not about the request.
    refused_own = [f for f in findings if f.own in ("PERMISSION_DENIED", "UNAUTHENTICATED")]
    assert not refused_own, f"own-party requests refused: {refused_own}"
    assert findings, "no guest RPC names a party's data"
    # The RPCs spelled out in full are proven: the request about the guest's own
    # data was whole (it succeeded), so the refusal was about whose data it was.
    for key in COMPLETE:
        if rpc(key).service in hardened.services:
            proven = [f for f in findings if f.rpc == key]
            assert proven and all(f.own == "OK" for f in proven), proven
            assert all(f.other in ("PERMISSION_DENIED", "NOT_FOUND") for f in proven), proven
    figures: dict[str, dict[str, list[str]]] = {}
    for f in findings:
        seen = figures.setdefault(f.rpc, {"other": [], "own": []})
        seen["other"].append(f.other)
        seen["own"].append(f.own)
    hardened.figures["party_isolation"] = figures


async def _probe(
    hardened: Hardened,
    target: Rpc,
    theirs: Message,
    own: Message,
    other: Person,
    leaks: list[str],
    findings: list[PartyFinding],
) -> None:
    whole = target.key in COMPLETE

    async def state() -> dict[str, Any]:
        if whole:
            return await table_digests(hardened, target.service)
        return dict(await hardened.row_counts(target.service))

    before = await state()
    outcome = await hardened.unary(target, theirs.SerializeToString(), "guest:me")
    after = await state()
    # Then the same request about the guest's own party (after: a destructive
    # one, EraseGuest, would otherwise end the guest's session first).
    mine = await hardened.unary(target, own.SerializeToString(), "guest:me")
    label = f"{target.key}({_aimed(theirs)})"
    if outcome.code == grpc.StatusCode.OK:
        leaks.append(f"{label}: answered OK for another party's data")
    for secret in (other.guest_id, other.party_id, other.band_uid):
        if secret.encode() in outcome.reply:
            leaks.append(f"{label}: reply carries another party's data")
    # Refused for whose data it is; or, when the very same request about the
    # guest's own party is invalid too, refused for being incomplete.
    refusals = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND}
    if mine.code == grpc.StatusCode.INVALID_ARGUMENT:
        refusals.add(grpc.StatusCode.INVALID_ARGUMENT)
    if outcome.code not in refusals:
        leaks.append(
            f"{label}: {outcome.code.name} for another party (own party: "
            f"{mine.code.name}), not a refusal"
        )
    changed = {t for t in after if after[t] != before.get(t) and t != "stream_cursors"}
    if changed:
        leaks.append(f"{label}: another party's call wrote to {sorted(changed)}")
    findings.append(PartyFinding(target.key, outcome.code.name, mine.code.name))


def _aimed(request: Message) -> str:
    return ", ".join(
        f.name for f, _ in request.ListFields() if f.name in PARTY_FIELDS or f.name == "photo_id"
    )


# --- revocation, everywhere ------------------------------------------------------

DEADLINE_S = 10.0  # generous on a shared machine; the figure printed is what matters


async def _refused_everywhere(
    probes: Sequence[tuple[str, Callable[[], Awaitable[bool]]]],
) -> dict[str, float]:
    """Seconds until each probe reports a refusal (polled every 20 ms)."""
    started = time.monotonic()
    pending = dict(probes)
    took: dict[str, float] = {}
    while pending and time.monotonic() - started < DEADLINE_S:
        results = await asyncio.gather(*(probe() for probe in pending.values()))
        for name, refused in zip(list(pending), results, strict=True):
            if refused:
                took[name] = time.monotonic() - started
                del pending[name]
        await asyncio.sleep(0.02)
    assert not pending, f"still admitted {DEADLINE_S:.0f} s after revocation: {sorted(pending)}"
    return took


def _one_rpc_per_service(hardened: Hardened, prefix: str) -> dict[str, tuple[Rpc, str]]:
    """Per running service, one RPC that some caller kind named `prefix...` may call
    (not a public one: a public RPC treats a stale token as no token)."""
    chosen: dict[str, tuple[Rpc, str]] = {}
    kinds = {c.name: c for c in caller_kinds()}
    for target in all_rpcs():
        if target.service in chosen or target.service not in hardened.services:
            continue
        if target.rule.anonymous:
            continue
        for name, caller in kinds.items():
            if name.startswith(prefix) and target.rule.admits(caller.principal):
                chosen[target.service] = (target, name)
                break
    return chosen


async def _revoke_and_watch(
    hardened: Hardened,
    chosen: dict[str, tuple[Rpc, str]],
    tokens: dict[str, tuple[str, str]],
    revoke: Callable[[str], Awaitable[Any]],
) -> dict[str, float]:
    def probe(target: Rpc, token: str) -> Callable[[], Awaitable[bool]]:
        async def refused() -> bool:
            return (await _call(hardened, target, token)).code == grpc.StatusCode.UNAUTHENTICATED

        return refused

    for target, kind_name in chosen.values():
        assert not await probe(target, tokens[kind_name][1])(), f"{target.key} refused too soon"
    for subject, _ in tokens.values():
        await revoke(subject)
    took = await _refused_everywhere([(t.key, probe(t, tokens[k][1])) for t, k in chosen.values()])
    return {k: round(v, 3) for k, v in took.items()}


async def test_a_revoked_device_is_refused_by_every_service(hardened: Hardened) -> None:
    identity = hardened.identity()
    chosen = _one_rpc_per_service(hardened, "device:")
    assert chosen, "no running service admits devices"
    kinds = {c.name: c for c in caller_kinds()}
    tokens: dict[str, tuple[str, str]] = {}
    for _, kind_name in chosen.values():
        if kind_name not in tokens:
            kind = kinds[kind_name].principal.device_kind
            tokens[kind_name] = await make_device(
                identity, hardened.admin, kind, hardened.refs.get(kind_name, "")
            )

    async def revoke(device_id: str) -> None:
        await identity.RevokeDevice(
            ipb.RevokeDeviceRequest(device_id=device_id), metadata=bearer(hardened.admin)
        )

    took = await _revoke_and_watch(hardened, chosen, tokens, revoke)
    hardened.figures["revoked_device_refused_after_s"] = took


async def test_a_revoked_member_of_staff_is_refused_by_every_service(hardened: Hardened) -> None:
    identity = hardened.identity()
    chosen = _one_rpc_per_service(hardened, "staff:")
    kinds = {c.name: c for c in caller_kinds()}
    tokens: dict[str, tuple[str, str]] = {}
    for _, role_name in chosen.values():
        if role_name not in tokens:
            role = kinds[role_name].principal.staff_role
            tokens[role_name] = await make_staff(identity, hardened.admin, role)

    async def revoke(staff_id: str) -> None:
        await identity.RevokeStaff(
            ipb.RevokeStaffRequest(staff_id=staff_id), metadata=bearer(hardened.admin)
        )

    took = await _revoke_and_watch(hardened, chosen, tokens, revoke)
    hardened.figures["revoked_staff_refused_after_s"] = took


async def test_a_deactivated_band_is_refused_everywhere(hardened: Hardened) -> None:
    identity = hardened.identity()
    refs = hardened.refs
    person = await make_person(
        identity,
        hardened.access() if "access" in hardened.services else None,
        hardened.admin,
        hardened.tokens["staff:desk"],
        "USD",
    )
    scanner = bearer(hardened.tokens["device:ride_scanner"])
    gate = bearer(hardened.tokens["device:gate"])

    async def resolves() -> bool:
        try:
            reply = await identity.ResolveBand(
                ipb.ResolveBandRequest(band_uid=person.band_uid), metadata=gate, timeout=5
            )
        except grpc.aio.AioRpcError as err:
            return err.code() == grpc.StatusCode.NOT_FOUND
        return not reply.active

    async def taps() -> bool:
        reply = await hardened.access().Tap(
            apb.TapRequest(
                access_point_id=refs["device:ride_scanner"],
                band_uid=person.band_uid,
                tapped_at=to_timestamp(datetime.now(UTC)),
                idempotency_key=uuid.uuid4().hex,
            ),
            metadata=scanner,
            timeout=5,
        )
        return bool(reply.deny_reason == apb.DENY_REASON_BAND_DEACTIVATED)

    async def pays() -> bool:
        till = bearer(hardened.tokens["device:point_of_sale"])
        try:
            reply = await hardened.access().Charge(
                apb.ChargeRequest(
                    merchant_id=hardened.merchant,
                    band_uid=person.band_uid,
                    amount=common_pb2.Money(minor_units=1, currency="USD"),
                    charged_at=to_timestamp(datetime.now(UTC)),
                    idempotency_key=uuid.uuid4().hex,
                ),
                metadata=till,
                timeout=5,
            )
        except grpc.aio.AioRpcError as err:
            return err.code() in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}
        return bool(reply.decline_reason == apb.DECLINE_REASON_BAND_DEACTIVATED)

    # Per RPC that takes a band: does it refuse this band now? Services that
    # land add their band-taking RPCs here.
    probes = {"identity.ResolveBand": resolves, "access.Tap": taps, "access.Charge": pays}
    running = [(k, p) for k, p in probes.items() if rpc(k).service in hardened.services]
    # The band works first: resolved, paying, and a tap denied (no ticket) for
    # another reason than a deactivated band.
    assert not await resolves()
    if "access" in hardened.services:
        assert not await taps()
        assert not await pays()
    await identity.DeactivateBand(
        ipb.DeactivateBandRequest(band_id=person.band_id, reason=ipb.DEACTIVATION_REASON_LOST),
        metadata=bearer(hardened.admin),
    )
    took = await _refused_everywhere(running)
    hardened.figures["deactivated_band_refused_after_s"] = {k: round(v, 3) for k, v in took.items()}
