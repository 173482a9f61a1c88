"""Query jobs: long queries run in the background, their result kept as a Parquet file for a while.

``POST /api/v1/queries`` checks and authorizes a query at once, through the one door (``hub.sql.door``:
refusals and bad SQL are answered then, exactly as ``/api/v1/query`` answers them), and hands the
approved query to ``QueryJobs`` (owned by the runtime: ``hub.jobs``), which

- records the job in the metadata database (``hub.sql.models.QueryJob``), so that every API process
  and a restarted one see it;
- runs it in a bounded executor (``HUB_QUERY_JOB_WORKERS`` at once) in a query worker like any other
  query, with the job's own time limit (``HUB_QUERY_JOB_TIMEOUT_SECONDS``), writing the batches to
  ``DATA_DIR/query-results/<id>.parquet`` as they come (constant memory) and its progress (rows so
  far, seconds) to the database about once a second;
- audits the reads like every SQL door, with the rows the job returned (or the error);
- cancels on request: between two batches the job closes its stream, which frees the worker
  (``ResultStream.close``); a job of another process sees the request at its next progress update;
- keeps the result ``HUB_QUERY_RESULT_TTL_HOURS``, then deletes the file (the job stays listed).

A job belongs to the caller who submitted it (``hub.sql.limits.client_key``): to anyone else it does
not exist. States: queued → running → succeeded | failed | cancelled. A job whose process ended
(a restart, a crash) is marked failed "interrupted": at a clean shutdown by the process itself; after
a crash by the next process on the same host (the runner's pid is gone) or by any process once the
job's heartbeat is older than ``STALE``.

Errors (besides the door's, at submission): ``NotFoundError`` (404: no such job, or another caller's),
``ConflictError`` (409: the job has no result, it is not finished or did not succeed),
``ResultGoneError`` (410: the result expired or was deleted), ``TooManyQueriesError`` (429:
``HUB_QUERY_JOBS_PER_CLIENT``), ``QuotaExceededError`` (429: ``HUB_QUERY_CLIENT_DAILY_ROWS``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyarrow.parquet as pq
from sqlalchemy import CursorResult, Result, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from hub.db import transaction, utcnow
from hub.errors import BusyError, ConflictError, NotFoundError, QueryError
from hub.settings import Settings
from hub.sql.limits import ClientLimits, TooManyQueriesError
from hub.sql.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, UNFINISHED, QueryJob
from hub.warehouse.engine.pool import ResultStream, WorkerPool

if TYPE_CHECKING:
    from hub.sql.door import Prepared

log = logging.getLogger("hub.sql.jobs")

RESULTS_DIR = "query-results"
"""Where result files live, under DATA_DIR."""
PROGRESS_SECONDS = 1.0
"""How often a running job writes its progress (and reads a cancel request of another process)."""
STALE = timedelta(minutes=5)
"""A queued or running job whose runner has not been heard of for this long was interrupted."""
INTERRUPTED = "interrupted: the server process that ran the job stopped; submit it again"


class ResultGoneError(NotFoundError):
    """The job's result file expired or was discarded (410)."""

    code = "result_gone"
    http_status = 410


class _Cancelled(Exception):
    """The job's owner cancelled it (internal to the job's thread)."""


