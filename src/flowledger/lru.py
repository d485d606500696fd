"""A bounded, least-recently-used map, safe to share between threads.

The process's caches of things that never go stale but keep coming (compiled workflow
versions, compiled templates, loaded outputs) are bounded with it, so a server that runs
for months through thousands of pushed versions holds the ones in use, not all of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class LRU(Generic[K, V]):
    """At most ``capacity`` of weight (each entry weighs 1 unless told otherwise); the
    least recently used entries go first, but the newest one always stays."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"an LRU needs a capacity of at least 1, not {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """The value, now the most recently used; ``default`` when absent (give one of
        your own when None can be a value)."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return default
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: K, value: V, weight: int = 1) -> V:
        """Keep ``value`` under ``key`` (replacing one there) and return it."""
        with self._lock:
            self._put(key, value, weight)
            return value

    def setdefault(self, key: K, value: V) -> V:
        """The value already under ``key``, else ``value`` kept there: one object per key
        when two threads race to fill it."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                return item[0]
            self._put(key, value, 1)
            return value

    def _put(self, key: K, value: V, weight: int) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._weight -= old[1]
        self._items[key] = (value, weight)
        self._weight += weight
        while self._weight > self.capacity and len(self._items) > 1:
            _, (_, dropped) = self._items.popitem(last=False)
            self._weight -= dropped

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
