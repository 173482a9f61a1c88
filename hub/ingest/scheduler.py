"""Scheduled ingests: which datasets are due, and a lease so that one dataset never runs twice at once.

A dataset with a cron ``schedule`` is due when its last start is older than the schedule's previous
tick, or when a failed run's retry time has come. A worker *claims* a due dataset with one conditional
``UPDATE`` of its ``dataset_schedules`` row: it sets the lease holder, the lease expiry and the start
time only where no live lease exists and the dataset is still due. The database serialises concurrent
updates of a row (SQLite by its write lock, PostgreSQL by the row lock, re-checking the condition after
the other transaction commits), so of several workers, on one machine or many, exactly one wins; the
others see zero rows updated. A worker that dies leaves a lease that expires; a running worker renews
its leases.

Failures whose error is transient (the source was unavailable) are retried with exponential backoff,
up to ``max_retries`` times before the next regular tick.

The worker's runs tell the subscribers of its ``RunHooks`` about their commits, and between ingests it
runs the hooks' periodic jobs (``hub worker`` subscribes publishing: releases rebuilt after an ingest,
and the stale ones on a schedule); the scheduler itself knows no later stage.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from croniter import croniter
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.catalog.models import Dataset
from hub.db import utcnow
from hub.errors import CatalogError, HubError
from hub.ingest.hooks import RunHooks
from hub.ingest.models import DatasetSchedule
from hub.settings import Settings

log = logging.getLogger(__name__)

RETRYABLE_CODES = frozenset({"source_unavailable"})


def validate_schedule(expression: str) -> str:
    """The cron expression, or ``CatalogError`` saying what is wrong with it."""
    if not croniter.is_valid(expression):
        raise CatalogError(f"schedule {expression!r} is not a cron expression like '0 2 * * *'")
    return expression


def previous_tick(expression: str, now: datetime) -> datetime:
    """The latest time at or before ``now`` when ``expression`` fires (naive UTC)."""
    base = now + timedelta(microseconds=1)
    tick = croniter(expression, base).get_prev(datetime)
    assert isinstance(tick, datetime)
    return tick.replace(tzinfo=None)


@dataclass(frozen=True)
class DueDataset:
    dataset_id: str
    key: str
    schedule: str
    previous_tick: datetime
    retry: bool


def due_datasets(session: Session, now: datetime | None = None) -> list[DueDataset]:
    """Datasets whose schedule has fired since their last start, or whose retry time has come."""
    now = now or utcnow()
    rows = session.execute(
        select(Dataset, DatasetSchedule)
        .outerjoin(DatasetSchedule, DatasetSchedule.dataset_id == Dataset.id)
        .where(Dataset.state == "active")
        .order_by(Dataset.key)
    ).all()
    due: list[DueDataset] = []
    for ds, sched in rows:
        expression = (ds.spec or {}).get("schedule")
        if not expression:
            continue
        if not croniter.is_valid(expression):
            log.warning("dataset %s: schedule %r is not a cron expression; not scheduled", ds.key, expression)
            continue
        tick = previous_tick(expression, now)
        if sched is not None and sched.lease_holder and sched.lease_expires and sched.lease_expires > now:
            continue
        retry = bool(sched and sched.retry_at is not None and sched.retry_at <= now)
        if retry or sched is None or sched.last_started_at is None or sched.last_started_at < tick:
            due.append(DueDataset(ds.id, ds.key, expression, tick, retry))
    return due


def _ensure_row(session: Session, dataset_id: str) -> None:
    if session.get(DatasetSchedule, dataset_id) is not None:
        return
    try:
        with session.begin_nested():
            session.add(DatasetSchedule(dataset_id=dataset_id, failures=0))
    except IntegrityError:
        pass  # another worker created it at the same moment


def claim(
    session: Session, due: DueDataset, holder: str, lease_seconds: float, now: datetime | None = None
) -> bool:
    """Take the lease of ``due`` if nobody holds it and it is still due. Commits; True if won."""
    now = now or utcnow()
    _ensure_row(session, due.dataset_id)
    session.commit()
    s = DatasetSchedule
    still_due = or_(s.last_started_at.is_(None), s.last_started_at < due.previous_tick, s.retry_at <= now)
    free = or_(s.lease_holder.is_(None), s.lease_expires.is_(None), s.lease_expires <= now)
    result = session.execute(
        update(s)
        .where(and_(s.dataset_id == due.dataset_id, free, still_due))
        .values(
            lease_holder=holder,
            lease_expires=now + timedelta(seconds=lease_seconds),
            last_started_at=now,
            retry_at=None,
            **({} if due.retry else {"failures": 0}),
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def renew(session: Session, dataset_id: str, holder: str, lease_seconds: float) -> bool:
    """Extend a lease this holder still has; False if it lost it."""
    s = DatasetSchedule
    result = session.execute(
        update(s)
        .where(s.dataset_id == dataset_id, s.lease_holder == holder)
        .values(lease_expires=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def backoff_delay(failures: int, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff with jitter for the ``failures``-th consecutive failure (1-based)."""
    cap = min(max_seconds, base_seconds * 2.0 ** max(0, failures - 1))
    return float(cap / 2 + random.uniform(0, cap / 2))


