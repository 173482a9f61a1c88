"""The hub's own static files, templates and API documentation pages (no page loads anything from
another host: a provincial intranet has no internet).

- ``/static/...``: the package's ``static`` folder (``StaticAssets``), vendored front-end libraries
  included (``make vendor`` refreshes them from npm);
- ``/docs`` (Swagger UI), ``/docs/oauth2-redirect`` and ``/redoc`` (ReDoc) from those files;
- the Jinja2 templates of the pages (``app.state.templates``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import jinja2
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import Response
from starlette.types import Scope

from hub.settings import Settings

PACKAGE = Path(__file__).parent
STATIC_CACHE = "public, max-age=3600"
STATIC_CACHE_HASHED = "public, max-age=31536000, immutable"  # the URL changes with the content
# the docs pages run inline scripts of FastAPI's and the vendored bundles; nothing from another host
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)


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


def install(app: FastAPI, settings: Settings) -> None:
    """Mount ``/static``, the templates and the documentation pages on ``app``."""
    assets = StaticAssets()
    app.state.templates = _templates(settings, assets)
    app.mount("/static", assets, name="static")
    _docs(app, assets)
