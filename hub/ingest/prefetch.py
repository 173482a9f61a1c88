"""Reading ahead: the items of a source produced in a thread of its own, a few items ahead of its consumer.

While the consumer (the runner: validation, Parquet writing) works on one batch, the source fetches and
decodes the next one (network waits, JSON and XML parsing, Arrow kernels: mostly outside the GIL), so
the two overlap on a second core.

There is one reading thread per stream. The runner reads a stream through ``prefetch`` unless the
connector's ``Connector.prefetch(stream)`` says no: the ``files`` connector on Parquet (Arrow decodes
in threads of its own), and the ``rest`` and ``xml`` connectors, whose ``read`` reads ahead itself with
this function (so that any caller of ``read``, the runner or not, gets the overlap).

The source runs, and is closed, in the thread (a generator is closed where it runs); an exception it
raises is raised again in the consumer where the item would have come. Closing the consumer's
generator (``close()``; the runner does when a run ends, failed or not) stops the thread after the
item it is producing, and closes the source.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

THREAD_NAME = "hub-prefetch"
_POLL_SECONDS = 0.1
_JOIN_SECONDS = 30.0


class _End:
    """The last item of the queue: the source ended, or failed with ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(source: Iterator[T], depth: int = 1, name: str = THREAD_NAME) -> Generator[T, None, None]:
    """The items of ``source``, produced in a thread up to ``depth`` items (plus one in hand) ahead."""
    ready: queue.Queue[T | _End] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def hand_over(entry: T | _End) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=_POLL_SECONDS)
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
            hand_over(_End(exc))
            return
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # in this thread: a generator is closed where it runs
        hand_over(_End())

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            entry = ready.get()
            if isinstance(entry, _End):
                if entry.error is not None:
                    raise entry.error
                return
            yield entry
    finally:
        stop.set()
        thread.join(_JOIN_SECONDS)
