"""The CKAN Action API: ``/api/3/action/{name}`` and ``/api/action/{name}``, GET and POST.

Request data is read as CKAN reads it (``ckan/views/api.py``): form fields of a POST (urlencoded or
multipart; a single field whose value is empty or "1" is parsed as JSON, for ``curl -d '{...}'``), else
the query string of a side-effect-free action, else a JSON object body. File parts (``upload``) stay
file objects. Unknown actions, GET on a write action and undecodable JSON give CKAN's bare-string 400;
JSON is parsed under the hub's size and nesting limits (``hub.api.errors.loads_json``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response

from hub.api import ckan_read, ckan_tokens, ckan_write, datastore  # noqa: F401  (register the actions)
from hub.api.ckan_registry import ACTIONS, Action, ActionContext, no_session
from hub.api.deps import app_session_factory
from hub.api.errors import (
    BodyTooLargeError,
    CkanBadRequestError,
    InvalidBodyError,
    help_url,
    json_response,
    loads_json,
)
from hub.auth.resolve import extract_token, resolve_principal
from hub.errors import InvalidInputError
from hub.settings import Settings

router = APIRouter(tags=["CKAN Action API"])

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@router.get("/api", summary="CKAN API version probe", include_in_schema=False)
def api_version() -> Response:
    return json_response({"version": 1})


@router.get("/api/3", summary="CKAN API version probe", include_in_schema=False)
def api3_version() -> Response:
    return json_response({"version": 3})


@router.get("/api/2/util/dataset/autocomplete", include_in_schema=False)
async def util_autocomplete(request: Request) -> Response:
    data = {"q": request.query_params.get("incomplete", ""), "limit": request.query_params.get("limit", "10")}
    result = await _run(request, ACTIONS["package_autocomplete"], data)
    return json_response(
        {
            "ResultSet": {
                "Result": [
                    {
                        "match_field": r["match_field"],
                        "match_displayed": r["match_displayed"],
                        "name": r["name"],
                        "title": r["title"],
                    }
                    for r in result
                ]
            }
        }
    )


async def _request_data(request: Request, act: Action) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method == "POST" and content_type in _FORM_TYPES:
        settings = request.app.state.settings
        length = int(request.headers.get("content-length") or 0)
        if length > settings.upload_max_bytes + 1024 * 1024:
            raise InvalidInputError("File upload too large", {"upload": ["File upload too large"]})
        form = await request.form(max_files=20, max_fields=10_000, max_part_size=16 * 1024 * 1024)
        items = list(form.multi_items())
        if len(items) == 1 and isinstance(items[0][1], str) and items[0][1] in ("", "1"):
            parsed = _loads(items[0][0], settings)
            if not isinstance(parsed, dict):
                raise CkanBadRequestError("JSON Error: Request data JSON decoded to non-dictionary")
            return parsed
        data: dict[str, Any] = {}
        for key, value in items:
            if key in data:
                prev = data[key]
                data[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                data[key] = value
        return data
    if act.side_effect_free and request.query_params:
        out: dict[str, Any] = {}
        for key in request.query_params:
            values = request.query_params.getlist(key)
            out[key] = values[0] if len(values) == 1 else values
        out.pop("callback", None)
        out.pop("_", None)
        return out
    body = await _read_body(request, request.app.state.settings.request_max_json_bytes)
    if not body.strip():
        return {}
    parsed = _loads(body, request.app.state.settings)
    if not isinstance(parsed, dict):
        raise CkanBadRequestError("JSON Error: Request data JSON decoded to non-dictionary")
    return parsed


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) once it passes ``limit`` bytes, whatever its content type."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"JSON larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _loads(text: bytes | str, settings: Settings) -> Any:
    try:
        return loads_json(text, settings)
    except InvalidBodyError as exc:
        raise CkanBadRequestError(f"JSON Error: Error decoding JSON data. Error: {exc.message}") from exc


def _context(request: Request, session_factory: Callable[[], Session]) -> ActionContext:
    settings = request.app.state.settings
    principal = resolve_principal(
        request.headers, request.client.host if request.client else None, settings, "ckan"
    )
    return ActionContext(
        hub=request.app.state.hub,
        settings=settings,
        session_factory=session_factory,
        principal=principal,
        method=request.method,
        path=request.url.path,
        query_string=request.url.query,
    )


def _call(request: Request, act: Action, data: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    ctx = _context(request, app_session_factory(request))
    try:
        result = act.fn(ctx, data)
        if ctx.opened is not None:
            ctx.opened.commit()
        if act.write:
            ctx.hub.catalog_changed()
        return result, ctx.envelope
    except BaseException:
        if ctx.opened is not None:
            ctx.opened.rollback()
        raise
    finally:
        if ctx.opened is not None:
            ctx.opened.close()


def _call_in_memory(request: Request, act: Action, data: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    """``act``'s in-memory answer for a request without a token (on the event loop), or None."""
    if act.in_memory is None or extract_token(request.headers) is not None:
        return None
    ctx = _context(request, no_session)
    result = act.in_memory(ctx, data)
    return None if result is None else (result, ctx.envelope)


