"""The FastAPI app factory.

Routers live in one module per resource under ``hub.api``; each exposes ``router``. ``ROUTERS`` is the
one list that names them, imported plainly: a missing module is an error at import.

What the factory adds around the routers, for browsers and crawlers:

- ``HeadAsGet``: HEAD on every GET route (a route that takes HEAD itself keeps it); same status and
  headers as GET, no body.
- ``/static/``: the package's static files (``StaticAssets``; ``url(name)`` gives a URL with the file's
  hash, cached for a year), among them Swagger UI and ReDoc from npm (``make vendor``).
- ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` on those files: nothing comes from another host.
- ``app.state.templates``: the Jinja2 templates of ``hub/api/templates`` (``base.html`` is the layout of
  every page), with ``site_title`` and ``static_url`` as globals.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import jinja2
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub import __version__
from hub.api import (
    ckan,
    datastore,  # noqa: F401  (registers the datastore_* CKAN actions)
    dcat,
    downloads,
    health,
    oauth,
    portal,
    spatial,
    v1_connectors,
    v1_grants,
    v1_releases,
)
from hub.api.errors import install_error_handlers
from hub.api.middleware import CollapseSlashesMiddleware
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
    spatial.router,  # /spatial/province/{code}, /spatial/ward/{code}: the DCAT places (page and RDF)
)

PACKAGE = Path(__file__).parent
STATIC_CACHE = "public, max-age=3600"
STATIC_CACHE_HASHED = "public, max-age=31536000, immutable"  # the URL changes with the content
# the docs pages run inline scripts of FastAPI's and the vendored bundles; nothing from another host
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub: Hub = app.state.hub
    # the one startup path of every server (hub serve, hub demo run, tests' live servers)
    await run_in_threadpool(prepare, hub.settings)
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


class StaticAssets(StaticFiles):
    """The package's ``static`` folder. ``url(name)`` is ``/static/<name>?v=<hash of the file>``: such a
    request is cached for a year (a new file has a new URL); without ``v``, an hour (then revalidated
    by ETag and Last-Modified)."""

    def __init__(self) -> None:
        super().__init__(directory=PACKAGE / "static")
        self._hashes: dict[str, str] = {}

    def url(self, name: str) -> str:
        if name not in self._hashes:
            self._hashes[name] = hashlib.sha256((PACKAGE / "static" / name).read_bytes()).hexdigest()[:12]
        return f"/static/{name}?v={self._hashes[name]}"

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        hashed = any(part.startswith(b"v=") for part in scope.get("query_string", b"").split(b"&"))
        response.headers["Cache-Control"] = STATIC_CACHE_HASHED if hashed else STATIC_CACHE
        return response


class HeadAsGet:
    """HEAD on every GET route. A HEAD request goes to the app as it is; when no route takes HEAD there
    (a 405), it goes again as GET, whose status and headers (Content-Length among them) are sent with
    no body. Once the headers are sent the app is told that the client left, so a streamed body stops
    instead of being computed for nobody."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        refused = False

        async def send_unless_refused(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 405:
                refused = True
            if not refused:
                await send(message)

        await self.app(scope, receive, send_unless_refused)
        if refused:
            await self._as_get(scope, receive, send)

    async def _as_get(self, scope: Scope, receive: Receive, send: Send) -> None:
        done = anyio.Event()

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
            elif not done.is_set():  # the first part of the body (or a file to send) ends the response
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                done.set()

        async def receive_until_done() -> Message:
            message: Message = {"type": "http.disconnect"}
            if done.is_set():
                return message
            async with anyio.create_task_group() as tg:

                async def read() -> None:
                    nonlocal message
                    message = await receive()
                    tg.cancel_scope.cancel()

                tg.start_soon(read)
                await done.wait()
                tg.cancel_scope.cancel()
            return message

        await self.app({**scope, "method": "GET"}, receive_until_done, send_headers_only)


def _templates(settings: Settings, assets: StaticAssets) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(site_title=settings.site_title, static_url=assets.url)
    return Jinja2Templates(env=env)


def _docs(app: FastAPI, assets: StaticAssets) -> None:
    """Swagger UI and ReDoc from the hub's own static files (FastAPI's own pages load them from a CDN)."""
    assert app.openapi_url is not None
    openapi_url = app.openapi_url
    redirect_url = "/docs/oauth2-redirect"
    title = app.title

    def headers() -> dict[str, str]:
        return {"Content-Security-Policy": DOCS_CSP, "Cache-Control": "public, max-age=300"}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} · Swagger UI",
            oauth2_redirect_url=root + redirect_url,
            swagger_js_url=root + assets.url("vendor/swagger-ui/swagger-ui-bundle.js"),
            swagger_css_url=root + assets.url("vendor/swagger-ui/swagger-ui.css"),
            swagger_favicon_url=root + assets.url("favicon.svg"),
            swagger_ui_parameters={"validatorUrl": None},  # no badge from the online validator
        )
        page.headers.update(headers())
        return page

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> Response:
        page = get_swagger_ui_oauth2_redirect_html()  # inline script only
        page.headers.update(headers())
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} · ReDoc",
            redoc_js_url=root + assets.url("vendor/redoc/redoc.standalone.js"),
            redoc_favicon_url=root + assets.url("favicon.svg"),
            with_google_fonts=False,
        )
        page.headers.update(headers())
        return page


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
    assets = StaticAssets()
    app.state.templates = _templates(settings, assets)
    install_error_handlers(app)
    app.add_middleware(HeadAsGet)
    app.add_middleware(CollapseSlashesMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    oauth.setup(app, settings)  # /oauth/*, /.well-known/*, the rate limits
    dcat.setup(app, settings)  # /catalog.ttl|jsonld|rdf, /dataset/{id}.ttl ..., CORS on them
    app.mount("/static", assets, name="static")
    _docs(app, assets)
    app.include_router(portal.router)  # portal pages at / (last: /dataset/{name} would match {name}.ttl)
    return app
