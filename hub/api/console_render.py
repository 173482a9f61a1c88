"""What every page of the SQL console shares (``hub.api.console`` has the routes): the signed-in session
of the cookie, the CSRF check of every state-changing request, the cookie itself, and rendering.

**CSRF.** A POST is accepted only from the console's own pages: it must carry the session's
synchronizer token (form field ``csrf_token``, or header ``X-CSRF-Token`` for scripts) and, when the
browser says where it comes from, come from this site (``Origin`` equal to SITE_URL's origin;
``Sec-Fetch-Site`` ``same-origin`` or ``none``). The cookie is ``SameSite=Lax`` on top of that, so a
cross-site POST does not even carry it. Refusals are ``CsrfRefusedError`` (403).

**Pages** extend ``base.html`` in the reader's language (``?lang=`` or the portal's ``hub_lang``
cookie) and are never cached (``no-store``: results hold non-open data); they may load only the hub's
own files and may not be framed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, Response

from hub.api import portal_render
from hub.auth.models import Membership
from hub.catalog.models import Organization
from hub.console import saved
from hub.console.catalog import readable_tables
from hub.console.results import ResultPage
from hub.console.saved import SavedView
from hub.console.sessions import COOKIE, Console, Signed
from hub.db import transaction
from hub.errors import AccessDeniedError, AuthenticationError, InvalidInputError
from hub.portal.i18n import COOKIE as LANG_COOKIE
from hub.portal.i18n import as_lang
from hub.runtime import Hub
from hub.settings import Settings
from hub.sql.limits import VIETNAM, client_key
from hub.sql.models import QueryJob

CSP = "default-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
FORMATS = (
    ("CSV", "format=csv"),
    ("CSV (Excel)", "format=csv&bom=1"),
    ("TSV", "format=tsv"),
    ("JSON lines", "format=jsonl"),
    ("Parquet", "format=parquet"),
    ("Arrow", "format=arrow"),
)
"""The download links of a result: every format of ``/api/v1/queries/{id}/result``."""


class CsrfRefusedError(AccessDeniedError):
    """A state-changing request without the session's token, or from another site (403)."""

    code = "csrf_refused"


class SignInRequiredError(AuthenticationError):
    """A state-changing request without a signed-in session (401)."""

    code = "sign_in_required"


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def console_of(request: Request) -> Console:
    return hub_of(request).console


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def owner(signed: Signed) -> str:
    """Whose jobs these are: the person's, whichever door they used (``hub.sql.limits.client_key``)."""
    return client_key(signed.principal)


async def signed_in(request: Request) -> Signed | None:
    """The signed-in session of the request's cookie (its tokens refreshed when due), or None."""
    secret = request.cookies.get(COOKIE)
    if not secret:
        return None
    return await run_in_threadpool(console_of(request).load, secret, client_ip(request))


def set_cookie(request: Request, response: Response, secret: str) -> None:
    """The session's cookie: HttpOnly (no script reads it), SameSite=Lax, only under /query, Secure when
    the site is served over HTTPS; it ends with the browser (the session's own expiry is on the server)."""
    response.set_cookie(
        COOKIE,
        secret,
        path="/query",
        httponly=True,
        samesite="lax",
        secure=console_of(request).secure_cookie,
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/query", httponly=True, samesite="lax", secure=console_of(request).secure_cookie
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def checked_form(request: Request, signed: Signed | None) -> FormData:
    """The form of a state-changing request of ``signed``, once the CSRF checks pass (see module)."""
    settings: Settings = request.app.state.settings
    limit = settings.query_max_sql_chars * 4 + 65_536
    if int(request.headers.get("content-length") or 0) > limit:
        raise InvalidInputError(f"the form is larger than {limit:,} bytes")
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != _origin(settings.site_url):
        raise CsrfRefusedError(
            "Refused: this request comes from another site (Origin: " + origin[:100] + ")."
        )
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise CsrfRefusedError(
            f"Refused: this request comes from another site (Sec-Fetch-Site: {fetch_site[:30]})."
        )
    form = await request.form()
    if signed is None:
        raise SignInRequiredError("Sign in to the SQL console first (/query).")
    token = form.get(CSRF_FIELD)
    given = token if isinstance(token, str) else request.headers.get(CSRF_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), signed.csrf.encode()):
        raise CsrfRefusedError(
            "Refused: the request lacks this page's CSRF token (reload the page and try again)."
        )
    return form


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


# --- rendering ------------------------------------------------------------------------------------


def lang_of(request: Request) -> str:
    return as_lang(request.query_params.get("lang")) or as_lang(request.cookies.get(LANG_COOKIE)) or "vi"


def local(value: datetime | None) -> str:
    """A naive UTC time of the database, as Vietnam's time."""
    if value is None:
        return ""
    return value.replace(tzinfo=UTC).astimezone(VIETNAM).strftime("%Y-%m-%d %H:%M")


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """The console's page ``name`` (see the module docstring for its headers)."""
    lang = lang_of(request)
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    params.append(("lang", "en" if lang == "vi" else "vi"))
    env = request.app.state.templates.env
    env.globals.setdefault("portal_site", portal_render.site(request.app.state.settings))
    body = env.get_template(name).render(
        {
            **context,
            "lang": lang,
            "switch_url": f"{request.url.path}?{urlencode(params)}",
            "request": request,
            "local": local,
        }
    )
    response = HTMLResponse(body, status)
    response.headers.update(
        {
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        }
    )
    if request.query_params.get("lang") in ("vi", "en") and request.cookies.get(LANG_COOKIE) != lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


@dataclass
class Screen:
    """What the console page shows besides its lists: the editor's text, a saved query, a job, an error."""

    sql: str = ""
    title: str = ""
    current: SavedView | None = None
    job: QueryJob | None = None
    page: ResultPage | None = None
    result_note: str | None = None
    error: str | None = None


def _orgs(hub: Hub, user_id: str) -> list[dict[str, str | None]]:
    """The person's organizations (a saved query is shared with one of them)."""
    with transaction(hub.session_factory) as s:
        rows = s.scalars(
            select(Organization)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.user_id == user_id)
            .order_by(Organization.title)
        ).all()
        return [{"id": o.id, "title": o.title, "title_en": o.title_en} for o in rows]


def console_context(hub: Hub, signed: Signed, screen: Screen) -> dict[str, Any]:
    """The console page's context for ``signed`` (run in a worker thread: it reads the database)."""
    with transaction(hub.session_factory) as s:
        tables = readable_tables(hub, s, signed.principal, hub.console.labels)
        saved_list = saved.visible(s, signed.user_id)
    recent = hub.jobs.jobs_of(owner(signed), limit=5)
    return {
        "me": {"name": signed.user_name, "orgs": _orgs(hub, signed.user_id)},
        "csrf": signed.csrf,
        "sql": screen.sql,
        "title_value": screen.title or (screen.current.title if screen.current else ""),
        "tables": tables,
        "saved_list": saved_list,
        "current": screen.current,
        "recent": recent,
        "job": screen.job,
        "page": screen.page,
        "result_note": screen.result_note,
        "error": screen.error,
        "formats": FORMATS,
    }


def history_context(hub: Hub, signed: Signed) -> dict[str, Any]:
    return {
        "me": {"name": signed.user_name, "orgs": []},
        "csrf": signed.csrf,
        "jobs": hub.jobs.jobs_of(owner(signed), limit=200),
        "ttl_hours": f"{hub.settings.query_result_ttl_hours:g}",
    }
