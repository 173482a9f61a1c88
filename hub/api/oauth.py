"""OAuth 2.0 endpoints: ``/oauth/token``, ``/oauth/authorize`` (login page), ``/oauth/introspect``,
``/oauth/revoke``, ``/.well-known/oauth-authorization-server`` (RFC 8414) and ``/.well-known/jwks.json``.

A thin adapter: a Starlette request becomes a ``hub.auth.server.FormRequest`` (authlib's
``OAuth2Request``), authlib's server runs in a worker thread inside one database session, and its
``(status, body, headers)`` becomes the response. ``setup`` also installs the rate-limit middleware.
"""

from __future__ import annotations

import base64
import html
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from hub.auth import keys, tokens, users
from hub.auth.oauth_models import HubUser
from hub.auth.principal import SCOPES
from hub.auth.server import FormRequest, HubAuthorizationServer
from hub.db import session_scope
from hub.settings import Settings

router = APIRouter(tags=["oauth"])


def _server(request: Request) -> HubAuthorizationServer:
    server: HubAuthorizationServer | None = getattr(request.app.state, "oauth_server", None)
    if server is None:
        server = HubAuthorizationServer(request.app.state.settings)
        request.app.state.oauth_server = server
    return server


async def to_oauth_request(request: Request, settings: Settings) -> FormRequest:
    """authlib's view of ``request``; the URI is built on SITE_URL (the public, TLS-terminated URL)."""
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        data = await request.form()
        form = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
    query = list(request.query_params.multi_items())
    uri = (
        settings.site_url.rstrip("/")
        + request.url.path
        + (f"?{request.url.query}" if request.url.query else "")
    )
    req = FormRequest(request.method, uri, request.headers, query, form)
    req.client_ip = request.client.host if request.client else None
    return req


def to_response(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    hdrs = dict(headers)
    if isinstance(body, dict):
        hdrs.pop("Content-Type", None)
        return JSONResponse(body, status_code=status, headers=hdrs)
    return Response(body or b"", status_code=status, headers=hdrs)


def _unreadable_client_credentials(request: Request) -> Response | None:
    """RFC 6749's ``invalid_client`` for HTTP Basic client credentials that are not UTF-8 text: authlib
    fails decoding them (a UnicodeDecodeError, a 500) where it answers bad credentials with this."""
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        base64.b64decode(value.strip()).decode("utf-8")
    except UnicodeDecodeError:
        body = {"error": "invalid_client", "error_description": "The client credentials are not UTF-8 text."}
        return JSONResponse(
            body, status_code=401, headers={"WWW-Authenticate": 'Basic error="invalid_client"'}
        )
    except ValueError:  # not base64: authlib reads no credentials and answers itself
        return None
    return None


async def _run(request: Request, fn_name: str, **kwargs: Any) -> Response:
    refused = _unreadable_client_credentials(request)
    if refused is not None:
        return refused
    settings: Settings = request.app.state.settings
    server = _server(request)
    oreq = await to_oauth_request(request, settings)

    def work() -> Any:
        with session_scope(settings) as session:
            return server.run(session, getattr(server, fn_name), oreq, **kwargs)

    return to_response(await run_in_threadpool(work))


@router.post("/oauth/token", summary="Token endpoint (client credentials, authorization code, refresh)")
async def token(request: Request) -> Response:
    resp = await _run(request, "create_token_response")
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def _endpoint(request: Request, endpoint: str) -> Response:
    """Answer ``request`` with authlib's endpoint ``endpoint`` (introspection, revocation)."""
    refused = _unreadable_client_credentials(request)
    if refused is not None:
        return refused
    settings: Settings = request.app.state.settings
    server = _server(request)
    oreq = await to_oauth_request(request, settings)

    def work() -> Any:
        with session_scope(settings) as session:
            return server.run(session, server.create_endpoint_response, endpoint, oreq)

    return to_response(await run_in_threadpool(work))


@router.post("/oauth/introspect", summary="Token introspection (RFC 7662)")
async def introspect(request: Request) -> Response:
    return await _endpoint(request, "introspection")


@router.post("/oauth/revoke", summary="Token revocation (RFC 7009)")
async def revoke(request: Request) -> Response:
    return await _endpoint(request, "revocation")


@router.get("/.well-known/oauth-authorization-server", summary="Authorization server metadata (RFC 8414)")
def metadata(request: Request) -> JSONResponse:
    return JSONResponse(server_metadata(request.app.state.settings))


@router.get("/.well-known/jwks.json", summary="The hub's public signing keys")
def jwks(request: Request) -> JSONResponse:
    ring = keys.keyring(request.app.state.settings)
    return JSONResponse(ring.public_jwks(), headers={"Cache-Control": "public, max-age=300"})


def server_metadata(settings: Settings) -> dict[str, Any]:
    base = tokens.issuer(settings)
    meta = AuthorizationServerMetadata(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_signing_alg_values_supported": None,
        }
    )
    meta.pop("token_endpoint_auth_signing_alg_values_supported")
    meta.validate()
    return dict(meta)


