"""DCAT-AP 3.0 endpoints, and what every public endpoint of the publication shares.

- ``/catalog.ttl``, ``/catalog.jsonld``, ``/catalog.rdf`` (``?page=N``, 100 datasets a page, hydra paging)
- ``/dataset/{id}.ttl``, ``.jsonld``, ``.rdf``

Public responses carry ``ETag`` (SHA-256 of the body; ``If-None-Match`` answers 304) and
``Cache-Control``; ``PublicCorsMiddleware`` (installed by ``setup``) adds CORS headers to every
response and answers preflight requests, so browsers on other sites can read open data. The
anonymous rate limit is ``hub.auth.ratelimit`` (installed app-wide by ``hub.api.oauth``).
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.deps import SessionDep, SettingsDep
from hub.catalog.loader import get_dataset
from hub.errors import NotFoundError
from hub.publish.companion import public_datasets
from hub.publish.dcat import RDF_FORMATS, catalog_graph, dataset_graph, serialize

router = APIRouter(tags=["dcat"])
CACHE_PUBLIC = "public, max-age=300"
CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"ETag, Content-Length, Content-Range, Retry-After, Link"),
]


def cached(request: Request, body: bytes, media_type: str, cache_control: str = CACHE_PUBLIC) -> Response:
    """A response with a strong ETag and Cache-Control; 304 when ``If-None-Match`` matches."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    match = request.headers.get("if-none-match", "")
    if etag in [m.strip() for m in match.split(",")] or match.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


class PublicCorsMiddleware:
    """CORS for the public, read-only web: ``*`` origin, no credentials; preflight answered here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await send({"type": "http.response.start", "status": 204, "headers": [
                *CORS_HEADERS,
                (b"access-control-allow-methods", b"GET, HEAD, POST, OPTIONS"),
                (b"access-control-allow-headers", b"Authorization, Content-Type, If-None-Match, Range"),
                (b"access-control-max-age", b"600"),
            ]})  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                if b"access-control-allow-origin" not in present:
                    message = {**message, "headers": [*message.get("headers", []), *CORS_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _fmt(fmt: str) -> str:
    if fmt not in RDF_FORMATS:
        raise NotFoundError(f"unknown RDF format {fmt!r}; use ttl, jsonld or rdf")
    return fmt


@router.get("/catalog.{fmt}", summary="DCAT-AP 3.0 catalogue (paged, 100 datasets a page)")
async def catalog(
    fmt: str, request: Request, settings: SettingsDep, session: SessionDep, page: int = 1
) -> Response:
    fmt = _fmt(fmt)

    def work() -> bytes:
        return serialize(catalog_graph(settings, session, page, fmt).graph, fmt)

    return cached(request, await run_in_threadpool(work), RDF_FORMATS[fmt][1])


@router.get("/dataset/{name}.{fmt}", summary="DCAT-AP 3.0 description of one dataset")
async def dataset(
    name: str, fmt: str, request: Request, settings: SettingsDep, session: SessionDep
) -> Response:
    fmt = _fmt(fmt)

    def work() -> bytes:
        ds = get_dataset(session, name)
        if ds.id not in {d.id for d in public_datasets(session)}:
            raise NotFoundError(f"dataset {name!r} is not in the public catalogue")
        return serialize(dataset_graph(settings, session, ds), fmt)

    return cached(request, await run_in_threadpool(work), RDF_FORMATS[fmt][1])
