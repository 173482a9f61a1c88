"""The one place where errors become HTTP responses.

- CKAN routes (``/api/...`` except ``/api/v1``): CKAN's envelope
  ``{"help": ..., "success": false, "error": {"__type": ..., ...}}`` with CKAN's status codes, or a bare
  JSON string with status 400 (``CkanBadRequestError``) where CKAN answers that way.
- Everything else (``/api/v1``, downloads, pages): RFC 9457 ``application/problem+json``.
- A browser (``Accept`` names ``text/html`` before any JSON) outside the API paths (``/api``, ``/oauth``,
  ``/.well-known``) gets the same status and headers with a small bilingual HTML page instead
  (``templates/error.html``): a link home and a search box. API clients get the JSON above, unchanged.

The web layer's own errors (below) extend ``hub.errors``; domain code never raises HTTP exceptions.

Input limits live here too, since their refusals are responses like any other: ``JsonBodyLimits`` refuses
a JSON request body larger than ``HUB_REQUEST_MAX_JSON_BYTES`` (413) or nested deeper than
``HUB_QUERY_MAX_NESTING`` (400) before any route parses it, and ``loads_json`` parses the JSON that
arrives another way (a CKAN form field, a body without a JSON content type, a JSON query parameter)
under the same limits. The depth is found by a scan of the text, so no parser ever recurses past it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.errors import (
    AccessDeniedError,
    BusyError,
    ConflictError,
    HubError,
    InvalidInputError,
    NotFoundError,
    QueryError,
)
from hub.settings import Settings

log = logging.getLogger("hub.api")

JSON_UTF8 = "application/json;charset=utf-8"
PROBLEM = "application/problem+json"
HTML = "text/html; charset=utf-8"
_ACTION = re.compile(r"^/api/(?:3/)?action/([^/?]*)")
API_PREFIXES = ("/api", "/oauth", "/.well-known")
# A page of our own: no script, nothing from another host.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)


class CkanBadRequestError(HubError):
    """CKAN's bare-string 400 (unknown action, GET on a write action, undecodable JSON)."""

    code = "bad_request"
    http_status = 400


class SearchQueryError(HubError):
    """An invalid package_search query (CKAN's ``Search Query Error``, 400)."""

    code = "search_query_error"
    http_status = 400


class InvalidBodyError(HubError):
    """A request body (or JSON parameter) that is not JSON, or nests deeper than allowed (400)."""

    code = "invalid_body"
    http_status = 400


class BodyTooLargeError(HubError):
    """A JSON request body larger than ``HUB_REQUEST_MAX_JSON_BYTES`` (413)."""

    code = "body_too_large"
    http_status = 413


def dumps(content: Any) -> bytes:
    """JSON of a response body. An integer beyond 64 bits (which JSON clients cannot hold either, and
    orjson refuses) is written as its decimal text, as ``hub.warehouse.values`` writes query results;
    a float NaN or infinity is ``null`` (orjson's rule)."""
    try:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # "Integer exceeds 64-bit range"; anything else fails again below
        return orjson.dumps(_wide_ints_as_text(content), option=orjson.OPT_NON_STR_KEYS)