@dataclass
class _Live:
    """A job of this process: its cancel request and progress, as the job's thread sees them."""

    owner: str
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    rows: int = 0
    started: float | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class QueryJobs:
    """The query jobs of one hub (see the module docstring)."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], pool: WorkerPool, limits: ClientLimits
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self._pool = pool
        self._limits = limits
        self.host = socket.gethostname()
        self.runner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.results_dir = settings.data_dir / RESULTS_DIR
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(settings.query_job_workers, thread_name_prefix="query-job")
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopping = False
        self.recover()
        self.sweep()
        ttl = settings.query_result_ttl_hours * 3600
        self._tick = max(0.5, min(30.0, ttl / 2))
        self._sweeper = threading.Thread(target=self._sweep_loop, name="query-jobs-sweeper", daemon=True)
        self._sweeper.start()

    # --- submitting -----------------------------------------------------------------------------
    def submit(
        self,
        owner: str,
        sql: str,
        as_of: Mapping[str, str | int] | None,
        prepare: Callable[[Session], Prepared],
    ) -> QueryJob:
        """Record and queue a job of ``owner``. ``prepare(session)`` checks and authorizes the query
        through the door (its errors propagate: no job is made); the session then goes with the job,
        whose reads it audits when the job ends."""
        with transaction(self._sessions) as s:
            unfinished = s.scalar(
                select(func.count())
                .select_from(QueryJob)
                .where(QueryJob.owner == owner, QueryJob.status.in_(UNFINISHED))
            )
        limit = self.settings.query_jobs_per_client
        if (unfinished or 0) >= limit:
            raise TooManyQueriesError(
                f"This client has {unfinished} query jobs queued or running (HUB_QUERY_JOBS_PER_CLIENT = "
                f"{limit}); wait for one to end or cancel one.",
                retry_after=5,
            )
        self._limits.check_quota(owner)
        session = self._sessions()
        try:
            prepared = prepare(session)
            session.commit()  # ends the read transaction; the deferred audit entries wait in the reads
        except BaseException:
            session.rollback()
            session.close()
            raise
        job = QueryJob(
            owner=owner,
            sql=sql,
            as_of=dict(as_of or {}),
            status=QUEUED,
            rows=0,
            snapshots=[{"table": r.source.key, "snapshot": r.source.snapshot_id} for r in prepared.reads],
            cancel_requested=False,
            created=utcnow(),
            runner=self.runner,
            heartbeat_at=utcnow(),
        )
        with transaction(self._sessions) as s:
            s.add(job)
        with self._lock:
            self._live[job.id] = _Live(owner)
        try:
            self._executor.submit(self._run, job.id, owner, prepared, session)
        except RuntimeError:  # the executor is shut down: the hub is stopping
            self._end_live(job.id)
            session.close()
            self._finish(job.id, FAILED, error=INTERRUPTED, from_status=(QUEUED,))
            raise BusyError("The hub is stopping; submit the job again in a moment.", retry_after=5) from None
        return job

    # --- running --------------------------------------------------------------------------------
    def _run(self, job_id: str, owner: str, prepared: Prepared, session: Session) -> None:
        live = self._live.get(job_id)
        try:
            if live is None or live.cancel.is_set():
                self._finish(job_id, *self._cancelled(), from_status=(QUEUED,))
                return
            self._execute(job_id, owner, prepared, session, live)
        except Exception:  # never leave a job "running" behind
            log.exception("query job %s failed unexpectedly", job_id)
            message = "the job failed unexpectedly (see the server's log)"
            with contextlib.suppress(Exception):
                prepared.audit("error", live.rows if live else None, message)
                session.commit()
            self._finish(job_id, FAILED, error=message)
        finally:
            with contextlib.suppress(Exception):
                session.close()
            self._end_live(job_id)

    def _execute(self, job_id: str, owner: str, prepared: Prepared, session: Session, live: _Live) -> None:
        with transaction(self._sessions) as s:
            started = s.execute(
                update(QueryJob)
                .where(QueryJob.id == job_id, QueryJob.status == QUEUED)
                .values(status=RUNNING, started=utcnow(), heartbeat_at=utcnow(), runner=self.runner)
            )
        if _rowcount(started) == 0:  # cancelled while it waited
            return
        live.started = time.monotonic()
        target = self.results_dir / f"{job_id}.parquet"
        part = target.with_name(f".{job_id}.parquet.part")
        error: str | None = None
        outcome = FAILED
        try:
            result = self._open(prepared, live)
            with result:
                self._write(job_id, result, part, live)
            os.replace(part, target)
            outcome = SUCCEEDED
        except _Cancelled:
            outcome = CANCELLED
        except QueryError as exc:
            error = exc.message
        finally:
            if outcome != SUCCEEDED:
                with contextlib.suppress(OSError):
                    part.unlink()
        rows = live.rows
        if outcome == SUCCEEDED:
            prepared.audit("allowed", rows)
        elif error:
            prepared.audit("error", rows, error)
        else:
            prepared.audit("allowed", rows, "interrupted" if self._stopping else "cancelled by its owner")
        session.commit()
        self._limits.count(owner, rows)
        seconds = time.monotonic() - live.started
        if outcome == SUCCEEDED:
            done = self._finish(
                job_id,
                SUCCEEDED,
                rows=rows,
                seconds=seconds,
                result_path=str(target.relative_to(self.settings.data_dir)),
                result_bytes=target.stat().st_size,
            )
            if not done:  # cancelled at the last moment: the result is not kept
                target.unlink(missing_ok=True)
        elif outcome == CANCELLED:
            status, extra = self._cancelled()
            self._finish(job_id, status, rows=rows, seconds=seconds, **extra)
        else:
            self._finish(job_id, FAILED, rows=rows, seconds=seconds, error=error)

    def _cancelled(self) -> tuple[str, dict[str, Any]]:
        """How a stopped job ends: cancelled by its owner, or interrupted by the server's stop."""
        if self._stopping:
            return FAILED, {"error": INTERRUPTED}
        return CANCELLED, {}

    def _open(self, prepared: Prepared, live: _Live) -> ResultStream:
        """The query's stream; while every worker is busy, wait and try again (a job waits its turn)."""
        while True:
            if live.cancel.is_set():
                raise _Cancelled
            try:
                return self._pool.run(
                    prepared.sql,
                    prepared.tables,
                    timeout=self.settings.query_job_timeout_seconds,
                    cancel=live.cancel,
                )
            except BusyError:
                live.cancel.wait(2.0)
            except QueryError as exc:
                if exc.details.get("kind") == "canceled":
                    raise _Cancelled from None
                raise

    def _write(self, job_id: str, result: ResultStream, part: Path, live: _Live) -> None:
        writer = pq.ParquetWriter(part, result.schema, compression="zstd")
        try:
            last = time.monotonic()
            for batch in result:
                writer.write_batch(batch)
                live.rows += batch.num_rows
                if live.cancel.is_set():
                    raise _Cancelled
                if time.monotonic() - last >= PROGRESS_SECONDS:
                    last = time.monotonic()
                    if self._progress(job_id, live):
                        live.cancel.set()
                        raise _Cancelled
        finally:
            writer.close()

    def _progress(self, job_id: str, live: _Live) -> bool:
        """Write the job's progress; whether a cancel was requested (perhaps by another process)."""
        seconds = time.monotonic() - (live.started or time.monotonic())
        with transaction(self._sessions) as s:
            s.execute(
                update(QueryJob)
                .where(QueryJob.id == job_id)
                .values(rows=live.rows, seconds=seconds, heartbeat_at=utcnow())
            )
            return bool(s.scalar(select(QueryJob.cancel_requested).where(QueryJob.id == job_id)))

    def _finish(
        self,
        job_id: str,
        status: str,
        values: dict[str, Any] | None = None,
        *,
        from_status: tuple[str, ...] = UNFINISHED,
        **more: Any,
    ) -> bool:
        """Move the job to a final ``status`` (only from ``from_status``); whether it moved."""
        values = {**(values or {}), **more}
        now = utcnow()
        if status == SUCCEEDED:
            values["expires"] = now + timedelta(hours=self.settings.query_result_ttl_hours)
        with transaction(self._sessions) as s:
            moved = s.execute(
                update(QueryJob)
                .where(QueryJob.id == job_id, QueryJob.status.in_(from_status))
                .values(status=status, finished=now, heartbeat_at=now, **values)
            )
        return _rowcount(moved) > 0

    def _end_live(self, job_id: str) -> None:
        with self._lock:
            live = self._live.pop(job_id, None)
        if live is not None:
            live.done.set()

    # --- reading and cancelling -------------------------------------------------------------------
    def get(self, job_id: str, owner: str) -> QueryJob:
        """The job ``job_id`` of ``owner`` (with the live progress of a job running here); a job of
        another caller is not found."""
        with transaction(self._sessions) as s:
            job = s.get(QueryJob, job_id)
            if job is None or job.owner != owner:
                raise NotFoundError(f"no query job {job_id}")
            s.expunge(job)
        self._overlay(job)
        return job

    def jobs_of(self, owner: str, limit: int = 100) -> list[QueryJob]:
        """The latest jobs of ``owner``, newest first."""
        with transaction(self._sessions) as s:
            jobs = list(
                s.scalars(
                    select(QueryJob)
                    .where(QueryJob.owner == owner)
                    .order_by(QueryJob.created.desc())
                    .limit(limit)
                )
            )
            s.expunge_all()
        for job in jobs:
            self._overlay(job)
        return jobs

    def _overlay(self, job: QueryJob) -> None:
        live = self._live.get(job.id)
        if live is not None and job.status == RUNNING and live.started is not None:
            job.rows = live.rows
            job.seconds = time.monotonic() - live.started
        elif job.status == RUNNING and job.started is not None and job.runner != self.runner:
            job.seconds = (utcnow() - job.started).total_seconds()

    def cancel(self, job_id: str, owner: str, *, wait: float = 10.0) -> QueryJob:
        """Cancel a queued or running job of ``owner`` (a finished one is left as it is). A job of this
        process is waited for (up to ``wait`` seconds), so the answer shows it cancelled and its worker
        free; one of another process stops at its next progress update."""
        job = self.get(job_id, owner)
        if job.status not in UNFINISHED:
            return job
        with transaction(self._sessions) as s:
            s.execute(update(QueryJob).where(QueryJob.id == job_id).values(cancel_requested=True))
        self._finish(job_id, CANCELLED, from_status=(QUEUED,))
        live = self._live.get(job_id)
        if live is not None:
            live.cancel.set()
            live.done.wait(wait)
        return self.get(job_id, owner)

    def discard(self, job_id: str, owner: str) -> QueryJob:
        """Cancel an unfinished job, or delete a finished job's result file now (the job stays listed)."""
        job = self.get(job_id, owner)
        if job.status in UNFINISHED:
            return self.cancel(job_id, owner)
        self._drop_result(job)
        return self.get(job_id, owner)

    def result_file(self, job_id: str, owner: str) -> Path:
        """The result file of a succeeded job of ``owner``: ``ConflictError`` before it succeeded,
        ``ResultGoneError`` once it expired or was discarded."""
        job = self.get(job_id, owner)
        if job.status != SUCCEEDED:
            detail = f": {job.error}" if job.error else ""
            raise ConflictError(f"query job {job_id} is {job.status}{detail}; it has no result")
        if job.expires is not None and job.expires <= utcnow():
            self._drop_result(job)
        if job.result_path is None or job.expires is None or job.expires <= utcnow():
            raise ResultGoneError(f"the result of query job {job_id} was deleted (kept {self._ttl_text()})")
        path = self.settings.data_dir / job.result_path
        if not path.is_file():
            raise ResultGoneError(f"the result file of query job {job_id} is gone")
        return path

    def _ttl_text(self) -> str:
        return f"{self.settings.query_result_ttl_hours:g} h, HUB_QUERY_RESULT_TTL_HOURS"

    def _drop_result(self, job: QueryJob) -> None:
        if job.result_path:
            (self.settings.data_dir / job.result_path).unlink(missing_ok=True)
        with transaction(self._sessions) as s:
            s.execute(
                update(QueryJob)
                .where(QueryJob.id == job.id)
                .values(result_path=None, expires=func.coalesce(QueryJob.expires, utcnow()))
            )
        job.result_path = None

    # --- upkeep -------------------------------------------------------------------------------
    def recover(self) -> int:
        """Mark the jobs whose process is gone as failed "interrupted"; how many."""
        now = utcnow()
        gone: list[str] = []
        with transaction(self._sessions) as s:
            for job in s.scalars(select(QueryJob).where(QueryJob.status.in_(UNFINISHED))):
                if job.runner == self.runner:
                    continue
                host, _, rest = (job.runner or "").partition(":")
                pid = rest.partition(":")[0]
                dead_here = host == self.host and pid.isdigit() and not _pid_alive(int(pid))
                stale = job.heartbeat_at is None or now - job.heartbeat_at > STALE
                if dead_here or stale:
                    gone.append(job.id)
        for job_id in gone:
            self._finish(job_id, FAILED, error=INTERRUPTED)
            (self.results_dir / f".{job_id}.parquet.part").unlink(missing_ok=True)
        return len(gone)

    def sweep(self) -> int:
        """Delete expired result files (and say this process is alive); how many were deleted."""
        now = utcnow()
        with transaction(self._sessions) as s:
            s.execute(
                update(QueryJob)
                .where(QueryJob.runner == self.runner, QueryJob.status.in_(UNFINISHED))
                .values(heartbeat_at=now)
            )
            expired = list(
                s.scalars(select(QueryJob).where(QueryJob.result_path.is_not(None), QueryJob.expires <= now))
            )
            s.expunge_all()
        for job in expired:
            self._drop_result(job)
        return len(expired)

    def _sweep_loop(self) -> None:
        beats = 0
        while not self._stop.wait(self._tick):
            try:
                self.sweep()
                beats += 1
                if beats * self._tick >= 60:
                    beats = 0
                    self.recover()
            except Exception:
                log.exception("the query jobs' upkeep failed")

    def close(self) -> None:
        """Stop: cancel this process's jobs and mark them interrupted."""
        self._stopping = True
        self._stop.set()
        with self._lock:
            live = dict(self._live)
        for one in live.values():
            one.cancel.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for job_id, one in live.items():
            if one.started is not None:
                one.done.wait(5.0)
            self._finish(job_id, FAILED, error=INTERRUPTED)


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE changed."""
    return cast("CursorResult[Any]", result).rowcount