def release(
    session: Session,
    dataset_id: str,
    holder: str,
    *,
    status: str,
    error: str | None = None,
    run_id: str | None = None,
    retryable: bool = False,
    max_retries: int = 3,
    backoff_seconds: float = 60.0,
    max_backoff_seconds: float = 3600.0,
) -> DatasetSchedule | None:
    """Record the outcome and give the lease back; a transient failure gets a retry time."""
    sched = session.get(
        DatasetSchedule,
        dataset_id,
        with_for_update=session.bind is not None and session.bind.dialect.name == "postgresql",
    )
    if sched is None or sched.lease_holder != holder:
        session.commit()
        return None
    now = utcnow()
    sched.last_finished_at = now
    sched.last_status = status
    sched.last_error = error
    sched.last_run_id = run_id
    if status == "succeeded":
        sched.failures = 0
        sched.retry_at = None
    else:
        sched.failures = (sched.failures or 0) + 1
        if retryable and sched.failures <= max_retries:
            delay = backoff_delay(sched.failures, backoff_seconds, max_backoff_seconds)
            sched.retry_at = now + timedelta(seconds=delay)
        else:
            sched.retry_at = None
    sched.lease_holder = None
    sched.lease_expires = None
    session.commit()
    return sched


# --- the worker ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    key: str
    status: str  # succeeded | failed | skipped
    error: str | None = None
    run_id: str | None = None
    retry_at: datetime | None = None


class Worker:
    """Runs due ingests, at most ``concurrency`` at a time, each dataset by one worker only. ``run``
    replaces the ingest itself (tests); ``hooks`` are told of every run's commit and give the periodic
    jobs that ``serve`` runs between ingests."""

    def __init__(
        self,
        settings: Settings,
        *,
        concurrency: int = 2,
        poll_seconds: float = 30.0,
        lease_seconds: float = 300.0,
        max_retries: int = 3,
        backoff_seconds: float = 60.0,
        max_backoff_seconds: float = 3600.0,
        run: Callable[[Settings, str, str], Any] | None = None,
        holder: str | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        hooks: RunHooks | None = None,
    ) -> None:
        self.settings = settings
        self.hooks = hooks or RunHooks()
        self.concurrency = max(1, concurrency)
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.run = run or self._ingest
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.on_outcome = on_outcome
        self.stop = threading.Event()
        self._running: dict[str, Future[Outcome]] = {}
        self._lock = threading.Lock()

    def _ingest(self, settings: Settings, key: str, holder: str) -> Any:
        from hub.ingest.runner import run_ingest

        return run_ingest(settings, key, triggered_by=f"worker {holder}", hooks=self.hooks)

    def _session(self) -> Session:
        from hub.db import session_factory

        return session_factory(self.settings)()

    def claim_due(self, slots: int) -> list[DueDataset]:
        """Claim up to ``slots`` due datasets."""
        won: list[DueDataset] = []
        with self._session() as session:
            for due in due_datasets(session):
                if len(won) >= slots:
                    break
                if due.dataset_id in self._running:
                    continue
                if claim(session, due, self.holder, self.lease_seconds):
                    won.append(due)
        return won

    def _execute(self, due: DueDataset) -> Outcome:
        done = threading.Event()
        keeper = threading.Thread(target=self._keep_lease, args=(due.dataset_id, done), daemon=True)
        keeper.start()
        status, error, run_id, retryable = "failed", None, None, False
        try:
            result = self.run(self.settings, due.key, self.holder)
            status = str(getattr(result, "status", "succeeded"))
            error = getattr(result, "error", None)
            run_id = getattr(result, "run_id", None)
            code = getattr(result, "error_code", None)
            retryable = bool(getattr(result, "retryable", False)) or code in RETRYABLE_CODES
        except HubError as exc:
            error, retryable = exc.message, exc.retryable
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            done.set()
        with self._session() as session:
            sched = release(
                session,
                due.dataset_id,
                self.holder,
                status=status,
                error=error,
                run_id=run_id,
                retryable=retryable,
                max_retries=self.max_retries,
                backoff_seconds=self.backoff_seconds,
                max_backoff_seconds=self.max_backoff_seconds,
            )
            retry_at = sched.retry_at if sched is not None else None
        outcome = Outcome(due.key, status, error, run_id, retry_at)
        if status != "succeeded":
            log.warning("scheduled ingest of %s %s: %s", due.key, status, error)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    def _keep_lease(self, dataset_id: str, done: threading.Event) -> None:
        while not done.wait(self.lease_seconds / 3):
            with self._session() as session:
                if not renew(session, dataset_id, self.holder, self.lease_seconds):
                    log.error("worker %s lost the lease of dataset %s", self.holder, dataset_id)
                    return

    def run_once(self) -> list[Outcome]:
        """Claim what is due now (up to the concurrency), run it, wait, and return the outcomes."""
        won = self.claim_due(self.concurrency)
        if not won:
            return []
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="hub-worker") as pool:
            futures = [pool.submit(self._execute, due) for due in won]
            return [f.result() for f in futures]

    def _run_periodic(self) -> None:
        """The hooks' periodic jobs whose time has come (publish: rebuild the releases older than their
        frequency, so that a release is fresh no later than its declared frequency even when no
        ingest ran)."""
        for dataset, name, outcome in self.hooks.run_due(self.settings, time.monotonic()):
            log.info("worker %s: %s/%s %s", self.holder, dataset, name, outcome)

    def serve(self) -> None:
        """Poll until ``stop`` is set, keeping at most ``concurrency`` ingests running."""
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="hub-worker") as pool:
            while not self.stop.is_set():
                for dataset_id, fut in list(self._running.items()):
                    if fut.done():
                        del self._running[dataset_id]
                free = self.concurrency - len(self._running)
                if free > 0:
                    try:
                        for due in self.claim_due(free):
                            self._running[due.dataset_id] = pool.submit(self._execute, due)
                    except Exception:  # a database hiccup must not end the worker
                        log.exception("worker %s: could not look for due datasets", self.holder)
                self._run_periodic()
                self.stop.wait(self.poll_seconds if not self._running else min(self.poll_seconds, 1.0))
