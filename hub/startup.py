"""One startup path: what a hub does once before it answers.

``hub serve``, ``hub demo run`` and the tests' live servers all start through the app's lifespan,
which calls ``prepare``:

1. migrate the metadata database (Alembic);
2. sync the catalog (``catalog/<agency>/*.yaml``: organizations, datasets, release definitions) and its
   CKAN side: tags, groups (lĩnh vực), package fields, each dataset's DataStore resource and the open
   companion package of every shared or internal dataset with an open release
   (``hub.catalog.ckan.sync_ckan``);
3. settle runs that a process killed meanwhile left ``running`` (``hub.ingest.state``).

Several processes may start at once (``hub serve --workers 4``, two machines on one PostgreSQL): the
steps are serialized by a lock file in the data directory and, on PostgreSQL, an advisory lock; each
step is idempotent, so the second process finds nothing left to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import text

from hub.catalog.ckan import sync_ckan
from hub.catalog.loader import sync_catalog
from hub.db import get_engine, session_scope
from hub.ingest.state import RecoveredRun, recover_interrupted_runs
from hub.publish.build import sync_releases
from hub.publish.companion import sync_companions
from hub.settings import Settings

log = logging.getLogger("hub.startup")
_ADVISORY_KEY = 0x4C69656E  # "Lien": the advisory lock of hub startups on a shared PostgreSQL


@dataclass
class Prepared:
    """What ``prepare`` did."""

    datasets: int = 0
    releases: int = 0
    recovered: list[RecoveredRun] = field(default_factory=list)


@contextlib.contextmanager
def _startup_lock(settings: Settings) -> Iterator[None]:
    settings.ensure_dirs()
    with open(settings.data_dir / ".startup.lock", "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            engine = get_engine(settings)
            if engine.dialect.name == "postgresql":
                with engine.connect() as conn:
                    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_KEY})
                    try:
                        yield
                    finally:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_KEY})
                        conn.commit()
            else:
                yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepare(settings: Settings) -> Prepared:
    """Migrate, sync the catalog and its CKAN side, recover interrupted runs (see the module)."""
    out = Prepared()
    with _startup_lock(settings):
        with session_scope(settings) as session:
            out.datasets = len(sync_catalog(session, settings))
            out.releases = len(sync_releases(session))
            sync_ckan(session, settings)
            sync_companions(session)
        out.recovered = recover_interrupted_runs(settings)
    log.info(
        "catalog: %d datasets, %d releases from %s; %d interrupted runs settled",
        out.datasets,
        out.releases,
        settings.catalog_dir,
        len(out.recovered),
    )
    return out