async def _run(request: Request, act: Action, data: dict[str, Any]) -> Any:
    result, _extra = await run_in_threadpool(_call, request, act, data)
    return result


async def _dispatch(name: str, request: Request) -> Response:
    act = ACTIONS.get(name)
    if act is None:
        raise CkanBadRequestError(f"Action name not known: {name}")
    if request.method == "GET" and act.write:
        raise CkanBadRequestError("JSON Error: Invalid request. Please use POST method for your request")
    data = await _request_data(request, act)
    try:
        answered = _call_in_memory(request, act, data)
        if answered is None:
            answered = await run_in_threadpool(_call, request, act, data)
        result, extra = answered
    finally:
        for value in data.values():
            if isinstance(value, UploadFile):
                await value.close()
    settings = request.app.state.settings
    body: dict[str, Any] = {"help": help_url(settings.site_url, request.url.path), "success": True}
    body["result"] = result
    body.update(extra)
    callback = request.query_params.get("callback") if request.method == "GET" else None
    if callback and callback.replace("_", "").replace(".", "").isalnum():
        payload = json_response(body).body
        return Response(f"{callback}(".encode() + payload + b");", media_type="application/javascript")
    return json_response(body)


# --- the OpenAPI description of the action routes ---------------------------------------------------


def _action_names(schema: dict[str, Any]) -> None:
    """The known actions, listed when the spec is built (after every router registered its actions)."""
    schema["enum"] = sorted(ACTIONS)


ActionName = Annotated[
    str, Path(description="The action (an unknown one is CKAN's 400).", json_schema_extra=_action_names)
]
_NATURAL: dict[str, Any] = {"type": "integer", "minimum": 0}
PARAMETERS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "description": "Id or name of the object (package_show, organization_show...)."},
    "q": {"type": "string", "description": "Search text; Solr syntax with a field (package_search)."},
    "fq": {"type": "string", "description": "Filter query (package_search)."},
    "sort": {"type": "string", "description": "Sort order, e.g. 'metadata_modified desc'."},
    "rows": {**_NATURAL, "description": "Results per page (package_search, at most 1000)."},
    "start": {**_NATURAL, "description": "Offset of the first result (package_search)."},
    "limit": {**_NATURAL, "description": "Most results (list actions, datastore_search)."},
    "offset": {**_NATURAL, "description": "Results to skip (list actions, datastore_search)."},
    "include_private": {"type": "boolean", "description": "Private datasets the caller may read too."},
    "all_fields": {"type": "boolean", "description": "Dicts instead of names (list actions)."},
    "resource_id": {"type": "string", "description": "DataStore resource (datastore_*)."},
    "filters": {"type": "string", "description": "DataStore filters: a JSON object of column -> value(s)."},
    "sql": {"type": "string", "description": "A SELECT over DataStore resources (datastore_search_sql)."},
}
"""The common parameters of the actions (each action reads its own; see docs/ckan-api.md)."""
_GET_EXTRA: dict[str, Any] = {
    "parameters": [{"name": k, "in": "query", "required": False, "schema": v} for k, v in PARAMETERS.items()]
}
_POST_EXTRA: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {**PARAMETERS, "filters": {"type": "object"}},
                    "additionalProperties": True,
                }
            }
        },
    }
}


async def action_v3(name: ActionName, request: Request) -> Response:
    """CKAN Action API (version 3): GET for read actions, POST (JSON, form or multipart) for all.

    See docs/ckan-api.md for the supported actions and their parameters."""
    return await _dispatch(name, request)


async def action_unversioned(name: ActionName, request: Request) -> Response:
    """The same actions without the version segment (ckanapi's default)."""
    return await _dispatch(name, request)


async def action_other_version(version: str, name: str, request: Request) -> Response:
    return json_response("Not found", 404)


for _method in ("GET", "POST"):
    router.add_api_route(
        "/api/3/action/{name}",
        action_v3,
        methods=[_method],
        summary="Call a CKAN action",
        operation_id=f"ckan_action_{_method.lower()}",
        openapi_extra=_GET_EXTRA if _method == "GET" else _POST_EXTRA,
    )
    router.add_api_route(
        "/api/action/{name}",
        action_unversioned,
        methods=[_method],
        summary="Call a CKAN action (no version)",
        operation_id=f"ckan_action_nov_{_method.lower()}",
        openapi_extra=_GET_EXTRA if _method == "GET" else _POST_EXTRA,
    )
    router.add_api_route(
        "/api/{version}/action/{name}", action_other_version, methods=[_method], include_in_schema=False
    )
