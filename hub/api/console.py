"""The SQL console in the browser: ``/query`` for signed-in people (pages, not API: no OpenAPI entry).

======================================  ==========================================================
``GET /query``                          the console (signed out: what it is, and "sign in")
``GET /query/login``                    sign in: the hub's own authorization code flow with PKCE
``GET /query/callback``                 its redirect URI: the code exchanged, the session opened
``POST /query/logout``                  sign out: the tokens revoked, the session deleted
``POST /query/run``                     run the editor's SQL as a query job, then show the job
``GET /query/jobs/{id}``                a job: status and progress, the result paged (``?page=``)
``GET /query/jobs/{id}/status``         the same as JSON (the page's script follows progress)
``POST /query/jobs/{id}/cancel``        cancel it (its query worker is freed)
``GET /query/jobs/{id}/result``         download: ``format=csv`` (``bom=1``), ``tsv``, ``jsonl``,
                                        ``parquet``, ``arrow``
``GET /query/history``                  the person's jobs, newest first
``POST /query/saved``                   save the editor's SQL (``title``, ``org``: shared with)
``GET /query/saved/{id}``               a saved query in the editor
``POST /query/saved/{id}``              change it (its owner only)
``POST /query/saved/{id}/delete``       delete it (its owner only)
======================================  ==========================================================

Queries run as the query jobs of ``/api/v1/queries`` (``hub.jobs``), checked and authorized by the one
SQL door (``hub.sql.door``, ``API_QUERY``) as the person the session's token names: the same refusals
(a table the person may not read "does not exist or is not readable"), limits, audit and history as
the API. Every POST passes the CSRF checks of ``hub.api.console_render``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pyarrow.parquet as pq
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from hub.api import download_formats as fmts
from hub.api.console_render import (
    Screen,
    checked_form,
    clear_cookie,
    client_ip,
    console_context,
    console_of,
    history_context,
    hub_of,
    owner,
    render,
    set_cookie,
    signed_in,
    text_field,
)
from hub.api.streaming import Producer, Streamed
from hub.api.v1_query import MEDIA, SNAPSHOTS_HEADER, choose_format, encode, snapshots_header
from hub.console import saved
from hub.console.results import read_page
from hub.console.sessions import COOKIE, ConsoleUnavailableError, Signed, SignInFailedError, safe_next
from hub.db import transaction
from hub.errors import HubError, InvalidInputError
from hub.runtime import Hub
from hub.sql import door
from hub.sql.jobs import ResultGoneError
from hub.sql.models import SUCCEEDED, UNFINISHED, QueryJob

router = APIRouter(include_in_schema=False)

WAIT_SECONDS = 2.5
"""How long ``POST /query/run`` waits for a job to end before it shows the job running."""
_EXTENSION = {"arrow": "arrows", "parquet": "parquet", "csv": "csv", "tsv": "tsv", "jsonl": "jsonl"}


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


async def _page(request: Request, signed: Signed, screen: Screen, status: int = 200) -> Response:
    context = await run_in_threadpool(console_context, hub_of(request), signed, screen)
    return render(request, "console.html", context, status)


def _sign_in_page(
    request: Request,
    *,
    error: str | None = None,
    status: int = 200,
    available: bool = True,
    next_path: str = "/query",
) -> Response:
    context = {
        "error": error,
        "signed_out": request.query_params.get("signed_out") == "1",
        "available": available,
        "next_path": next_path,
    }
    return render(request, "console_signin.html", context, status)


# --- signing in and out ----------------------------------------------------------------------------


@router.get("/query")
async def console_home(request: Request, sql: str = "") -> Response:
    signed = await signed_in(request)
    if signed is None:
        return _sign_in_page(request)
    return await _page(request, signed, Screen(sql=sql))


@router.get("/query/login")
async def sign_in(request: Request, next: str = "/query") -> Response:
    if await signed_in(request) is not None:
        return _see_other(safe_next(next))
    try:
        secret, url = await run_in_threadpool(console_of(request).begin, next, request.cookies.get(COOKIE))
    except ConsoleUnavailableError as exc:
        return _sign_in_page(request, error=exc.message, status=exc.http_status, available=False)
    response = RedirectResponse(url, status_code=302)
    set_cookie(request, response, secret)
    return response


@router.get("/query/callback")
async def sign_in_callback(
    request: Request, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    console = console_of(request)
    try:
        secret, path = await run_in_threadpool(
            console.finish, request.cookies.get(COOKIE), code, state, error, client_ip(request)
        )
    except SignInFailedError as exc:
        response = _sign_in_page(request, error=exc.message, status=exc.http_status)
        clear_cookie(request, response)
        return response
    response = _see_other(path)
    set_cookie(request, response, secret)
    return response


@router.post("/query/logout")
async def sign_out(request: Request) -> Response:
    signed = await signed_in(request)
    if signed is not None:
        await checked_form(request, signed)
        await run_in_threadpool(console_of(request).end, request.cookies.get(COOKIE), client_ip(request))
    response = _see_other("/query?signed_out=1")
    clear_cookie(request, response)
    return response


async def _required(request: Request) -> Signed | Response:
    """The signed-in session, or the way to sign in (back to this page afterwards)."""
    signed = await signed_in(request)
    if signed is not None:
        return signed
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _see_other(f"/query/login?next={quote(path, safe='/')}")


# --- running queries -------------------------------------------------------------------------------


def _submit(hub: Hub, signed: Signed, sql: str) -> QueryJob:
    principal = signed.principal
    job = hub.jobs.submit(
        owner(signed), sql, {}, lambda s: door.prepare(hub, s, principal, sql, door.API_QUERY)
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while job.status in UNFINISHED and time.monotonic() < deadline:
        time.sleep(0.05)
        job = hub.jobs.get(job.id, owner(signed))
    return job


@router.post("/query/run")
async def run_query(request: Request) -> Response:
    signed = await signed_in(request)
    form = await checked_form(request, signed)
    assert signed is not None
    sql = text_field(form, "sql")
    screen = Screen(sql=sql, title=text_field(form, "title"))
    if not sql.strip():
        screen.error = "Write one SELECT to run. / Hãy viết một câu SELECT."
        return await _page(request, signed, screen, 400)
    try:
        job = await run_in_threadpool(_submit, hub_of(request), signed, sql)
    except HubError as exc:
        screen.error = exc.message
        return await _page(request, signed, screen, exc.http_status)
    return _see_other(f"/query/jobs/{job.id}")


def _job_screen(hub: Hub, signed: Signed, job_id: str, page: int) -> Screen:
    job = hub.jobs.get(job_id, owner(signed))
    screen = Screen(sql=job.sql, job=job)
    if job.status == SUCCEEDED:
        try:
            path = hub.jobs.result_file(job_id, owner(signed))
            screen.page = read_page(path, page, job.rows)
        except ResultGoneError as exc:
            screen.result_note = exc.message + " Run the query again for a new result."
    return screen


@router.get("/query/jobs/{job_id}")
async def show_job(request: Request, job_id: str, page: int = 1) -> Response:
    signed = await _required(request)
    if isinstance(signed, Response):
        return signed
    screen = await run_in_threadpool(_job_screen, hub_of(request), signed, job_id, page)
    return await _page(request, signed, screen)


@router.get("/query/jobs/{job_id}/status")
async def job_status(request: Request, job_id: str) -> Response:
    signed = await signed_in(request)
    if signed is None:
        return JSONResponse(
            {"error": "sign in first"}, status_code=401, headers={"Cache-Control": "no-store"}
        )
    job = await run_in_threadpool(hub_of(request).jobs.get, job_id, owner(signed))
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "rows": job.rows,
        "seconds": round(job.seconds or 0.0, 3),
        "error": job.error,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post("/query/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> Response:
    signed = await signed_in(request)
    await checked_form(request, signed)
    assert signed is not None
    await run_in_threadpool(hub_of(request).jobs.cancel, job_id, owner(signed))
    return _see_other(f"/query/jobs/{job_id}")


@router.get("/query/jobs/{job_id}/result")
async def job_result(request: Request, job_id: str, format: str = "csv", bom: str = "") -> Response:
    signed = await _required(request)
    if isinstance(signed, Response):
        return signed
    fmt = choose_format(format, None)
    hub = hub_of(request)
    job = await run_in_threadpool(hub.jobs.get, job_id, owner(signed))
    path = await run_in_threadpool(hub.jobs.result_file, job_id, owner(signed))
    headers = {
        "Content-Disposition": f'attachment; filename="query-{job_id}.{_EXTENSION[fmt]}"',
        "Cache-Control": "no-store",
        SNAPSHOTS_HEADER: snapshots_header([(str(s.get("table")), s.get("snapshot")) for s in job.snapshots]),
    }
    if fmt == "parquet":
        return FileResponse(path, media_type=MEDIA[fmt], headers=headers)
    schema = pq.read_schema(path)
    with_bom = bom.lower() in ("1", "true", "yes", "on") and fmt in ("csv", "tsv")
    body = encode(fmt, fmts.batches((str(path),), schema), schema, bom=with_bom)
    return Streamed(Producer(body), media_type=MEDIA[fmt], headers=headers)


@router.get("/query/history")
async def history(request: Request) -> Response:
    signed = await _required(request)
    if isinstance(signed, Response):
        return signed
    context = await run_in_threadpool(history_context, hub_of(request), signed)
    return render(request, "console_history.html", context)


# --- saved queries ---------------------------------------------------------------------------------


def _org_field(value: str) -> str | None:
    return value or None


def _save(hub: Hub, signed: Signed, query_id: str | None, title: str, sql: str, org: str | None) -> str:
    max_sql = hub.settings.query_max_sql_chars
    with transaction(hub.session_factory) as s:
        if query_id is None:
            return saved.create(s, signed.user_id, title, sql, org, max_sql=max_sql).id
        return saved.update(s, query_id, signed.user_id, title, sql, org, max_sql=max_sql).id


async def _save_route(request: Request, query_id: str | None) -> Response:
    signed = await signed_in(request)
    form = await checked_form(request, signed)
    assert signed is not None
    sql, title = text_field(form, "sql"), text_field(form, "title")
    hub = hub_of(request)
    try:
        new_id = await run_in_threadpool(
            _save, hub, signed, query_id, title, sql, _org_field(text_field(form, "org"))
        )
    except InvalidInputError as exc:
        current = await run_in_threadpool(_saved_view, hub, signed, query_id) if query_id else None
        screen = Screen(sql=sql, title=title, current=current, error=exc.message)
        return await _page(request, signed, screen, exc.http_status)
    return _see_other(f"/query/saved/{new_id}")


def _saved_view(hub: Hub, signed: Signed, query_id: str) -> saved.SavedView:
    with transaction(hub.session_factory) as s:
        return saved.get(s, query_id, signed.user_id)


@router.post("/query/saved")
async def save_query(request: Request) -> Response:
    return await _save_route(request, None)


@router.get("/query/saved/{query_id}")
async def show_saved(request: Request, query_id: str) -> Response:
    signed = await _required(request)
    if isinstance(signed, Response):
        return signed
    current = await run_in_threadpool(_saved_view, hub_of(request), signed, query_id)
    return await _page(request, signed, Screen(sql=current.sql, current=current))


@router.post("/query/saved/{query_id}")
async def change_saved(request: Request, query_id: str) -> Response:
    return await _save_route(request, query_id)


def _delete(hub: Hub, signed: Signed, query_id: str) -> None:
    with transaction(hub.session_factory) as s:
        saved.delete(s, query_id, signed.user_id)


@router.post("/query/saved/{query_id}/delete")
async def delete_saved(request: Request, query_id: str) -> Response:
    signed = await signed_in(request)
    await checked_form(request, signed)
    assert signed is not None
    await run_in_threadpool(_delete, hub_of(request), signed, query_id)
    return _see_other("/query")
