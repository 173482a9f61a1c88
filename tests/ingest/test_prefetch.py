"""Reading ahead in a thread (hub/ingest/prefetch.py): order, errors, early stop; one reading thread per
stream whichever connector reads it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from hub.errors import SourceUnavailableError
from hub.ingest.prefetch import THREAD_NAME, prefetch


def test_items_arrive_in_order_and_are_produced_in_another_thread() -> None:
    threads: set[str] = set()

    def source() -> Iterator[int]:
        for i in range(50):
            threads.add(threading.current_thread().name)
            yield i

    assert list(prefetch(source())) == list(range(50))
    assert threads == {THREAD_NAME}


def test_an_error_of_the_source_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise SourceUnavailableError("GET http://x/items: HTTP 503 after 5 attempts", retryable=True)

    items = prefetch(source())
    assert next(items) == 1
    assert next(items) == 2
    with pytest.raises(SourceUnavailableError, match="HTTP 503"):
        next(items)


def test_stopping_early_stops_the_producer_and_closes_the_source() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    items = prefetch(source(), depth=1)
    assert next(items) == 0
    items.close()
    assert closed.wait(5)
    assert len(produced) <= 4  # read ahead a little, not the whole source
