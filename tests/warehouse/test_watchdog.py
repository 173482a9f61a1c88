"""The DataStore watchdog interrupts cursors past their time limit, and only those."""

from __future__ import annotations

import time
from typing import Any

from hub.warehouse.engine.watchdog import Watchdog


class FakeCursor:
    def __init__(self) -> None:
        self.interrupted_at: float | None = None

    def interrupt(self) -> None:
        self.interrupted_at = time.monotonic()


def wait_for(condition: Any, seconds: float = 3.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_a_cursor_past_its_limit_is_interrupted_once_a_released_one_never() -> None:
    dog = Watchdog()
    slow, quick = FakeCursor(), FakeCursor()
    start = time.monotonic()
    dog.watch(slow, 0.2)
    dog.release(dog.watch(quick, 0.2))
    assert wait_for(lambda: slow.interrupted_at is not None)
    assert slow.interrupted_at is not None
    assert 0.2 <= slow.interrupted_at - start < 0.2 + Watchdog.TICK + 0.5
    time.sleep(0.3)
    assert quick.interrupted_at is None


def test_the_watchdog_sleeps_when_idle_and_wakes_for_a_new_cursor(monkeypatch: Any) -> None:
    monkeypatch.setattr(Watchdog, "IDLE", 0.1)
    dog = Watchdog()
    dog.release(dog.watch(FakeCursor(), 5.0))
    assert wait_for(lambda: not dog._busy.is_set())  # polled, found nothing watched, went to sleep
    late = FakeCursor()
    dog.watch(late, 0.05)
    assert wait_for(lambda: late.interrupted_at is not None)
