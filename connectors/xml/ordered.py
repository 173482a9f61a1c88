"""Blocks decoded in parallel threads, batches handed on in file order.

The fast lane spends most of its time in numpy and Arrow kernels, which release the GIL, so two
blocks can be decoded at once on two cores. ``map_in_order`` first gives the first item to ``first``
(the reader sets itself up from it: the fields, the fast lane), then keeps a few items in flight in a
thread pool and yields the results in the order of the items; when ``first`` says the first item
must be read before any other, it is read alone. An exception of ``fn`` is raised where its result
would have come; when the consumer stops early, the items not started are cancelled and the running
ones finish.

The pool is shared by all readers of the process and lives as long as it: its threads keep their
scratch buffers and malloc arenas warm from one file to the next.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

DECODERS = min(4, os.cpu_count() or 1)  # threads that decode blocks
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(DECODERS, thread_name_prefix="hub-xml-decode")
        return _pool


def _forget_pool() -> None:
    """In a forked child the pool's threads are gone: start a new pool there when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def map_in_order(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = DECODERS,
    first: Callable[[T], bool] | None = None,
) -> Iterator[R]:
    """``fn(item)`` for each item, in order, up to ``workers + 1`` in flight; ``first(item)`` is
    called with the first item before, and unless it returns True, that item is read alone."""
    if workers <= 1:
        yield from (fn(item) for item in items)
        return
    it = iter(items)
    try:
        head = next(it)
    except StopIteration:
        return
    pool = _shared_pool()
    pending: deque[Future[R]] = deque()
    if first is not None and first(head):
        pending.append(pool.submit(fn, head))
    else:
        yield pool.submit(fn, head).result()  # alone, but in the pool: its threads' buffers are warm
    try:
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        for future in pending:
            if not future.cancelled():
                future.exception()  # wait: nothing of this read runs on after it ends
