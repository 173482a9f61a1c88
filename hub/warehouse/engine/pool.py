"""The query workers: a bounded pool of processes that run SQL written outside the hub.

Every SQL door (DataStore SQL, ``/api/v1/query``, the PostgreSQL protocol, release builds, ``hub
query``) runs its query here, never in the server process, so that no query can take the server's
memory or time:

- ``size`` worker processes (``HUB_QUERY_WORKERS``), started on first use; each runs the locked engine
  (``hub.warehouse.engine.duck``) under an address-space limit (``hub.warehouse.engine.worker``);
- a query waits for a free worker while at most ``queue`` others wait (``HUB_QUERY_QUEUE``); beyond
  that, or when no worker frees up within the query's time limit, it is refused at once with
  ``BusyError`` (503, ``Retry-After``);
- the time limit counts the time the worker computes (not the time a slow client takes to read the
  result): when it passes, the worker is killed (SIGKILL, not asked) and replaced;
- results come back as Arrow record batches, one at a time on request, so a result of any size
  streams in constant memory; a stream closed early cancels the query.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from hub.errors import BusyError, QueryError
from hub.warehouse.engine import protocol as p
from hub.warehouse.engine.tables import TableSource

log = logging.getLogger("hub.warehouse.engine.pool")

_STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class PoolConfig:
    size: int = 2
    queue: int = 16
    memory_mb: int = 1024
    memory_limit: str = "512MB"
    cache_mb: int = 512
    threads: int = 2
    temp_dir: Path | None = None


_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size (a pipe holds 64 KiB by default)


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, config: PoolConfig) -> None:
        env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.warehouse.engine.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
            bufsize=0,  # raw pipes: select() then sees every byte that arrived
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout
        with contextlib.suppress(OSError):  # Linux: batches of megabytes in fewer, larger reads
            fcntl.fcntl(self.stdout.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        self.jobs = 0
        p.send_json(
            self.stdin,
            p.INIT,
            {
                "memory_mb": config.memory_mb,
                "memory_limit": config.memory_limit,
                "cache_mb": config.cache_mb,
                "threads": config.threads,
                "temp_dir": str(config.temp_dir or Path("/tmp/hub-duckdb")),  # noqa: S108
            },
        )
        kind, payload = self.receive(_STARTUP_SECONDS)
        if kind != p.READY:
            self.kill()
            raise QueryError("a query worker did not start")
        self.info: dict[str, Any] = p.loads(payload)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def receive(self, timeout: float) -> tuple[bytes, bytearray]:
        """The next frame, or ``TimeoutError`` once ``timeout`` seconds passed without one."""
        if not _readable(self.stdout, timeout):
            raise TimeoutError
        return p.receive(self.stdout)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for pipe in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def _readable(pipe: Any, timeout: float) -> bool:
    """Whether bytes can be read from ``pipe`` (unbuffered, so select() sees all) within ``timeout``."""
    ready, _, _ = select.select([pipe], [], [], max(0.0, timeout))
    return bool(ready)


class ResultStream:
    """A query's result, read batch by batch from its worker; iterate, then ``close()``."""

    def __init__(self, pool: WorkerPool, worker: _Worker, timeout: float, schema: pa.Schema) -> None:
        self._pool = pool
        self._worker: _Worker | None = worker
        self._remaining = timeout
        self._timeout = timeout
        self.schema = schema
        self.rows = 0
        self.done = False

    def _ask(self, kind: bytes | None) -> tuple[bytes, bytearray]:
        """Send ``kind`` (None: the request went ahead) and wait for the worker's answer; the wait
        counts against the time limit."""
        worker = self._worker
        assert worker is not None
        started = time.monotonic()
        try:
            if kind is not None:
                p.send(worker.stdin, kind)
            frame = worker.receive(self._remaining)
        except TimeoutError:
            self._finish(kill=True)
            raise QueryError("Search took too long", timeout_seconds=self._timeout) from None
        except (p.ProtocolError, OSError, ValueError):
            self._finish(kill=True)
            raise _crashed(worker) from None
        self._remaining -= time.monotonic() - started
        return frame

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch, _message in self.messages():
            yield batch

    def messages(self) -> Iterator[tuple[pa.RecordBatch, bytearray]]:
        """The batches, each with the Arrow IPC message it came in (its encapsulated message, as
        ``RecordBatch.serialize`` writes it, in ``schema``): an Arrow IPC stream of the result can pass
        the bytes on instead of writing the batch again."""
        asked = False
        while not self.done:
            kind, payload = self._ask(None if asked else p.NEXT)
            asked = False
            if kind == p.BATCH:
                batch = pa.ipc.read_record_batch(pa.py_buffer(payload), self.schema)
                batch.validate()
                self.rows += batch.num_rows
                # one batch ahead: the worker makes the next while this one is encoded and sent (a
                # close() meanwhile reads that answer before the cancel's)
                self._send_ahead()
                asked = self._worker is not None
                yield batch, payload
            elif kind == p.END:
                self._finish(info=p.loads(payload))
            elif kind == p.ERROR:
                self._finish()
                raise _worker_error(p.loads(payload))
            else:
                self._finish(kill=True)
                raise QueryError("the query worker sent an unexpected answer")

    def _send_ahead(self) -> None:
        worker = self._worker
        if worker is None:
            return
        try:
            p.send(worker.stdin, p.NEXT)
        except (p.ProtocolError, OSError, ValueError):
            self._finish(kill=True)
            raise _crashed(worker) from None

    def read_all(self, max_rows: int | None = None) -> tuple[pa.Table, bool]:
        """The whole result (at most ``max_rows`` rows, and whether there were more)."""
        batches: list[pa.RecordBatch] = []
        rows = 0
        truncated = False
        try:
            for batch in self:
                if max_rows is not None and rows + batch.num_rows > max_rows:
                    batches.append(batch.slice(0, max_rows - rows))
                    truncated = True
                    break
                batches.append(batch)
                rows += batch.num_rows
        finally:
            self.close()
        return pa.Table.from_batches(batches, schema=self.schema), truncated

    def close(self) -> None:
        """End the query: cancel it in the worker if it did not finish (the worker is then free)."""
        if self._worker is None:
            return
        if self.done:
            self._finish()
            return
        try:
            p.send(self._worker.stdin, p.CANCEL)
            kind, _ = self._worker.receive(5.0)
            while kind == p.BATCH:  # the batch asked ahead, on its way
                kind, _ = self._worker.receive(5.0)
            self._finish(kill=kind not in (p.END, p.ERROR))
        except (TimeoutError, p.ProtocolError, OSError, ValueError):
            self._finish(kill=True)

    def interrupt(self) -> None:
        """Stop the query from another thread (a client's cancel request): its worker is killed, as at
        the time limit, since a computing worker cannot be asked; the reading thread then ends with a
        ``QueryError`` and the pool replaces the worker."""
        worker = self._worker
        if worker is not None:
            with contextlib.suppress(OSError):
                worker.proc.kill()

    def _finish(self, *, kill: bool = False, info: dict[str, Any] | None = None) -> None:
        self.done = True
        worker, self._worker = self._worker, None
        if worker is not None:
            self._pool._release(worker, healthy=not kill, info=info)

    def __enter__(self) -> ResultStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Canceled(Exception):
    """The caller cancelled the query while its worker computed (internal to ``WorkerPool.run``)."""


