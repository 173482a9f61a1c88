"""Where a result's rows come from: a query worker's stream (the warehouse) or a table the endpoint
made itself (catalogue answers, ``SHOW``). Either hands out Arrow batches, a given number of rows at a
time, so that a portal or a cursor with a row limit streams in constant memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pyarrow as pa
from sqlalchemy.orm import Session

from hub.sql.door import Prepared
from hub.sql.limits import Slot
from hub.warehouse.engine.pool import ResultStream

log = logging.getLogger("hub.pgwire")


class Rows:
    """Batches of a result, taken a number of rows at a time."""

    schema: pa.Schema
    rows_taken: int = 0
    exhausted: bool = False

    def _batches(self) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def __init__(self) -> None:
        self._pending: pa.RecordBatch | None = None
        self._source: Iterator[pa.RecordBatch] | None = None

    def take(self, limit: int | None) -> Iterator[pa.RecordBatch]:
        """The next ``limit`` rows (all the rest with None) as batches."""
        left = limit
        if self._source is None:
            self._source = self._batches()
        while not self.exhausted and (left is None or left > 0):
            batch = self._pending
            self._pending = None
            if batch is None:
                try:
                    batch = next(self._source)
                except StopIteration:
                    self.exhausted = True
                    self.finished()
                    return
            if left is not None and batch.num_rows > left:
                self._pending = batch.slice(left)
                batch = batch.slice(0, left)
            if left is not None:
                left -= batch.num_rows
            self.rows_taken += batch.num_rows
            if batch.num_rows:
                yield batch

    def finished(self) -> None:
        """Every row was taken."""

    def close(self, error: str | None = None) -> None:
        """No more rows will be taken (``error``: why the result ended early)."""

    def cancel(self) -> None:
        """Stop the computation now (a CancelRequest, from another thread)."""


class TableRows(Rows):
    """The rows of an Arrow table the endpoint made."""

    def __init__(self, table: pa.Table) -> None:
        super().__init__()
        self.table = table
        self.schema = table.schema

    def _batches(self) -> Iterator[pa.RecordBatch]:
        yield from self.table.to_batches(max_chunksize=65_536)


class StreamRows(Rows):
    """The rows of a warehouse query, from its query worker; audited when the result ends."""

    def __init__(
        self,
        stream: ResultStream,
        prepared: Prepared,
        session: Session,
        slot: Slot,
        defer: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        super().__init__()
        self.slot = slot
        self.stream = stream
        self.prepared = prepared
        self.session = session
        self.schema = stream.schema
        self._done = False
        self._ending = False
        self._defer = defer

    def _batches(self) -> Iterator[pa.RecordBatch]:
        yield from self.stream

    def finished(self) -> None:
        """Every row was sent: the read is audited (with ``defer``, once the client has its answer:
        the connection writes the entry after flushing, before it reads the next message)."""
        if self._defer is None:
            self._end("allowed", None)
        elif not self._ending:
            self._ending = True
            self._defer(lambda: self._end("allowed", None))

    def close(self, error: str | None = None) -> None:
        if not self._done and not self._ending:  # (a finished result's entry is on its way)
            self.stream.close()
            self._end("error" if error else "allowed", error)

    def _end(self, outcome: str, reason: str | None) -> None:
        if self._done:
            return
        self._done = True
        try:
            self.prepared.audit(outcome, self.rows_taken, reason)
            self.session.commit()
        except Exception:
            log.exception("the audit entry of a PostgreSQL query could not be written")
            self.session.rollback()
        finally:
            self.session.close()
            self.slot.release(self.rows_taken)

    def cancel(self) -> None:
        self.stream.interrupt()


class StartingRows(Rows):
    """A warehouse query until its worker has the first rows: a cancel request stops it there."""

    def __init__(self) -> None:
        super().__init__()
        self.schema = pa.schema([])
        self.event = threading.Event()

    def _batches(self) -> Iterator[pa.RecordBatch]:
        return iter(())

    def cancel(self) -> None:
        self.event.set()