def _wide_ints_as_text(content: Any) -> Any:
    """A copy of ``content`` (dicts, lists and tuples, without recursion) with wide integers as text."""

    def convert(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
            return str(value)
        if isinstance(value, dict):
            out_dict: dict[Any, Any] = {}
            todo.append((value.items(), out_dict))
            return out_dict
        if isinstance(value, list | tuple):
            out_list: list[Any] = []
            todo.append((enumerate(value), out_list))
            return out_list
        return value

    todo: list[tuple[Any, Any]] = []
    root = convert(content)
    while todo:
        items, target = todo.pop()
        for key, value in items:
            if isinstance(target, dict):
                target[key] = convert(value)
            else:
                target.append(convert(value))
    return root


def json_response(content: Any, status_code: int = 200, media_type: str = JSON_UTF8) -> Response:
    return Response(dumps(content), status_code, media_type=media_type)


def is_ckan_path(path: str) -> bool:
    if path == "/api/v1" or path.startswith("/api/v1/"):
        return False
    return path == "/api" or path.startswith("/api/")


def is_api_path(path: str) -> bool:
    """Paths of the APIs (CKAN, ``/api/v1``, OAuth): their errors are JSON whatever the client accepts."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in API_PREFIXES)


def preferred(accept: str | None, offers: Sequence[str]) -> str:
    """The media type of ``offers`` that an ``Accept`` header ranks first (RFC 9110 12.5.1).

    An offer takes the q value of the most specific range that matches it (``text/html`` before
    ``text/*`` before ``*/*``). The highest q wins; on a tie, an offer named in the header beats one
    matched by a wildcard, then the range written first, then the order of ``offers``. Without an
    ``Accept`` header, or when nothing is acceptable, the first offer.
    """
    if not accept:
        return offers[0]
    ranges: list[tuple[str, str, float, int]] = []
    for position, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        if "/" not in media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        kind, _, sub = media.lower().partition("/")
        ranges.append((kind, sub, q, position))
    best: tuple[float, int, int, int] | None = None
    choice = offers[0]
    for index, offer in enumerate(offers):
        kind, _, sub = offer.lower().partition("/")
        match: tuple[int, float, int] | None = None  # (specificity, q, position)
        for r_kind, r_sub, q, position in ranges:
            if (r_kind, r_sub) == (kind, sub):
                specificity = 2
            elif (r_kind, r_sub) == (kind, "*"):
                specificity = 1
            elif (r_kind, r_sub) == ("*", "*"):
                specificity = 0
            else:
                continue
            if match is None or specificity > match[0]:
                match = (specificity, q, position)
        if match is None or match[1] <= 0:
            continue
        rank = (match[1], int(match[0] == 2), -match[2], -index)
        if best is None or rank > best:
            best, choice = rank, offer
    return choice


_ERROR_OFFERS = ("application/json", PROBLEM, "text/html", "application/xhtml+xml")


def wants_html(request: Request) -> bool:
    """A browser's request outside the API paths: ``Accept`` ranks HTML before JSON."""
    if is_api_path(request.url.path):
        return False
    return preferred(request.headers.get("accept"), _ERROR_OFFERS) in _ERROR_OFFERS[2:]


# status -> (Vietnamese, English) title of the error page; other codes take their class's title
_PAGE_TITLES = {
    400: ("Yêu cầu không hợp lệ", "Bad request"),
    401: ("Cần đăng nhập", "Authentication required"),
    403: ("Không có quyền truy cập", "Access denied"),
    404: ("Không tìm thấy trang", "Page not found"),
    405: ("Phương thức không được hỗ trợ", "Method not allowed"),
    409: ("Xung đột dữ liệu", "Conflict"),
    413: ("Yêu cầu quá lớn", "Request too large"),
    422: ("Yêu cầu không hợp lệ", "Invalid request"),
    429: ("Quá nhiều yêu cầu", "Too many requests"),
    500: ("Lỗi máy chủ", "Server error"),
    503: ("Dịch vụ tạm thời gián đoạn", "Service unavailable"),
}
_NOT_PUBLIC = (
    "Dữ liệu này không công khai: cơ quan được cấp quyền đăng nhập bằng tài khoản hoặc mã truy cập.",
    "This data is not public: agencies with a grant sign in with their account or access token.",
)
_PAGE_HINTS = {
    404: (
        "Địa chỉ có thể đã thay đổi hoặc bị gõ sai. Hãy tìm bộ dữ liệu cần xem.",
        "The address may have changed or be mistyped. Search for the dataset you need.",
    ),
    401: _NOT_PUBLIC,
    403: _NOT_PUBLIC,
}
_CLIENT_HINT = ("Không thực hiện được yêu cầu này.", "This request could not be completed.")
_SERVER_HINT = ("Xin thử lại sau ít phút.", "Please try again in a few minutes.")


def error_page(request: Request, response: Response, detail: str | None = None) -> Response:
    """``response`` (an error in JSON) as the browser's page when ``wants_html``: the same status and
    headers, a bilingual HTML body. Both vary by ``Accept`` outside the API paths."""
    if is_api_path(request.url.path):
        return response
    vary = response.headers.get("vary")
    response.headers["Vary"] = f"{vary}, Accept" if vary else "Accept"
    if not wants_html(request):
        return response
    status = response.status_code
    server = status >= 500
    title = _PAGE_TITLES.get(status) or _PAGE_TITLES[500 if server else 400]
    hint = _PAGE_HINTS.get(status) or (_SERVER_HINT if server else _CLIENT_HINT)
    headers = {k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")}
    headers["Content-Security-Policy"] = PAGE_CSP
    try:
        return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
            request,
            "error.html",
            {"status": status, "title": title, "hint": hint, "detail": detail},
            status_code=status,
            headers=headers,
            media_type=HTML,
        )
    except Exception:  # the JSON answer is still an answer
        log.exception("the error page of %s could not be rendered", request.url.path)
        return response


def help_url(site_url: str, path: str) -> str:
    match = _ACTION.match(path)
    name = match.group(1) if match else ""
    return f"{site_url.rstrip('/')}/api/3/action/help_show?name={name}"


def ckan_error(exc: HubError) -> tuple[int, dict[str, Any]]:
    """The status and ``error`` object CKAN would give for ``exc``."""
    if isinstance(exc, InvalidInputError):
        body: dict[str, Any] = dict(exc.errors) if exc.errors else {"message": exc.message}
        return 409, {**body, "__type": "Validation Error"}
    if isinstance(exc, NotFoundError):
        msg = exc.message if exc.message.startswith("Not found") else f"Not found: {exc.message}"
        return 404, {"__type": "Not Found Error", "message": msg}
    if isinstance(exc, AccessDeniedError):
        msg = exc.message if exc.message.startswith("Access denied") else f"Access denied: {exc.message}"
        return 403, {"__type": "Authorization Error", "message": msg}
    if isinstance(exc, SearchQueryError):
        msg = exc.message if exc.message.startswith("Search") else f"Search Query is invalid: {exc.message}"
        return 400, {"__type": "Search Query Error", "message": msg}
    if isinstance(exc, BusyError):
        return 503, {"__type": "Service Unavailable", "message": exc.message, "retry_after": exc.retry_after}
    if isinstance(exc, QueryError):
        return 409, {"__type": "Validation Error", "query": [exc.message], **exc.details}
    if isinstance(exc, ConflictError):
        return 409, {"__type": "Validation Error", "message": exc.message}
    if exc.http_status >= 500:
        return exc.http_status, {"__type": "Internal Server Error", "message": exc.message}
    return exc.http_status, {"__type": "Validation Error", "message": exc.message}


def ckan_error_response(request: Request, exc: HubError) -> Response:
    if isinstance(exc, CkanBadRequestError):
        return json_response(f"Bad request: {exc.message}", 400)
    status, error = ckan_error(exc)
    settings = request.app.state.settings
    body = {"help": help_url(settings.site_url, request.url.path), "success": False, "error": error}
    resp = json_response(body, status)
    if isinstance(exc, BusyError):
        resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


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
    if exc.http_status >= 500 and not isinstance(exc, BusyError):
        log.error("%s: %s", type(exc).__name__, exc.message)
    resp = problem_response(exc.http_status, title, exc.message, exc.code, **extra)
    if isinstance(exc, BusyError):
        resp.headers["Retry-After"] = str(exc.retry_after)
    return error_page(request, resp, exc.message)


def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if is_ckan_path(request.url.path):
        if exc.status_code == 404:
            return json_response("Not found", 404)
        return json_response(f"Bad request: {exc.detail}", exc.status_code)
    resp = problem_response(exc.status_code, str(exc.detail))
    if exc.headers:
        resp.headers.update(exc.headers)
    return error_page(request, resp)


def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        errors.setdefault(loc or "request", []).append(str(err.get("msg", "invalid")))
    if is_ckan_path(request.url.path):
        return ckan_error_response(request, InvalidInputError("invalid request", errors))
    detail = "The request is invalid."
    resp = problem_response(422, "Validation error", detail, "validation_error", errors=errors)
    return error_page(request, resp, detail)


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
    return error_page(request, problem_response(500, "Internal Server Error", code="internal_error"))


# --- limits of JSON input --------------------------------------------------------------------------

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as int8


def json_too_deep(text: bytes | str, limit: int) -> bool:
    """Whether the JSON ``text`` nests arrays and objects more than ``limit`` deep.

    A scan, not a parse: strings are removed, the brackets left give the depth (their running sum).
    Invalid JSON gets an answer too (its unclosed brackets count), so the check can run before parsing.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    if len(brackets) <= limit:
        return False
    # "[" and "{" count +1, "]" and "}" -1; the deepest point is the largest running sum
    steps = pa.Array.from_buffers(pa.int8(), len(brackets), [None, pa.py_buffer(brackets.translate(_STEP))])
    deepest = pc.max(pc.cumulative_sum(steps.cast(pa.int32()))).as_py()
    return deepest is not None and int(deepest) > limit


def loads_json(text: bytes | str, settings: Settings) -> Any:
    """Parse JSON that came from outside, under the size and nesting limits of ``settings``.

    Raises ``BodyTooLargeError`` (413) above ``request_max_json_bytes`` and ``InvalidBodyError`` (400)
    when the text nests deeper than ``query_max_nesting`` or is not JSON.
    """
    size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if size > settings.request_max_json_bytes:
        raise BodyTooLargeError(f"JSON larger than {settings.request_max_json_bytes} bytes")
    if json_too_deep(text, settings.query_max_nesting):
        raise InvalidBodyError(f"JSON nested deeper than {settings.query_max_nesting} levels")
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        raise InvalidBodyError(f"not valid JSON: {exc}") from exc


def _is_json(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            media: bytes = value.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class JsonBodyLimits:
    """Refuses a JSON request body that is too large (413) or nested too deep (400), in the envelope of
    its route, before the route reads it; other bodies (forms, uploads) pass untouched."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        limit = self.settings.request_max_json_bytes
        too_large = BodyTooLargeError(f"JSON larger than {limit} bytes")
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.strip().isdigit() and int(value) > limit:
                await self._refuse(scope, receive, send, too_large)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_too_deep(body, self.settings.query_max_nesting):
            deep = f"JSON nested deeper than {self.settings.query_max_nesting} levels"
            error = (
                CkanBadRequestError(f"JSON Error: {deep}")
                if is_ckan_path(scope["path"])
                else InvalidBodyError(deep)
            )
            await self._refuse(scope, receive, send, error)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: HubError) -> None:
        await _hub_error_handler(Request(scope), exc)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the whole ``body`` once, then the real ``receive`` (disconnects)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app`` (called by ``create_app``, which also installs the JSON
    body limits among the middleware)."""
    app.add_exception_handler(HubError, _hub_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
