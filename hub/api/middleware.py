"""ASGI middleware of the app: repeated slashes in the path are collapsed (``//api/3/action/x``).

frictionless builds URLs as ``baseurl + "/api/3/action/..."``; a base URL ending in ``/`` gives ``//api``,
which CKAN answers normally. Starlette does not merge slashes, so this middleware does.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

_SLASHES = re.compile(r"/{2,}")


class CollapseSlashesMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope.get("path", "")
            if "//" in path:
                new: dict[str, Any] = dict(scope)
                new["path"] = _SLASHES.sub("/", path)
                raw = scope.get("raw_path")
                if raw:
                    new["raw_path"] = re.sub(rb"/{2,}", b"/", raw)
                scope = new
        await self.app(scope, receive, send)
