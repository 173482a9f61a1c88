"""Small in-process caches owned by the runtime (``hub.runtime.Hub``), never by a module.

- ``TtlCache``: values kept for a few seconds, loaded by one caller at a time: while one request
  reloads an expired entry, the others keep the previous value (a burst of concurrent reloads of the
  same metadata would stall every request at once). ``invalidate`` drops entries at once, for the
  events that change them (a dataset edited, a snapshot committed).
- ``LruCache``: values that never go stale (keyed by a snapshot), the least recently used dropped
  beyond ``max_entries``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values of ``load(key)`` kept ``ttl`` seconds; one load per key at a time (see module)."""

    def __init__(self, ttl: float, max_entries: int = 4096) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: set[K] = set()

    def get(self, key: K, load: Callable[[K], V], *, max_age: float | None = None) -> V:
        age = self.ttl if max_age is None else max_age
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < age:
            return hit[1]
        with self._lock:
            if hit is not None and key in self._loading:  # another caller reloads it: keep this one
                return hit[1]
            self._loading.add(key)
        try:
            value = load(key)
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now, value)
            return value
        finally:
            with self._lock:
                self._loading.discard(key)

    def peek(self, key: K) -> V | None:
        """The value of ``key`` if it is younger than ``ttl`` (never loads)."""
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def put(self, key: K, value: V) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)

    def invalidate(self, key: K | None = None) -> None:
        """Drop ``key``, or every entry."""
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class LruCache(Generic[K, V]):
    """At most ``max_entries`` values, the least recently used dropped first."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
