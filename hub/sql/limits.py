"""Per-client limits of the analysts' door (``/api/v1/query`` and query jobs): queries at once, rows a day.

The query workers bound the hub as a whole (``HUB_QUERY_WORKERS``, ``HUB_QUERY_QUEUE``: 503 when
busy); these limits keep one client from taking all of it:

=====================================  ===========================================================
``HUB_QUERY_CLIENT_CONCURRENCY``       queries one client runs at once (per server process); each
                                       runs in a worker limited to ``HUB_QUERY_WORKER_MEMORY_MB``,
                                       so this also bounds the memory one client can hold
``HUB_QUERY_JOBS_PER_CLIENT``          query jobs one client has queued or running (all processes:
                                       counted in the metadata database)
``HUB_QUERY_CLIENT_DAILY_ROWS``        rows one client receives a day, Vietnam time (0: no quota);
                                       counted in the metadata database when a query ends, so a
                                       query started under the quota finishes and the next one is
                                       refused until midnight
=====================================  ===========================================================

A client is an OAuth client (``client:<client id>``), a person (``user:<user id>``, whatever token
or client they use) or, without a token, an IP address (``ip:<address>``): ``client_key``.

The errors extend ``BusyError`` (so the API adds ``Retry-After``) with status 429, since it is the
client's own use, not the hub's load, that is over the limit::

    BusyError                 503, Retry-After (hub.errors)
    └── ClientLimitError      429, Retry-After
        ├── TooManyQueriesError    too many queries or jobs of this client at once
        └── QuotaExceededError     the client's rows of the day are used up
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, ClassVar, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hub.auth.principal import Principal
from hub.db import transaction
from hub.errors import BusyError
from hub.settings import Settings
from hub.sql.models import QueryUsage

VIETNAM = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")  # no daylight saving time


class ClientLimitError(BusyError):
    """A limit of one client's own use was reached (429, ``Retry-After``)."""

    code: ClassVar[str] = "client_limit"
    http_status: ClassVar[int] = 429


class TooManyQueriesError(ClientLimitError):
    code = "too_many_queries"


class QuotaExceededError(ClientLimitError):
    code = "quota_exceeded"


def client_key(principal: Principal) -> str:
    """Who a limit counts: ``client:<id>``, ``user:<id>``, ``ip:<address>`` or ``system``."""
    if principal.kind == "client" and principal.client_id:
        return f"client:{principal.client_id}"
    if principal.kind == "user" and principal.subject:
        return f"user:{principal.subject}"
    if principal.kind == "system":
        return "system"
    return f"ip:{principal.ip or 'unknown'}"


def today(now: datetime | None = None) -> date:
    """The day of the quota: today in Viet Nam."""
    return (now or datetime.now(UTC)).astimezone(VIETNAM).date()


def seconds_to_midnight(now: datetime | None = None) -> int:
    """Seconds until the quota's day ends (Vietnam's midnight)."""
    local = (now or datetime.now(UTC)).astimezone(VIETNAM)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), VIETNAM)
    return max(1, int((midnight - local).total_seconds()) + 1)


class Slot:
    """One running query of a client; ``release`` (once) ends it and counts its rows."""

    def __init__(self, limits: ClientLimits, key: str) -> None:
        self._limits = limits
        self.key = key
        self._released = False
        self._lock = threading.Lock()

    def release(self, rows: int | None = None) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._limits._end(self.key, rows or 0)


class ClientLimits:
    """The limits above for one hub (owned by ``hub.runtime.Hub``: ``hub.query_limits``)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self._sessions = sessions
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    def running(self, key: str) -> int:
        """Queries of ``key`` running now in this process."""
        with self._lock:
            return self._running.get(key, 0)

    def acquire(self, principal: Principal) -> Slot:
        """Start a query of ``principal``'s client, or raise ``TooManyQueriesError`` /
        ``QuotaExceededError``."""
        key = client_key(principal)
        self.check_quota(key)
        limit = self.settings.query_client_concurrency
        with self._lock:
            n = self._running.get(key, 0)
            if n >= limit:
                raise TooManyQueriesError(
                    f"This client already runs {n} queries (HUB_QUERY_CLIENT_CONCURRENCY = {limit}); "
                    "wait for one to end, or submit long queries as jobs (POST /api/v1/queries).",
                    retry_after=1,
                )
            self._running[key] = n + 1
        return Slot(self, key)

    def _end(self, key: str, rows: int) -> None:
        with self._lock:
            n = self._running.get(key, 0) - 1
            if n > 0:
                self._running[key] = n
            else:
                self._running.pop(key, None)
        self.count(key, rows)

    # --- the daily quota -----------------------------------------------------------------------
    def used_today(self, key: str) -> int:
        """Rows returned to ``key`` today (counted only while a quota is set)."""
        with transaction(self._sessions) as s:
            row = s.get(QueryUsage, (key, today()))
            return row.rows if row is not None else 0

    def check_quota(self, key: str) -> None:
        """Raise ``QuotaExceededError`` when ``key`` has used up its rows of the day."""
        quota = self.settings.query_client_daily_rows
        if quota <= 0:
            return
        used = self.used_today(key)
        if used >= quota:
            wait = seconds_to_midnight()
            raise QuotaExceededError(
                f"This client received {used:,} rows today; its quota is {quota:,} a day "
                f"(HUB_QUERY_CLIENT_DAILY_ROWS). It is renewed at midnight (Vietnam time), in {wait:,} s.",
                retry_after=wait,
            )

    def count(self, key: str, rows: int) -> None:
        """Add one query's ``rows`` to ``key``'s day (only while a quota is set: a write per query)."""
        if self.settings.query_client_daily_rows <= 0:
            return
        day = today()
        for _ in range(3):
            try:
                with transaction(self._sessions) as s:
                    changed = s.execute(
                        update(QueryUsage)
                        .where(QueryUsage.client == key, QueryUsage.day == day)
                        .values(rows=QueryUsage.rows + rows, queries=QueryUsage.queries + 1)
                    )
                    if cast("CursorResult[Any]", changed).rowcount == 0:
                        s.add(QueryUsage(client=key, day=day, queries=1, rows=rows))
                return
            except IntegrityError:  # another process inserted the day's row first: add to it
                continue
