"""``GET /healthz``: the process answers and the metadata database is reachable."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import Response

from hub import __version__
from hub.api.deps import SessionDep
from hub.api.errors import json_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and database check")
def healthz(session: SessionDep) -> Response:
    body: dict[str, Any] = {"status": "ok", "version": __version__}
    try:
        session.execute(text("SELECT 1"))
        body["database"] = "ok"
    except Exception as exc:  # the answer itself is the report
        body.update(status="error", database=f"{type(exc).__name__}: {exc}")
        return json_response(body, 503)
    return json_response(body)
