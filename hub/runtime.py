"""The hub's runtime: one object that owns what lives as long as a server, a command or a worker.

``Hub(settings)`` is built by ``hub.api.app.create_app(settings)`` (``app.state.hub``; routes reach it
through ``HubDep``), by the CLI and by the ingest worker. It owns the query engine (the in-process
locked DuckDB for the searches the hub builds itself, and the pool of query workers for SQL written
outside the hub), the caches and the thread pools; nothing of that lives in module globals, so two
hubs with different settings in one process (tests do this) share nothing. Like httpx's ``Client``,
it is closed when done (``with Hub(settings) as hub: ...``, or ``hub.close()``).
"""

from __future__ import annotations

import threading
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from hub.cache import TtlCache
from hub.catalog.ckan_models import Resource
from hub.catalog.models import Dataset
from hub.catalog.privacy import KnownNames
from hub.catalog.search import CatalogIndex
from hub.console.sessions import Console
from hub.db import session_factory
from hub.settings import Settings
from hub.sql.jobs import QueryJobs
from hub.sql.limits import ClientLimits
from hub.warehouse.datastore import DataStore
from hub.warehouse.engine.duck import Engine
from hub.warehouse.engine.pool import PoolConfig, WorkerPool
from hub.warehouse.engine.tables import TableCache

if TYPE_CHECKING:
    from hub.pgwire.server import PgServer


class Hub:
    """The runtime of one hub instance (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._closed = False
        self.open_datasets: TtlCache[str, Any] = TtlCache(2.0)
        """DataStore references of open datasets (reads of open data need no database round trip)."""

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        """Sessions of the metadata database. A flush that changes a dataset or a resource drops the
        caches that describe datasets (an open dataset made shared is not served from a cache)."""
        factory = session_factory(self.settings)
        event.listen(factory, "before_flush", self._on_flush)
        return factory

    def _on_flush(self, session: Session, _ctx: Any, _instances: Any) -> None:
        if any(isinstance(o, (Dataset, Resource)) for o in (*session.new, *session.dirty, *session.deleted)):
            self.catalog_changed()

    @cached_property
    def catalog_index(self) -> CatalogIndex:
        """The in-memory search index of the catalogue (``package_search``), rebuilt when it changes."""
        return CatalogIndex()

    def catalog_changed(self) -> None:
        """A dataset or resource changed: drop what was cached about datasets."""
        self.open_datasets.invalidate()
        self.catalog_index.invalidate()

    @cached_property
    def known_names(self) -> KnownNames:
        """Names of people in the warehouse's name columns, per snapshot (the scan of uploads to open
        datasets looks for them)."""
        return KnownNames(self.settings)

    @cached_property
    def engine(self) -> Engine:
        """The in-process locked engine (datastore_search and other queries the hub builds)."""
        s = self.settings
        s.ensure_dirs()
        return Engine(
            TableCache(s.query_cache_mb << 20, dictionary=False),
            memory_limit=s.datastore_memory_limit,
            threads=2,
            temp_dir=s.data_dir / "tmp" / "duckdb",
            timeout=s.query_timeout_seconds,
        )

    @cached_property
    def datastore(self) -> DataStore:
        """The DataStore: snapshot lookups and datastore_search on the in-process engine."""
        return DataStore(self.settings, self.engine)

    @cached_property
    def pool(self) -> WorkerPool:
        """The query workers: every SQL text written outside the hub runs there."""
        s = self.settings
        s.ensure_dirs()
        return WorkerPool(
            PoolConfig(
                size=s.query_workers,
                queue=s.query_queue,
                memory_mb=s.query_worker_memory_mb,
                memory_limit=s.query_memory_limit,
                cache_mb=s.query_cache_mb,
                temp_dir=s.data_dir / "tmp" / "duckdb",
            )
        )

    @cached_property
    def query_limits(self) -> ClientLimits:
        """Per-client limits of the analysts' door: queries at once and rows a day (``hub.sql.limits``)."""
        return ClientLimits(self.settings, self.session_factory)

    @cached_property
    def jobs(self) -> QueryJobs:
        """Query jobs (``/api/v1/queries``): a bounded executor, their records and result files."""
        return QueryJobs(self.settings, self.session_factory, self.pool, self.query_limits)

    @cached_property
    def console(self) -> Console:
        """The SQL console (``/query``): its sessions, its OAuth client and its caches (``hub.console``)."""
        return Console(self.settings, self.session_factory)

    @cached_property
    def pg_server(self) -> PgServer:
        """The PostgreSQL-protocol endpoint (``hub.pgwire``), listening once ``pg_server.start()`` ran."""
        from hub.pgwire.server import PgServer  # hub.pgwire imports this module

        return PgServer(self)

    def close(self) -> None:
        """Stop the query jobs and the query workers, and close the engine."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if "pg_server" in self.__dict__:
            self.pg_server.stop()
        if "jobs" in self.__dict__:
            self.jobs.close()
        if "pool" in self.__dict__:
            self.pool.close()
        if "datastore" in self.__dict__:
            self.datastore.close()
        if "engine" in self.__dict__:
            self.engine.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
