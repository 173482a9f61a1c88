"""Streaming response bodies made in constant memory, shared by the download routes and the SQL door.

- ``Producer`` runs a blocking chunk generator (a query worker's batches through an encoder) in one
  dedicated thread and hands its chunks over a small bounded queue; ``finish`` runs in that thread
  once the chunks are done, however they ended (the place to close a query and audit it).
- ``Streamed`` is the response whose body a ``Producer`` makes; the producer is stopped however the
  response ends, also when the client leaves before the first chunk.
- ``gzip_chunks`` compresses a chunk stream on the fly (text formats, when the client accepts gzip).
"""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator

import pyarrow as pa
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from hub.errors import QueryError
from hub.warehouse.engine.pool import ResultStream

log = logging.getLogger("hub.api.streaming")


def gzip_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks`` gzip-compressed (level 1: fast, for bodies streamed as they are made)."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = z.compress(chunk)
        if out:
            yield out
    yield z.flush()


class Producer:
    """Runs a blocking chunk generator in ONE dedicated thread, handing chunks over a bounded queue.

    Arrow allocates per thread (mimalloc heaps); producing every chunk on the same thread keeps the
    server's memory flat, and the bounded queue keeps at most a few chunks in flight. ``finish`` runs
    in that thread once the chunks are done, whether they ran out, failed or were stopped."""

    _END = object()

    def __init__(
        self, chunks: Iterator[bytes], *, finish: Callable[[], None] | None = None, depth: int = 4
    ) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._chunks = chunks
        self._finish = finish
        threading.Thread(target=self._run, name="stream-producer", daemon=True).start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for chunk in self._chunks:
                if not self._put(chunk):
                    break
        except BaseException as exc:  # handed to the consumer
            self._put(exc)
        finally:
            try:
                close = getattr(self._chunks, "close", None)
                if close is not None:
                    close()
                if self._finish is not None:
                    self._finish()
            except Exception:
                log.exception("a streamed response did not end cleanly")
            self._put(self._END)

    def stop(self) -> None:
        self._stop.set()

    async def chunks(self) -> AsyncIterator[bytes | memoryview]:
        try:
            while True:
                item = await run_in_threadpool(self._queue.get)
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, (bytes, bytearray))
                yield item if isinstance(item, bytes) else memoryview(item)  # a worker's batch, uncopied
        finally:
            self._stop.set()


class Streamed(StreamingResponse):
    """A body produced by ``Producer``, stopped however the response ends (also when the client
    leaves before the first chunk, when the body is never iterated)."""

    def __init__(self, producer: Producer, *, media_type: str, headers: dict[str, str]) -> None:
        super().__init__(producer.chunks(), media_type=media_type, headers=headers)
        self.producer = producer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.producer.stop()


class QueryRows:
    """A query worker's result as a response body reads it: ``prime()`` reads the first batch before
    the status is sent (a query that fails is then the status, not a cut body), ``batches()`` yields
    them all and records a failure met on the way in ``error``. Subclasses close and audit it."""

    def __init__(self, result: ResultStream) -> None:
        self.result = result
        self.error: str | None = None
        self._rows = result.messages()
        self._first: list[tuple[pa.RecordBatch, bytearray]] = []
        self._closed = False

    def prime(self) -> None:
        first = next(self._rows, None)
        if first is not None:
            self._first.append(first)

    def messages(self) -> Iterator[tuple[pa.RecordBatch, bytearray]]:
        """The batches with their Arrow IPC messages (``ResultStream.messages``)."""
        try:
            while self._first:
                yield self._first.pop()
            yield from self._rows
        except QueryError as exc:
            self.error = exc.message
            raise

    def batches(self) -> Iterator[pa.RecordBatch]:
        for batch, _message in self.messages():
            yield batch
