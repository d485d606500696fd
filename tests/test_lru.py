"""The bounded LRU map behind the process's caches (compiled versions and templates,
loaded outputs)."""

from __future__ import annotations

import threading

import pytest

from flowledger.lru import LRU


def test_the_least_recently_used_goes_first() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now "b" is the oldest in use
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2


def test_weights_bound_the_total_and_the_newest_always_stays() -> None:
    cache: LRU[str, bytes] = LRU(10)
    cache.put("small", b"x" * 4, weight=4)
    cache.put("medium", b"x" * 6, weight=6)
    assert len(cache) == 2
    cache.put("large", b"x" * 50, weight=50)  # over the capacity alone: kept, others go
    assert len(cache) == 1 and "large" in cache
    cache.put("large", b"", weight=1)  # replaced: its old weight is given back
    cache.put("other", b"x" * 9, weight=9)
    assert len(cache) == 2


def test_a_none_value_is_told_from_an_absent_one_by_a_default() -> None:
    cache: LRU[str, None] = LRU(3)
    cache.put("null", None)
    absent = object()
    assert cache.get("null", absent) is None
    assert cache.get("missing", absent) is absent
    assert cache.get("missing") is None


def test_setdefault_keeps_one_object_per_key_across_threads() -> None:
    cache: LRU[int, object] = LRU(1000)
    results: list[object] = []
    barrier = threading.Barrier(8)

    def fill() -> None:
        barrier.wait()
        results.append(cache.setdefault(1, object()))

    threads = [threading.Thread(target=fill) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(r) for r in results}) == 1


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LRU(0)
