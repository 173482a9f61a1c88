"""A small JSON API on 127.0.0.1 that stands in for an agency's system in tests and benchmarks.

It serves ``records`` at ``/items`` with every pagination style the ``rest`` connector speaks
(``?page=``, ``?offset=``, ``?cursor=``, ``Link`` headers; ``?updated_since=`` filters on
``updated_at``), checks an API key, a bearer token or OAuth client-credentials tokens, and injects
faults on demand: a queue of statuses (500, 429 with ``Retry-After``), slow answers, and bodies cut
off mid-page.

    with FakeApi(records, api_key="k") as api:
        api.faults.extend([500, 429])       # the next two requests fail
        api.truncate = 1                    # then one body is cut in half
        api.healthy_first = 2               # (faults start after two good answers)
        ... api.url ...
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson


class FakeApi:
    def __init__(
        self,
        records: list[dict[str, Any]],
        *,
        api_key: str | None = None,
        bearer: str | None = None,
        client: tuple[str, str] | None = None,
        next_cursor_key: str = "next_cursor",
        cache_pages: bool = False,
    ) -> None:
        self.records = records
        self.api_key = api_key
        self.bearer = bearer
        self.client = client
        self.next_cursor_key = next_cursor_key
        self.cache_pages = cache_pages  # serve each distinct page's bytes from memory (benchmarks)
        self._cache: dict[str, tuple[bytes, str | None]] = {}
        self.faults: deque[int] = deque()
        self.retry_after: str | None = "0"
        self.delay = 0.0
        self.truncate = 0
        self.healthy_first = 0  # answer this many requests normally before any fault applies
        self.requests: list[str] = []
        self.tokens: set[str] = set()
        self.token_requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    # --- answers -------------------------------------------------------------------------------
    def _authorized(self, headers: Any) -> bool:
        if self.api_key is not None and headers.get("X-API-Key") != self.api_key:
            return False
        auth = headers.get("Authorization") or ""
        if self.bearer is not None and auth != f"Bearer {self.bearer}":
            return False
        return not (self.client is not None and auth.removeprefix("Bearer ") not in self.tokens)

    def page(self, query: dict[str, str]) -> tuple[dict[str, Any], str | None]:
        rows = self.records
        since = query.get("updated_since")
        if since:
            rows = [r for r in rows if str(r.get("updated_at", "")) > since]
        limit = int(query.get("limit", 100))
        if "cursor" in query or query.get("mode") == "cursor":
            start = int(query.get("cursor") or 0)
        elif "offset" in query:
            start = int(query["offset"])
        else:
            start = (int(query.get("page", 1)) - 1) * limit
        chunk = rows[start : start + limit]
        more = start + limit < len(rows)
        body: dict[str, Any] = {"data": chunk, "total": len(rows)}
        body[self.next_cursor_key] = str(start + limit) if more else None
        link = None
        if query.get("mode") == "link" and more:
            link = f'</items?mode=link&offset={start + limit}&limit={limit}>; rel="next"'
        return body, link

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if urlsplit(self.path).path != "/oauth/token" or api.client is None:
                    self._send(404, b'{"error":"not found"}')
                    return
                basic = (self.headers.get("Authorization") or "").removeprefix("Basic ")
                user, _, pw = base64.b64decode(basic).decode().partition(":") if basic else ("", "", "")
                if form.get("grant_type") != ["client_credentials"] or (user, pw) != api.client:
                    self._send(401, b'{"error":"invalid_client"}')
                    return
                token = secrets.token_urlsafe(16)
                with api._lock:
                    api.tokens.add(token)
                    api.token_requests += 1
                self._send(
                    200, orjson.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 600})
                )

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with api._lock:
                    api.requests.append(self.path)
                    clean = api.healthy_first > 0
                    api.healthy_first -= 1 if clean else 0
                    fault = api.faults.popleft() if api.faults and not clean else None
                    truncate = api.truncate > 0 and not clean
                    if truncate and fault is None:
                        api.truncate -= 1
                if api.delay and not clean:
                    time.sleep(api.delay)
                if fault is not None:
                    headers = {"Retry-After": api.retry_after} if fault == 429 and api.retry_after else {}
                    self._send(fault, orjson.dumps({"error": f"injected {fault}"}), headers)
                    return
                if parts.path != "/items":
                    self._send(404, b'{"error":"no such path"}')
                    return
                if not api._authorized(self.headers):
                    self._send(401, b'{"error":"unauthorized"}')
                    return
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                cached = api._cache.get(parts.query) if api.cache_pages else None
                if cached is None:
                    body, link = api.page(query)
                    cached = (orjson.dumps(body), link)
                    if api.cache_pages:
                        api._cache[parts.query] = cached
                raw, link = cached
                if truncate:
                    raw = raw[: len(raw) // 2]
                self._send(200, raw, {"Link": link} if link else None)

        return Handler
