"""What every portal page shares: the language of the request, the rendering (ETag, Cache-Control,
Content-Security-Policy, the language cookie), the anonymous caller of CKAN's actions, and the portal's
state on the app (``lifespan``: ``app.state.portal``, the templates' ``portal_site`` global)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hub.api.ckan_registry import ActionContext
from hub.api.dcat import cached
from hub.api.errors import HTML
from hub.auth.principal import Principal
from hub.portal.dataset import PortalCache
from hub.portal.i18n import COOKIE, Tr, as_lang
from hub.settings import Settings


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The portal's state (``app.state.portal``) and the templates' site globals (the error pages use
    them too)."""
    app.state.portal = PortalCache()
    settings: Settings = app.state.settings
    app.state.templates.env.globals["portal_site"] = site(settings)
    yield


CACHE = "public, max-age=60"
BASE_CSP = "default-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"


def site(settings: Settings) -> dict[str, str]:
    return {
        "title": settings.site_title,
        "province": settings.site_province,
        "logo": settings.site_logo_url,
        "email": settings.site_contact_email,
        "phone": settings.site_contact_phone,
        "tiles": settings.map_tile_url,
    }


def csp(settings: Settings) -> str:
    """The pages' policy: nothing from another host, but the base map's tiles when a URL is set."""
    img = "img-src 'self' data:"
    if settings.map_tile_url.startswith(("http://", "https://")):
        scheme, _, rest = settings.map_tile_url.partition("://")
        img += f" {scheme}://{rest.split('/', 1)[0].replace('{s}', '*')}"
    return f"{BASE_CSP}; {img}"


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def portal_cache(request: Request) -> PortalCache:
    cache = getattr(request.app.state, "portal", None)
    if cache is None:  # an app served without its lifespan (a test client outside a with block)
        cache = request.app.state.portal = PortalCache()
    assert isinstance(cache, PortalCache)
    return cache


def lang_of(request: Request) -> Tr:
    chosen = as_lang(request.query_params.get("lang")) or as_lang(request.cookies.get(COOKIE)) or "vi"
    return Tr(chosen)


def switch_url(request: Request, t: Tr) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    params.append(("lang", t.other))
    return f"{request.url.path}?{urlencode(params)}"


@contextlib.contextmanager
def anonymous(request: Request) -> Iterator[ActionContext]:
    """An ``ActionContext`` of an anonymous caller: CKAN's actions answer the portal as they answer
    anyone on the web."""
    from hub.api.deps import app_session_factory, get_hub

    ctx = ActionContext(
        hub=get_hub(request),
        settings=settings_of(request),
        session_factory=app_session_factory(request),
        principal=Principal(),
        method="GET",
        path=request.url.path,
        query_string=request.url.query,
    )
    try:
        yield ctx
    finally:
        if ctx.opened is not None:
            ctx.opened.close()


def render(request: Request, name: str, context: dict[str, Any], t: Tr) -> bytes:
    """The page ``name`` in the language of ``t``."""
    env = request.app.state.templates.env
    env.globals.setdefault("portal_site", site(settings_of(request)))
    body = env.get_template(name).render(
        {**context, "lang": t.lang, "t": t, "switch_url": switch_url(request, t), "path": request.url.path}
    )
    return str(body).encode()


def respond(request: Request, t: Tr, body: bytes) -> Response:
    """A page's response: ETag (304 when it matches), Cache-Control, the policy, the language cookie."""
    response = cached(request, body, HTML, CACHE)
    response.headers["Content-Security-Policy"] = csp(settings_of(request))
    response.headers["Vary"] = "Accept-Encoding, Cookie"
    if request.query_params.get("lang") in ("vi", "en") and request.cookies.get(COOKIE) != t.lang:
        response.set_cookie(COOKIE, t.lang, max_age=365 * 86400, samesite="lax")
    return response


def cached_page(request: Request, t: Tr) -> Response | None:
    """The page from the portal's cache when the catalogue was checked unchanged within the last second
    (``CatalogIndex.recent``): answered on the event loop, no thread, no database."""
    from hub.api.deps import get_hub

    idx = get_hub(request).catalog_index.recent()
    if idx is None:
        return None
    body = portal_cache(request).page(page_key(request, t), idx.signature)
    return respond(request, t, body) if body is not None else None


def page_key(request: Request, t: Tr) -> tuple[str, ...]:
    return (request.url.path, request.url.query, t.lang)


def serve(request: Request, t: Tr, make: Callable[[ActionContext], bytes | Response]) -> Response:
    """The page that ``make`` renders for an anonymous caller, from the portal's page cache when the
    catalogue has not changed since (``PortalCache.page``); a ``Response`` (a redirect) is passed on."""
    key = page_key(request, t)
    cache = portal_cache(request)
    with anonymous(request) as ctx:
        signature = ctx.hub.catalog_index.get(ctx.session, ctx.settings, ctx.states(fresh=True)).signature
        body = cache.page(key, signature)
        if body is None:
            made = make(ctx)
            if isinstance(made, Response):
                return made
            body = made
            cache.keep(key, signature, body)
    return respond(request, t, body)


async def page(request: Request, t: Tr, make: Callable[[ActionContext], bytes | Response]) -> Response:
    """A portal page: from the cache at once when it can be, else rendered in a worker thread (``serve``)."""
    found = cached_page(request, t)
    if found is not None:
        return found
    return await run_in_threadpool(serve, request, t, make)
