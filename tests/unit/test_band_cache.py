"""The ResolveBand cache never serves an answer older than the last write."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.identity.band_cache import BandCache

UIDS = ["u1", "u2", "u3"]
GUESTS = {"u1": "g1", "u2": "g1", "u3": "g2"}

operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(UIDS)),
        st.tuples(st.just("write_guest"), st.sampled_from(["g1", "g2"])),
        st.tuples(st.just("begin_read"), st.sampled_from(UIDS)),
        st.tuples(st.just("finish_read"), st.integers(0, 5)),
        st.tuples(st.just("get"), st.sampled_from(UIDS)),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(operations)
def test_cache_never_returns_a_stale_version(ops: list[tuple[str, object]]) -> None:
    """Model: the database holds a version per band; reads may be slow and
    finish after writes. Whatever interleaving, a cache hit equals the database."""
    cache: BandCache[int] = BandCache()
    database = dict.fromkeys(UIDS, 0)
    pending: list[tuple[str, int, int]] = []  # (uid, version read, generation at start)
    for op, arg in ops:
        if op == "write":
            database[str(arg)] += 1
            cache.invalidate_uid(str(arg))
        elif op == "write_guest":
            for uid, guest in GUESTS.items():
                if guest == arg:
                    database[uid] += 1
            cache.invalidate_guest(str(arg))
        elif op == "begin_read":
            pending.append((str(arg), database[str(arg)], cache.generation))
        elif op == "finish_read" and pending:
            uid, version, generation = pending.pop(hash(arg) % len(pending))
            cache.fill(uid, GUESTS[uid], version, generation)
        elif op == "get":
            hit, value = cache.get(str(arg))
            if hit:
                assert value == database[str(arg)]


def test_cache_is_bounded() -> None:
    cache: BandCache[int] = BandCache(max_entries=10)
    for i in range(100):
        cache.fill(f"u{i}", "g", i, cache.generation)
    assert len(cache) <= 10


def test_negative_answers_are_cached_until_a_band_is_linked() -> None:
    cache: BandCache[int] = BandCache()
    cache.fill("u9", None, None, cache.generation)
    assert cache.get("u9") == (True, None)
    cache.invalidate_uid("u9")
    assert cache.get("u9") == (False, None)
