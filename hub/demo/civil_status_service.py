"""The simulated civil-status service of Sở Tư pháp: the demo's REST/JSON and XML source system.

A plain Starlette app over the civil-status store (``hub.demo.civil_status_store``)::

    GET /health                               no auth; {"status": "ok", "counts": {...}}
    GET /api/{kind}                           kind: births | marriages | deaths
        ?limit=100                            page size, 1..1000
        &cursor=...                           opaque; from the previous page's next_cursor
        &offset=N | &page=N                   offset or 1-based page pagination instead of the cursor
        &updated_since=2025-01-01T00:00:00+07:00   records with updated_at >= this (date or date-time)
        -> {"data": [...], "next_cursor": "..." | null, "count": n, "total": N}
           and a Link: <...>; rel="next" header while there are more pages
    GET /export/{kind}.xml[?updated_since=...]   the same records as one streamed XML document

Every route but /health needs the key: header ``X-API-Key: K`` or ``Authorization: Bearer K``; without
it the answer is 401 with a JSON body. Records are ordered by (updated_at, registration_number).

Fault injection (for connector tests): ``?fault=SPEC`` on a request, or ``--faults SPEC`` for every
request. SPEC is a comma list of ``kind[:times]`` played in order for each distinct request (same path and
query without the fault parameters): ``fault=500:2,429`` answers the first two identical requests 500,
the third 429, then normally. Kinds: ``500``, ``503``, ``429`` (Retry-After: ``retry_after`` seconds,
default 1), ``slow`` (waits ``delay`` seconds, default 3, then answers), ``truncate`` (200 with the JSON
cut in the middle), ``drop`` (closes the connection in the middle of the body). ``times`` 0 means always.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hub.demo.civil_status_store import KINDS, Store, xml_chunks

FAULT_PARAMS = ("fault", "retry_after", "delay")
FAULT_KINDS = ("500", "503", "429", "slow", "truncate", "drop")
LOCAL = dt.timezone(dt.timedelta(hours=7))


def parse_faults(spec: str | None) -> list[tuple[str, int]]:
    """``"500:2,429"`` -> ``[("500", 2), ("429", 1)]``; ValueError naming the bad part."""
    out: list[tuple[str, int]] = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        kind, _, times = part.partition(":")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        try:
            n = int(times) if times else 1
        except ValueError:
            raise ValueError(f"fault {part!r}: times must be an integer") from None
        if n < 0:
            raise ValueError(f"fault {part!r}: times must be 0 (always) or more")
        out.append((kind, n))
    return out


class FaultPlan:
    """Which fault, if any, the next identical request gets."""

    def __init__(self, default: str | None = None) -> None:
        self.default = parse_faults(default)
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()

    def next(self, request: Request) -> str | None:
        spec = request.query_params.get("fault")
        plan = parse_faults(spec) if spec is not None else self.default
        if not plan:
            return None
        rest = sorted((k, v) for k, v in request.query_params.multi_items() if k not in FAULT_PARAMS)
        key = f"{request.url.path}?{urlencode(rest)}|{spec}"
        with self.lock:
            n = self.seen.get(key, 0)
            self.seen[key] = n + 1
        for kind, times in plan:
            if times == 0:
                return kind
            if n < times:
                return kind
            n -= times
        return None


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _problem(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": error, "message": message}, headers)


def normalize_since(value: str | None) -> str | None:
    """A date or date-time as the store's text (local time, +07:00); ValueError when it is neither."""
    if not value:
        return None
    if len(value) == 10:
        return dt.date.fromisoformat(value).isoformat()
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=LOCAL)
    return t.astimezone(LOCAL).isoformat(timespec="seconds")