def _first_answer(worker: _Worker, timeout: float, cancel: threading.Event | None) -> tuple[bytes, bytearray]:
    """The worker's first frame for a job, looking at ``cancel`` every 50 ms while it computes."""
    if cancel is None:
        return worker.receive(timeout)
    deadline = time.monotonic() + timeout
    while not _readable(worker.stdout, min(0.05, max(0.0, deadline - time.monotonic()))):
        if cancel.is_set():
            raise _Canceled
        if time.monotonic() >= deadline:
            raise TimeoutError
    return p.receive(worker.stdout)


def _crashed(worker: _Worker) -> QueryError:
    code = worker.proc.poll()
    if code == -9:
        return QueryError("The query worker was stopped (time or memory limit).", kind="killed")
    return QueryError(
        "The query worker stopped while running the query (it ran out of memory or crashed); "
        "aggregate or filter first.",
        kind="memory",
    )


def _worker_error(info: dict[str, Any]) -> QueryError:
    return QueryError(str(info.get("message") or "the query failed"), kind=str(info.get("kind") or "invalid"))


class WorkerPool:
    """``size`` query workers, started on first use, and a bounded queue of queries waiting."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._count = 0  # workers alive or starting
        self._starting = 0  # of which starting: a query may wait for these even when the queue is full
        self._waiting = 0
        self._closed = False

    # --- workers ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers now, side by side (a server does this at startup, so that its first
        query waits for none)."""
        threads = []
        for _ in range(self.config.size):
            with self._cond:
                if self._count >= self.config.size or self._closed:
                    break
                self._count += 1
            threads.append(threading.Thread(target=self._start_one, name="query-worker-start", daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _start_one(self) -> None:
        with self._cond:
            self._starting += 1
        try:
            self._spawn_into_idle()
        except Exception:  # the next query starts one itself
            log.exception("a query worker could not be started")
        finally:
            with self._cond:
                self._starting -= 1

    def _spawn_into_idle(self) -> None:
        try:
            worker = _Worker(self.config)
        except Exception:
            with self._cond:
                self._count -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            if self._closed:
                worker.kill()
                return
            self._idle.append(worker)
            self._cond.notify()

    def _replace_later(self) -> None:
        threading.Thread(target=self._start_one, name="query-worker-start", daemon=True).start()

    def _acquire(self, timeout: float) -> _Worker:
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed:
                raise QueryError("the query engine is shut down")
            full = self._waiting >= self.config.queue + self._starting
            if not self._idle and self._count >= self.config.size and full:
                raise BusyError(
                    f"All {self.config.size} query workers are busy and {self._waiting} queries are "
                    "waiting; retry in a moment.",
                    retry_after=2,
                )
            self._waiting += 1
            try:
                while True:
                    while self._idle:
                        worker = self._idle.pop()
                        if worker.alive:
                            return worker
                        self._count -= 1
                    if self._count < self.config.size:
                        self._count += 1
                        break  # start one outside the lock
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise BusyError(
                            "No query worker became free within the time limit; retry in a moment.",
                            retry_after=5,
                        )
                    self._cond.wait(left)
            finally:
                self._waiting -= 1
        try:
            return _Worker(self.config)
        except Exception:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker, *, healthy: bool, info: dict[str, Any] | None = None) -> None:
        recycle = not healthy or not worker.alive
        if info and int(info.get("rss") or 0) > self._rss_ceiling(worker):
            recycle = True  # the worker kept memory a query used: replace it while idle
        if recycle:
            worker.kill()
            with self._cond:
                self._count -= 1
                self._cond.notify()
                replace = not self._closed
            if replace:
                with self._cond:
                    self._count += 1
                self._replace_later()
            return
        worker.jobs += 1
        with self._cond:
            if self._closed:
                worker.kill()
                return
            self._idle.append(worker)
            self._cond.notify()

    def _rss_ceiling(self, worker: _Worker) -> int:
        return int((self.config.cache_mb + self.config.memory_mb // 2 + 400) << 20)

    # --- queries ------------------------------------------------------------------------------
    def run(
        self,
        sql: str,
        tables: Mapping[str, TableSource],
        *,
        params: Sequence[Any] | None = None,
        timeout: float = 30.0,
        batch_rows: int = 16_384,  # about 1 MB a batch: the worker makes the next while one is sent
        cancel: threading.Event | None = None,
    ) -> ResultStream:
        """Start ``sql`` in a worker with exactly ``tables`` registered; the stream of its result.

        The worker answers once the query's first result is ready, which for an aggregate means the
        whole computation: while it computes, setting ``cancel`` kills the worker (it cannot be asked)
        and raises ``QueryError`` of kind ``canceled``. The caller must ``close()`` the stream (or use it
        in a ``with`` block)."""
        started = time.monotonic()
        worker = self._acquire(timeout)
        job = {
            "sql": sql,
            "params": list(params or []),
            "tables": [{"name": n, "source": s.to_wire()} for n, s in tables.items()],
            "batch_rows": batch_rows,
        }
        remaining = max(0.1, timeout - (time.monotonic() - started))
        try:
            p.send_json(worker.stdin, p.JOB, job)
            kind, payload = _first_answer(worker, remaining, cancel)
        except _Canceled:
            self._release(worker, healthy=False)
            raise QueryError("canceling statement due to user request", kind="canceled") from None
        except TimeoutError:
            self._release(worker, healthy=False)
            raise QueryError("Search took too long", timeout_seconds=timeout) from None
        except (p.ProtocolError, OSError, ValueError):
            self._release(worker, healthy=False)
            raise _crashed(worker) from None
        if kind == p.ERROR:
            self._release(worker, healthy=True)
            raise _worker_error(p.loads(payload))
        if kind != p.SCHEMA:
            self._release(worker, healthy=False)
            raise QueryError("the query worker sent an unexpected answer")
        schema = pa.ipc.read_schema(pa.py_buffer(payload))
        return ResultStream(self, worker, max(0.1, timeout - (time.monotonic() - started)), schema)

    def query(
        self,
        sql: str,
        tables: Mapping[str, TableSource],
        *,
        params: Sequence[Any] | None = None,
        timeout: float = 30.0,
        max_rows: int | None = None,
    ) -> tuple[pa.Table, bool]:
        """The whole result of ``sql`` (at most ``max_rows`` rows; and whether there were more)."""
        return self.run(sql, tables, params=params, timeout=timeout).read_all(max_rows)

    @property
    def workers(self) -> list[int]:
        """Process ids of the idle workers (tests)."""
        with self._cond:
            return [w.proc.pid for w in self._idle]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:
            with contextlib.suppress(OSError):
                worker.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=2)
            worker.kill()
