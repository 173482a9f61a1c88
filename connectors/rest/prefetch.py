"""Reading ahead: a batch iterator run in a background thread, a few batches ahead of its consumer.

While the consumer (the runner: validation, Parquet writing) works on one batch, the next page is
fetched and parsed, or the next XML block is cut and converted. Arrow, the JSON parser, sockets and
most of the validator release the GIL, so the two overlap on a second core. Used by the ``rest`` and
``xml`` connectors.

The source generator runs, and is closed, in the background thread; an exception it raises is raised
again in the consumer at the point where the batch would have come. When the consumer stops early,
the thread stops after the batch it is working on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()
_POLL_SECONDS = 0.1
_JOIN_SECONDS = 30.0


def prefetch(source: Iterator[T], depth: int = 1, name: str = "hub-prefetch") -> Iterator[T]:
    """The items of ``source``, produced in a thread up to ``depth`` items (plus one in hand) ahead."""
    ready: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def hand_over(item: object, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                ready.put((item, error), timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not hand_over(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            hand_over(_END, exc)
            return
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # in this thread: a generator is closed where it runs
        hand_over(_END)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(_JOIN_SECONDS)
