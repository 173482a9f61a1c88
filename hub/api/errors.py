"""The one place where errors become HTTP responses.

- CKAN routes (``/api/...`` except ``/api/v1``): CKAN's envelope
  ``{"help": ..., "success": false, "error": {"__type": ..., ...}}`` with CKAN's status codes, or a bare
  JSON string with status 400 (``CkanBadRequest``) where CKAN answers that way.
- Everything else (``/api/v1``, downloads, pages): RFC 9457 ``application/problem+json``.

The web layer's own errors (below) extend ``hub.errors``; domain code never raises HTTP exceptions.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from hub.errors import (
    AccessDenied,
    ConflictError,
    HubError,
    NotFoundError,
    QueryError,
    ValidationFailed,
)

log = logging.getLogger("hub.api")

JSON_UTF8 = "application/json;charset=utf-8"
PROBLEM = "application/problem+json"
_ACTION = re.compile(r"^/api/(?:3/)?action/([^/?]*)")


class CkanBadRequest(HubError):
    """CKAN's bare-string 400 (unknown action, GET on a write action, undecodable JSON)."""

    code = "bad_request"
    http_status = 400


class SearchQueryError(HubError):
    """An invalid package_search query (CKAN's ``Search Query Error``, 400)."""

    code = "search_query_error"
    http_status = 400


class SearchError(HubError):
    """Another search failure (CKAN's ``Search Error``, 409)."""

    code = "search_error"
    http_status = 409


class IntegrityFailed(HubError):
    """Malformed nesting in a request (CKAN's ``Integrity Error``, 400)."""

    code = "integrity_error"
    http_status = 400


def json_response(content: Any, status_code: int = 200, media_type: str = JSON_UTF8) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS), status_code, media_type=media_type)


def is_ckan_path(path: str) -> bool:
    if path == "/api/v1" or path.startswith("/api/v1/"):
        return False
    return path == "/api" or path.startswith("/api/")


def help_url(site_url: str, path: str) -> str:
    match = _ACTION.match(path)
    name = match.group(1) if match else ""
    return f"{site_url.rstrip('/')}/api/3/action/help_show?name={name}"


def ckan_error(exc: HubError) -> tuple[int, dict[str, Any]]:
    """The status and ``error`` object CKAN would give for ``exc``."""
    if isinstance(exc, ValidationFailed):
        body: dict[str, Any] = dict(exc.errors) if exc.errors else {"message": exc.message}
        return 409, {**body, "__type": "Validation Error"}
    if isinstance(exc, NotFoundError):
        msg = exc.message if exc.message.startswith("Not found") else f"Not found: {exc.message}"
        return 404, {"__type": "Not Found Error", "message": msg}
    if isinstance(exc, AccessDenied):
        msg = exc.message if exc.message.startswith("Access denied") else f"Access denied: {exc.message}"
        return 403, {"__type": "Authorization Error", "message": msg}
    if isinstance(exc, SearchQueryError):
        msg = exc.message if exc.message.startswith("Search") else f"Search Query is invalid: {exc.message}"
        return 400, {"__type": "Search Query Error", "message": msg}
    if isinstance(exc, SearchError):
        return 409, {"__type": "Search Error", "message": exc.message}
    if isinstance(exc, IntegrityFailed):
        return 400, {"__type": "Integrity Error", "message": exc.message, **exc.details}
    if isinstance(exc, QueryError):
        return 409, {"__type": "Validation Error", "query": [exc.message], **exc.details}
    if isinstance(exc, ConflictError):
        return 409, {"__type": "Validation Error", "message": exc.message}
    if exc.http_status >= 500:
        return exc.http_status, {"__type": "Internal Server Error", "message": exc.message}
    return exc.http_status, {"__type": "Validation Error", "message": exc.message}


def ckan_error_response(request: Request, exc: HubError) -> Response:
    if isinstance(exc, CkanBadRequest):
        return json_response(f"Bad request: {exc.message}", 400)
    status, error = ckan_error(exc)
    settings = request.app.state.settings
    body = {"help": help_url(settings.site_url, request.url.path), "success": False, "error": error}
    return json_response(body, status)


def problem_response(
    status: int, title: str, detail: str | None = None, code: str | None = None, **extra: Any
) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if code:
        body["code"] = code
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    resp = json_response(body, status, media_type=PROBLEM)
    if headers:
        resp.headers.update(headers)
    return resp


def _hub_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    if is_ckan_path(request.url.path):
        return ckan_error_response(request, exc)
    title = exc.code.replace("_", " ").capitalize()
    extra = {k: v for k, v in exc.details.items() if k != "code"}
    if exc.http_status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    return problem_response(exc.http_status, title, exc.message, exc.code, **extra)


def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if is_ckan_path(request.url.path):
        if exc.status_code == 404:
            return json_response("Not found", 404)
        return json_response(f"Bad request: {exc.detail}", exc.status_code)
    resp = problem_response(exc.status_code, str(exc.detail))
    if exc.headers:
        resp.headers.update(exc.headers)
    return resp


def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        errors.setdefault(loc or "request", []).append(str(err.get("msg", "invalid")))
    if is_ckan_path(request.url.path):
        return ckan_error_response(request, ValidationFailed("invalid request", errors))
    detail = "The request is invalid."
    return problem_response(422, "Validation error", detail, "validation_error", errors=errors)


def _unhandled_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if is_ckan_path(request.url.path):
        settings = request.app.state.settings
        body = {
            "help": help_url(settings.site_url, request.url.path),
            "success": False,
            "error": {"__type": "Internal Server Error", "message": "Internal Server Error"},
        }
        return json_response(body, 500)
    return problem_response(500, "Internal Server Error", code="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app`` (called by ``create_app``)."""
    app.add_exception_handler(HubError, _hub_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
