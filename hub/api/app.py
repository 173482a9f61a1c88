"""The FastAPI app factory.

Routers live in one module per resource under ``hub.api``; each exposes ``router``. ``ROUTER_MODULES``
is the one list that names them, so a module's routes are served as soon as it exists.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI

from hub import __version__
from hub.api.errors import install_error_handlers
from hub.api.middleware import CollapseSlashesMiddleware
from hub.runtime import Hub
from hub.settings import Settings, get_settings

ROUTER_MODULES = (
    "hub.api.health",  # /healthz
    "hub.api.ckan",  # /api/3/action/*, /api/action/*, /api, /api/3 (issue 4)
    "hub.api.datastore",  # datastore_* actions (issue 4)
    "hub.api.downloads",  # /dataset/{id}/resource/{rid}/download/{file} (issue 4)
    "hub.api.v1_runs",  # /api/v1/datasets/{id}/runs, quarantine, query (issues 2/4)
    "hub.api.v1_connectors",  # /api/v1/connectors, /api/v1/datasets (issue 3)
    "hub.api.oauth",  # /oauth/*, /.well-known/* (issue 5)
    "hub.api.v1_grants",  # /api/v1/grants, /api/v1/audit (issue 5)
    "hub.api.v1_releases",  # /api/v1/releases (issue 6)
    "hub.api.dcat",  # /catalog.ttl|jsonld|rdf, /dataset/{id}.ttl ... (issue 6)
    "hub.api.portal",  # portal pages at / (issue 4/6)
)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub: Hub = app.state.hub
    # the query workers start now, beside the first requests, so that the first query waits for none
    starter = threading.Thread(target=hub.pool.start, name="query-workers-start", daemon=True)
    starter.start()
    # The objects alive once the server has started (modules, routes, settings) are moved out of the
    # cyclic collector's reach: a full collection otherwise rescans them all and stalls every request
    # in flight for 100+ ms (the DataStore freezes once more after its first search).
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        starter.join(timeout=30)
        hub.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=_lifespan,
        title="Liên Thông hub",
        version=__version__,
        description="Shared data platform of a Vietnamese province: CKAN Action API, DataStore, "
        "the hub's own /api/v1, OAuth 2.0 and DCAT-AP.",
    )
    app.state.settings = settings
    app.state.hub = Hub(settings)
    install_error_handlers(app)
    app.add_middleware(CollapseSlashesMiddleware)
    for name in ROUTER_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(app, settings)
        else:
            app.include_router(module.router)
    return app