def create_service(
    db_path: Path, api_key: str, faults: str | None = None, max_limit: int = 1000
) -> Starlette:
    """The service's ASGI app over the store at ``db_path``, guarded by ``api_key``."""
    if not api_key:
        raise ValueError("the civil-status service needs an API key")
    store = Store(db_path)
    plan = FaultPlan(faults)

    def authorized(request: Request) -> bool:
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given.encode(), api_key.encode())

    def unauthorized() -> Response:
        return _problem(
            401,
            "unauthorized",
            "missing or wrong API key (header X-API-Key)",
            {"WWW-Authenticate": 'ApiKey header="X-API-Key"'},
        )

    async def apply_fault(request: Request) -> tuple[Response | None, str | None]:
        try:
            fault = plan.next(request)
        except ValueError as exc:
            return _problem(400, "bad_request", str(exc)), None
        if fault in ("500", "503"):
            return _problem(int(fault), "server_error", f"simulated fault {fault}"), None
        if fault == "429":
            wait = request.query_params.get("retry_after", "1")
            return _problem(429, "rate_limited", "too many requests (simulated)", {"Retry-After": wait}), None
        if fault == "slow":
            await asyncio.sleep(float(request.query_params.get("delay", "3")))
        return None, fault

    async def health(request: Request) -> Response:
        counts = {k: await run_in_threadpool(store.count, k) for k in KINDS}
        return _json(
            200,
            {"status": "ok", "service": "civil-status (simulated)", "pid": os.getpid(), "counts": counts},
        )

    async def records(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in KINDS:
            return _problem(404, "not_found", f"no record type {kind!r}; one of {', '.join(KINDS)}")
        if not authorized(request):
            return unauthorized()
        early, fault = await apply_fault(request)
        if early is not None:
            return early
        q = request.query_params
        try:
            limit = int(q.get("limit", "100"))
            if not 1 <= limit <= max_limit:
                raise ValueError(f"limit must be 1..{max_limit}")
            since = normalize_since(q.get("updated_since"))
            offset = int(q["offset"]) if "offset" in q else None
            page = int(q["page"]) if "page" in q else None
            if page is not None:
                if page < 1:
                    raise ValueError("page starts at 1")
                offset = (page - 1) * limit
            if offset is not None and offset < 0:
                raise ValueError("offset must be 0 or more")
            data, nxt = await run_in_threadpool(
                store.page, kind, limit=limit, cursor=q.get("cursor"), updated_since=since, offset=offset
            )
            total = await run_in_threadpool(store.count, kind, since)
        except ValueError as exc:
            return _problem(400, "bad_request", str(exc))
        headers = {}
        if nxt is not None:
            params = {k: v for k, v in q.items() if k not in ("cursor", "offset", "page")}
            if page is not None:
                params["page"] = str(page + 1)
            elif offset is not None:
                params["offset"] = str(offset + limit)
            else:
                params["cursor"] = nxt
            headers["Link"] = f'<{request.url.replace(query=urlencode(params))}>; rel="next"'
        body = orjson.dumps({"data": data, "next_cursor": nxt, "count": len(data), "total": total})
        if fault == "truncate":
            return Response(body[: max(len(body) // 2, 1)], media_type="application/json", headers=headers)
        if fault == "drop":
            return StreamingResponse(
                _dropping(body),
                media_type="application/json",
                headers={**headers, "Content-Length": str(len(body))},
            )
        return Response(body, media_type="application/json", headers=headers)

    async def export(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in KINDS:
            return _problem(404, "not_found", f"no export {kind!r}.xml; one of {', '.join(KINDS)}")
        if not authorized(request):
            return unauthorized()
        early, fault = await apply_fault(request)
        if early is not None:
            return early
        try:
            since = normalize_since(request.query_params.get("updated_since"))
        except ValueError as exc:
            return _problem(400, "bad_request", str(exc))
        chunks = iterate_in_threadpool(
            xml_chunks(store, kind, since, stop_halfway=fault in ("truncate", "drop"))
        )
        return StreamingResponse(
            _then_fail(chunks) if fault == "drop" else chunks, media_type="application/xml; charset=utf-8"
        )

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/api/{kind}", records),
            Route("/export/{kind}.xml", export),
        ]
    )


async def _dropping(body: bytes) -> AsyncIterator[bytes]:
    yield body[: len(body) // 2]
    raise ConnectionAbortedError("simulated connection drop")


async def _then_fail(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk
    raise ConnectionAbortedError("simulated connection drop")


PARENT_PID_ENV = "HUB_DEMO_PARENT_PID"


def _exit_with_parent(pid: int) -> None:
    while os.getppid() == pid:
        time.sleep(1.0)
    os._exit(0)


def serve(
    db_path: Path, api_key: str, *, host: str = "127.0.0.1", port: int = 8765, faults: str | None = None
) -> None:
    """Run the service with uvicorn until interrupted.

    Started by ``hub demo run`` (``HUB_DEMO_PARENT_PID`` set), it also stops when that process is gone,
    so a demo killed hard leaves no service behind on the port."""
    import uvicorn

    app = create_service(db_path, api_key, faults)
    parent = os.environ.get(PARENT_PID_ENV)
    if parent and parent.isdigit():
        threading.Thread(target=_exit_with_parent, args=(int(parent),), daemon=True).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
