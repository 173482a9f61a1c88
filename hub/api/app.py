"""The FastAPI app factory.

Routers live in one module per resource under ``hub.api``; each exposes ``router``. ``ROUTERS`` is the
one list that names them, imported plainly: a missing module is an error at import. Every middleware
is installed here, in one list read from the outermost inwards (``create_app``); the static files,
templates and documentation pages come from ``hub.api.docs``.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from hub import __version__
from hub.api import (
    ckan,
    console,
    datastore,  # noqa: F401  (registers the datastore_* CKAN actions)
    dcat,
    docs,
    downloads,
    health,
    oauth,
    portal,
    spatial,
    v1_connectors,
    v1_grants,
    v1_query,
    v1_releases,
)
from hub.api.dcat import PublicCorsMiddleware
from hub.api.errors import JsonBodyLimits, install_error_handlers
from hub.api.middleware import CollapseSlashesMiddleware, HeadAsGet
from hub.auth.ratelimit import RateLimitMiddleware
from hub.runtime import Hub
from hub.settings import Settings, get_settings
from hub.startup import prepare

ROUTERS = (
    health.router,  # /healthz
    ckan.router,  # /api/3/action/*, /api/action/*, /api, /api/3 (datastore_* actions register there)
    downloads.router,  # /dataset/{id}/resource/{rid}/download/{file}, /datastore/dump/{rid}
    v1_connectors.router,  # /api/v1/connectors, /api/v1/datasets
    v1_grants.router,  # /api/v1/grants, /api/v1/audit
    v1_releases.router,  # /api/v1/releases, release files
    v1_query.router,  # /api/v1/query (SQL, results streamed), /api/v1/queries (query jobs)
    dcat.router,  # /catalog.ttl|jsonld|rdf, /dataset/{id}.ttl ...
    spatial.router,  # /spatial/province/{code}, /spatial/ward/{code}: the DCAT places (page and RDF)
)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub: Hub = app.state.hub
    # the one startup path of every server (hub serve, hub demo run, tests' live servers)
    await run_in_threadpool(prepare, hub.settings)
    # the query workers start now, beside the first requests, so that the first query waits for none
    starter = threading.Thread(target=hub.pool.start, name="query-workers-start", daemon=True)
    if hub.settings.query_workers_prestart:
        starter.start()
    # The objects alive once the server has started (modules, routes, settings) are moved out of the
    # cyclic collector's reach: a full collection otherwise rescans them all and stalls every request
    # in flight for 100+ ms (the DataStore freezes once more after its first search).
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        if starter.is_alive():
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
        docs_url=None,  # served below from the hub's own static files
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.hub = Hub(settings)
    install_error_handlers(app)
    # the middleware, from the outermost (the first to see a request) inwards
    app.add_middleware(JsonBodyLimits, settings=settings)  # a JSON body too large or too deep: 413/400
    app.add_middleware(HeadAsGet)  # HEAD on every GET route
    app.add_middleware(CollapseSlashesMiddleware)  # //api/3/action/x as frictionless sends it
    app.add_middleware(RateLimitMiddleware, settings=settings)  # per client / per IP: 429
    app.add_middleware(PublicCorsMiddleware)  # the public, read-only web: CORS "*"
    for router in ROUTERS:
        app.include_router(router)
    oauth.setup(app, settings)
    docs.install(app, settings)  # /static, templates, /docs, /redoc
    app.include_router(console.router)  # /query: the SQL console (pages, signed in)
    app.include_router(portal.router)  # portal pages at / (last: /dataset/{name} would match {name}.ttl)
    return app
