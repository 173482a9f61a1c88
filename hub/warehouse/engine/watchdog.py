"""One thread that interrupts DuckDB cursors whose time limit passed (cheaper than a timer per query)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

log = logging.getLogger("hub.warehouse.engine")


class Watchdog:
    """Interrupts watched cursors after their time limit.

    ``watch`` and ``release`` only touch a dict under a lock: they never wake the thread, which
    polls every ``TICK`` seconds while cursors are watched (and sleeps once none were for ``IDLE``
    seconds). A wake-up per query would make the query's thread wait for the GIL once more, up to
    the interpreter's switch interval (5 ms) when the event loop is busy: a third of the time of a
    filtered datastore_search under load. A query is interrupted at most ``TICK`` after its limit.

    This is the in-process engine's limit (queries the hub builds itself); SQL written outside the
    hub runs in query workers, which are killed when they pass their limit
    (``hub.warehouse.engine.pool``)."""

    TICK = 0.05
    IDLE = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadlines: dict[int, tuple[float, Any]] = {}
        self._seq = itertools.count(1)
        self._busy = threading.Event()
        self._closed = False
        threading.Thread(target=self._run, name="engine-watchdog", daemon=True).start()

    def watch(self, cursor: Any, seconds: float) -> int:
        ticket = next(self._seq)
        with self._lock:
            self._deadlines[ticket] = (time.monotonic() + seconds, cursor)
        if not self._busy.is_set():
            self._busy.set()
        return ticket

    def release(self, ticket: int) -> None:
        with self._lock:
            self._deadlines.pop(ticket, None)

    def close(self) -> None:
        self._closed = True
        self._busy.set()

    def _run(self) -> None:
        idle_since: float | None = None
        while not self._closed:
            self._busy.wait()
            time.sleep(self.TICK)
            now = time.monotonic()
            with self._lock:
                due = [t for t, (deadline, _) in self._deadlines.items() if deadline <= now]
                cursors = [self._deadlines.pop(t)[1] for t in due]
                empty = not self._deadlines
            for cursor in cursors:
                try:
                    cursor.interrupt()
                except Exception:  # the cursor was closed meanwhile
                    log.debug("interrupt of a closed cursor")
            if not empty:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since > self.IDLE:
                idle_since = None
                self._busy.clear()
                with self._lock:  # a watch() since the check above: keep polling
                    if self._deadlines:
                        self._busy.set()