# --- authorization endpoint with its login page ----------------------------------------------

_AUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


def login_page(settings: Settings, params: dict[str, str], client_name: str, error: str | None = None) -> str:
    hidden = "\n".join(
        f'<input type="hidden" name="{k}" value="{html.escape(params[k])}">'
        for k in _AUTH_PARAMS
        if k in params
    )
    scopes = html.escape(params.get("scope") or "")
    err = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Đăng nhập / Sign in — {html.escape(settings.site_title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input[type=text],input[type=password]{{width:100%;padding:.4rem}}
.error{{color:#a00}}button{{margin-top:1rem;padding:.5rem 1rem}}
.en{{color:#555;font-size:.9em}}</style></head>
<body><h1>Đăng nhập <span class="en">/ Sign in</span></h1>
<p>Ứng dụng <strong>{html.escape(client_name)}</strong> yêu cầu quyền: <code>{scopes}</code>.<br>
<span class="en">The application <strong>{html.escape(client_name)}</strong> asks for:
<code>{scopes}</code>.</span></p>
{err}
<form method="post" action="/oauth/authorize">
{hidden}
<label for="username">Tên đăng nhập <span class="en">/ Username</span></label>
<input id="username" name="username" type="text" autocomplete="username" required>
<label for="password">Mật khẩu <span class="en">/ Password</span></label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" name="decision" value="allow">Đăng nhập và cho phép / Sign in and allow</button>
<button type="submit" name="decision" value="deny" formnovalidate>Từ chối / Deny</button>
</form></body></html>"""


def _error_page(error: OAuth2Error) -> HTMLResponse:
    desc = html.escape(error.description or error.error)
    body = (
        f"<!doctype html><html lang=vi><meta charset=utf-8><title>Lỗi / Error</title>"
        f"<h1>Yêu cầu không hợp lệ / Invalid request</h1><p>{html.escape(error.error)}: {desc}</p></html>"
    )
    return HTMLResponse(body, status_code=400)


def _error_redirect(redirect_uri: str, error: OAuth2Error, state: str | None) -> RedirectResponse:
    q = {"error": error.error, "error_description": error.description or ""}
    if state:
        q["state"] = state
    sep = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{sep}{urlencode(q)}", status_code=302)


@router.get("/oauth/authorize", summary="Authorization endpoint: the login page", response_class=HTMLResponse)
async def authorize_page(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    server = _server(request)
    oreq = await to_oauth_request(request, settings)

    def work() -> Response:
        with session_scope(settings) as session:
            try:
                grant = server.run(session, server.get_consent_grant, oreq)
            except OAuth2Error as error:
                if error.redirect_uri:
                    return _error_redirect(error.redirect_uri, error, oreq.payload.state)
                return _error_page(error)
            return HTMLResponse(login_page(settings, oreq.payload.data, grant.client.row.name))

    return await run_in_threadpool(work)


@router.post("/oauth/authorize", summary="Authorization endpoint: sign in and allow")
async def authorize_submit(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    server = _server(request)
    oreq = await to_oauth_request(request, settings)

    def work() -> Response:
        data = oreq.form
        with session_scope(settings) as session:
            try:
                grant = server.run(session, server.get_consent_grant, oreq)
            except OAuth2Error as error:
                if error.redirect_uri:
                    return _error_redirect(error.redirect_uri, error, oreq.payload.state)
                return _error_page(error)
            if data.get("decision") == "deny":
                return to_response(
                    server.run(session, server.create_authorization_response, oreq, None, grant)
                )
            username, password = data.get("username", ""), data.get("password", "")
            if users.locked_out(session, settings, username, oreq.client_ip):
                users.authenticate(session, settings, username, password, oreq.client_ip)  # logs the refusal
                msg = (
                    "Tài khoản tạm thời bị khóa do đăng nhập sai nhiều lần. "
                    "/ Too many failed sign-ins: try again later."
                )
                return HTMLResponse(login_page(settings, oreq.payload.data, grant.client.row.name, msg), 429)
            user = users.authenticate(session, settings, username, password, oreq.client_ip)
            if user is None:
                msg = "Sai tên đăng nhập hoặc mật khẩu. / Wrong username or password."
                return HTMLResponse(login_page(settings, oreq.payload.data, grant.client.row.name, msg), 401)
            return to_response(
                server.run(session, server.create_authorization_response, oreq, HubUser(user), grant)
            )

    return await run_in_threadpool(work)


def setup(app: FastAPI, settings: Settings) -> None:
    """Mount the OAuth routes and the authorization server (the rate limits are middleware that
    ``create_app`` installs)."""
    keys.keyring(settings)  # the first signing key is made (and committed) on first start
    app.include_router(router)
    app.state.oauth_server = HubAuthorizationServer(settings)
