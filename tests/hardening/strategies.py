"""Hypothesis strategies that build any request message from its descriptor:
huge, empty and odd unicode strings, ids that exist and ids that do not,
boundary and negative numbers, unknown enum values, timestamps far away or with
impossible nanos, negative and enormous money, nested messages and repeated
fields from empty to oversized; and bytes that are not protobuf at all."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.hardening.rpcs import message_class

F = FieldDescriptor
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
HUGE = 200_000  # characters: far past any sane field, well under the message cap
OVERSIZED = (1_000, 10_000)  # elements of a repeated field

# Text that has broken real services: SQL and format metacharacters, NUL, control
# and bidirectional characters, combining marks, astral planes.
NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "'; DROP TABLE guests; --",
    "%s%n%x",
    "{}",
    "../../etc/passwd",
    "\u202eevil\u202c",
    "e\u0301\u0301\u0301",
    "\U0001f3a2" * 50,
    "\n\r\t",
    "null",
    "-1",
    "9" * 40,
    "a" * 256,
    "2025-13-45T25:61:61Z",
]
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
NOW = int(time.time())


def _children(field: Any) -> Descriptor:
    children: Descriptor = field.message_type
    return children


@cache
def strings(pool: tuple[str, ...], calm: bool = False) -> st.SearchStrategy[str]:
    plausible = st.sampled_from([*pool, "x", "USD"])
    if calm:
        return plausible
    return st.one_of(
        plausible,
        _text,
        st.sampled_from(NASTY_TEXT),
        st.just("x" * HUGE),
        st.builds(lambda c, n: c * n, st.sampled_from("é\U0001f600a"), st.integers(1000, 70_000)),
    )


@cache
def ints(low: int, high: int, calm: bool = False) -> st.SearchStrategy[int]:
    if calm:
        return st.integers(max(low, 0), min(high, 300))
    edges = [low, low + 1, -1, 0, 1, 2, 59, 60, 1440, 10**6, high - 1, high]
    return st.one_of(
        st.sampled_from([e for e in edges if low <= e <= high]), st.integers(low, high)
    )


@cache
def floats(calm: bool = False) -> st.SearchStrategy[float]:
    if calm:
        return st.floats(0, 1000)
    return st.one_of(
        st.sampled_from([0.0, -0.0, -1.0, 1e308, -1e308, float("nan"), float("inf"), 5e-324]),
        st.floats(allow_nan=True, allow_infinity=True, width=32),
    )


@cache
def _scalar(field: FieldDescriptor, pool: tuple[str, ...], calm: bool) -> st.SearchStrategy[Any]:
    t = field.type
    if t == F.TYPE_STRING:
        return strings(pool, calm)
    if t == F.TYPE_BYTES:
        if calm:
            return st.binary(max_size=8)
        return st.one_of(st.binary(max_size=64), st.just(b"\xff" * HUGE))
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return ints(*INT32, calm=calm)
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return ints(*INT64, calm=calm)
    if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return ints(0, 2**32 - 1, calm=calm)
    if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return ints(0, 2**64 - 1, calm=calm)
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return floats(calm)
    if t == F.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        if calm:
            return st.sampled_from([n for n in known if n] or known)
        # Proto3 enums are open: a client may send a number no version defines.
        return st.one_of(st.sampled_from(known), st.sampled_from([-1, 99, 2**31 - 1]))
    raise AssertionError(f"no strategy for {field.full_name} (type {t})")


@cache
def _timestamp_like(calm: bool) -> st.SearchStrategy[dict[str, int]]:
    """google.protobuf.Timestamp / Duration: near, far, before 1 AD, after 9999,
    and nanos outside 0..999,999,999."""
    near = st.integers(NOW - 3 * 86_400, NOW + 3 * 86_400)
    if calm:
        return st.fixed_dictionaries({"seconds": near})
    seconds = st.one_of(
        near,
        st.sampled_from([0, -1, -62_135_596_801, 253_402_300_800, 2**62, -(2**62), *INT64]),
        ints(*INT64),
    )
    nanos = st.one_of(st.integers(0, 999_999_999), st.sampled_from([-1, 10**9, *INT32]))
    return st.fixed_dictionaries({"seconds": seconds, "nanos": nanos})


WELL_KNOWN_TIME = {"google.protobuf.Timestamp", "google.protobuf.Duration"}


@cache
def _fill(
    descriptor: Descriptor, pool: tuple[str, ...], depth: int, calm: bool
) -> st.SearchStrategy[dict[str, Any]]:
    # Built once per message type and mode: hypothesis validates every new
    # strategy object, which costs more than drawing from it.
    return _plan(descriptor, pool, depth, calm)


@st.composite
def _plan(
    draw: st.DrawFn, descriptor: Descriptor, pool: tuple[str, ...], depth: int, calm: bool
) -> dict[str, Any]:
    """A plan of field values for one message: {field name: value or nested plan}.

    A calm plan is plausible throughout (ids that exist, small numbers, times
    near now) except, usually, for one hostile field: requests that get past the
    first check reach the rules behind it."""
    if descriptor.full_name in WELL_KNOWN_TIME:
        return draw(_timestamp_like(calm))
    if depth > 3:
        return {}
    hostile = ""
    if calm and depth == 0 and descriptor.fields:
        hostile = draw(st.sampled_from(["", *(f.name for f in descriptor.fields)]))
    plan: dict[str, Any] = {}
    chosen_oneofs: set[str] = set()
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and not oneof.name.startswith("_"):
            if oneof.name in chosen_oneofs or not draw(st.booleans()):
                continue
            chosen_oneofs.add(oneof.name)
        elif field.name != hostile and draw(st.integers(0, 9)) >= (9 if calm else 7):
            continue
        plan[field.name] = draw(_value(field, pool, depth, calm and field.name != hostile))
    return plan


@cache
def _one(
    field: FieldDescriptor, pool: tuple[str, ...], depth: int, calm: bool
) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_MESSAGE:
        return _fill(_children(field), pool, depth + 1, calm)
    return _scalar(field, pool, calm)


@cache
def _value(
    field: FieldDescriptor, pool: tuple[str, ...], depth: int, calm: bool
) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_MESSAGE and _children(field).GetOptions().map_entry:
        entry = _children(field)
        key = _scalar(entry.fields_by_name["key"], pool, calm)
        value = _one(entry.fields_by_name["value"], pool, depth, calm)
        return st.dictionaries(key, value, max_size=3)
    if field.is_repeated:
        few = st.lists(_one(field, pool, depth, calm), max_size=4)
        if calm:
            return few
        # Oversized batches repeat one plausible element: thousands, not gigabytes.
        many = st.builds(
            lambda v, n: [v] * n, _one(field, pool, depth, True), st.sampled_from(OVERSIZED)
        )
        return st.one_of(few, few, few, many)
    return _one(field, pool, depth, calm)


def _apply(message: Message, plan: dict[str, Any]) -> None:
    fields = message.DESCRIPTOR.fields_by_name
    for name, value in plan.items():
        field = fields[name]
        target: Any = getattr(message, name)
        if field.type == F.TYPE_MESSAGE and _children(field).GetOptions().map_entry:
            value_field = _children(field).fields_by_name["value"]
            for k, v in value.items():
                if value_field.type == F.TYPE_MESSAGE:
                    _apply(target[k], v)
                else:
                    target[k] = v
        elif field.is_repeated:
            if field.type == F.TYPE_MESSAGE:
                for item in value:
                    _apply(target.add(), item)
            else:
                target.extend(value)
        elif field.type == F.TYPE_MESSAGE:
            target.SetInParent()
            _apply(target, value)
        else:
            setattr(message, name, value)


def messages(descriptor: Descriptor, pool: Sequence[str] = ()) -> st.SearchStrategy[Message]:
    """Any message of `descriptor`'s type, valid on the wire, hostile in content:
    half of them wild throughout, half plausible but for one field."""

    def build(plan: dict[str, Any]) -> Message:
        message = message_class(descriptor)()
        _apply(message, plan)
        return message

    ids = tuple(pool)
    return st.one_of(_fill(descriptor, ids, 0, False), _fill(descriptor, ids, 0, True)).map(build)


# Bytes that do not parse as protobuf: a truncated varint, a length past the
# end, an invalid wire type, a group that never ends, then random noise.
NOT_PROTOBUF = [
    b"\x08",
    b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"\x0a\x10abc",
    b"\x0f",
    b"\x0b\x08\x01",
    b"\xff\xff\xff\xff",
    b"\x00",
    b"\x12\xff\xff\xff\xff\x0f",
]


def raw_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from(NOT_PROTOBUF), st.binary(min_size=1, max_size=512))
