"""ASGI middleware of the app (installed in order by ``hub.api.app.create_app``).

- ``CollapseSlashesMiddleware``: repeated slashes in the path are collapsed (``//api/3/action/x``).
  frictionless builds URLs as ``baseurl + "/api/3/action/..."``; a base URL ending in ``/`` gives
  ``//api``, which CKAN answers normally. Starlette does not merge slashes.
- ``HeadAsGet``: HEAD on every GET route.
"""

from __future__ import annotations

import re
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class HeadAsGet:
    """HEAD on every GET route. A HEAD request goes to the app as it is; when no route takes HEAD there
    (a 405), it goes again as GET, whose status and headers (Content-Length among them) are sent with
    no body. Once the headers are sent the app is told that the client left, so a streamed body stops
    instead of being computed for nobody."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        refused = False

        async def send_unless_refused(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 405:
                refused = True
            if not refused:
                await send(message)

        await self.app(scope, receive, send_unless_refused)
        if refused:
            await self._as_get(scope, receive, send)

    async def _as_get(self, scope: Scope, receive: Receive, send: Send) -> None:
        done = anyio.Event()

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
            elif not done.is_set():  # the first part of the body (or a file to send) ends the response
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                done.set()

        async def receive_until_done() -> Message:
            message: Message = {"type": "http.disconnect"}
            if done.is_set():
                return message
            async with anyio.create_task_group() as tg:

                async def read() -> None:
                    nonlocal message
                    message = await receive()
                    tg.cancel_scope.cancel()

                tg.start_soon(read)
                await done.wait()
                tg.cancel_scope.cancel()
            return message

        await self.app({**scope, "method": "GET"}, receive_until_done, send_headers_only)
