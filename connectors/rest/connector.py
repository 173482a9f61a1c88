"""The ``rest`` connector: records from a JSON HTTP API.

Pagination by page number, offset, cursor or ``Link`` header; API key, bearer token or OAuth 2.0
client credentials; retries with backoff on 429/5xx/timeouts honouring ``Retry-After``; incremental
reads through an ``updated_since`` query parameter fed from the runner's state. See README.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import httpx
import pyarrow as pa

from connectors.rest.config import (
    ApiKeyAuth,
    BearerAuth,
    ClientCredentialsAuth,
    Pagination,
    RestConfig,
    RestStream,
)
from connectors.rest.http import PageUnreadableError, Retrier
from connectors.rest.pages import Page, PageParser
from hub.errors import ConnectorError, HubError
from hub.ingest.connector import CheckResult, Connector, StreamSpec
from hub.ingest.prefetch import prefetch


class RestConnector(Connector[RestConfig]):
    name = "rest"
    version = "1.0.0"
    config_model = RestConfig
    description = "Records from a JSON HTTP API (page, offset, cursor or Link pagination)."

    _token: str | None = None
    _token_expires: float = 0.0

    def streams(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                name=s.name,
                primary_key=tuple(s.primary_key),
                cursor_field=s.cursor_field,
                write_mode=s.write_mode,
                description=s.description,
            )
            for s in self.config.streams
        ]

    # --- HTTP plumbing ---------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        cfg = self.config
        timeout = httpx.Timeout(cfg.timeout_seconds, connect=cfg.connect_timeout_seconds)
        headers = {"Accept": "application/json", "User-Agent": "lien-thong-hub/rest", **cfg.headers}
        return httpx.Client(timeout=timeout, headers=headers, verify=cfg.verify_tls, follow_redirects=True)

    def _retrier(self) -> Retrier:
        cfg = self.config
        return Retrier(
            cfg.max_attempts, cfg.backoff_seconds, cfg.max_backoff_seconds, cfg.max_retry_after_seconds
        )

    def _auth(self, client: httpx.Client, headers: dict[str, str], params: dict[str, Any]) -> None:
        auth = self.config.auth
        if isinstance(auth, ApiKeyAuth):
            key = self.context.reveal(auth.key)
            if auth.query_param:
                params[auth.query_param] = key
            else:
                headers[auth.header] = key
        elif isinstance(auth, BearerAuth):
            headers["Authorization"] = f"Bearer {self.context.reveal(auth.token)}"
        elif isinstance(auth, ClientCredentialsAuth):
            headers["Authorization"] = f"Bearer {self._access_token(client, auth)}"

    def _access_token(self, client: httpx.Client, auth: ClientCredentialsAuth, renew: bool = False) -> str:
        if self._token and not renew and time.monotonic() < self._token_expires - 30:
            return self._token
        form = {"grant_type": "client_credentials"}
        if auth.scope:
            form["scope"] = auth.scope
        if auth.audience:
            form["audience"] = auth.audience
        secret = self.context.reveal(auth.client_secret)

        def parse(response: httpx.Response) -> dict[str, Any]:
            try:
                data = response.json()
            except ValueError as exc:
                raise PageUnreadableError("token answer is not JSON") from exc
            if not isinstance(data, dict) or "access_token" not in data:
                raise ConnectorError(f"POST {auth.token_url}: answer has no access_token", retryable=False)
            return data

        data = self._retrier().call(
            auth.token_url,
            lambda: client.post(auth.token_url, data=form, auth=(auth.client_id, secret)),
            parse,
        )
        self._token = str(data["access_token"])
        self._token_expires = time.monotonic() + float(data.get("expires_in") or 3600)
        return self._token

    def _get(
        self, client: httpx.Client, url: str, params: dict[str, Any], parser: PageParser, retrier: Retrier
    ) -> tuple[Page, httpx.Response]:
        holder: dict[str, httpx.Response] = {}

        def send() -> httpx.Response:
            headers: dict[str, str] = {}
            query = dict(params)
            self._auth(client, headers, query)
            target = httpx.URL(url).copy_merge_params(query) if query else httpx.URL(url)
            response = client.get(target, headers=headers)
            if response.status_code == 401 and isinstance(self.config.auth, ClientCredentialsAuth):
                self._access_token(client, self.config.auth, renew=True)
                self._auth(client, headers, query)
                response = client.get(target, headers=headers)
            return response

        def parse(response: httpx.Response) -> Page:
            holder["response"] = response
            return parser.parse(response.content)

        page = retrier.call(url, send, parse)
        return page, holder["response"]

    # --- reading ---------------------------------------------------------------------------------
    def _stream_config(self, name: str) -> RestStream:
        spec = self.stream(name)
        return next(s for s in self.config.streams if s.name == spec.name)

    def prefetch(self, stream: str) -> bool:
        """No: ``read`` reads ahead itself (one reading thread per stream)."""
        return False

    def read(self, stream: str, state: dict[str, Any] | None) -> Iterator[pa.RecordBatch]:
        # the next page is fetched and parsed while the caller works on this one
        for batch in prefetch(self._pages(self._stream_config(stream), state, limit_pages=None)):
            if self.context.progress is not None:
                self.context.progress(batch.num_rows)
            yield batch

    def _pages(
        self, s: RestStream, state: dict[str, Any] | None, limit_pages: int | None
    ) -> Iterator[pa.RecordBatch]:
        pg: Pagination = s.pagination or self.config.pagination
        url = urljoin(self.config.base_url.rstrip("/") + "/", s.path.lstrip("/"))
        params: dict[str, Any] = dict(s.params)
        if s.updated_since_param and state and state.get("cursor") is not None:
            params[s.updated_since_param] = str(state["cursor"])
        if pg.type in ("page", "offset") and pg.size_param:
            params[pg.size_param] = pg.page_size
        parser = PageParser(
            s.records_path, pg.next_cursor_path if pg.type == "cursor" else None, self.context.arrow_schema
        )
        retrier = self._retrier()
        page_no, offset, pages = pg.start_page, 0, 0
        next_url: str | None = url
        with self._client() as client:
            while next_url is not None:
                if pg.type == "page":
                    params[pg.page_param] = page_no
                elif pg.type == "offset":
                    params[pg.offset_param] = offset
                page, response = self._get(client, next_url, params, parser, retrier)
                pages += 1
                n = page.batch.num_rows
                if n:
                    yield page.batch
                if limit_pages is not None and pages >= limit_pages:
                    return
                next_url = None
                if pg.type == "page" and n >= pg.page_size:
                    page_no, next_url = page_no + 1, url
                elif pg.type == "offset" and n >= pg.page_size:
                    offset, next_url = offset + n, url
                elif pg.type == "cursor" and page.next_cursor not in (None, "") and n:
                    params[pg.cursor_param] = page.next_cursor
                    next_url = url
                elif pg.type == "link":
                    link = response.links.get("next", {}).get("url")
                    if link:
                        next_url = urljoin(str(response.url), link)
                        params = {}

    def check(self) -> CheckResult:
        s = self.config.streams[0]
        try:
            batches = list(self._pages(s, None, limit_pages=1))
        except HubError as exc:
            return CheckResult(False, exc.message, {"stream": s.name, "code": exc.code})
        except httpx.HTTPError as exc:
            return CheckResult(False, f"{type(exc).__name__}: {exc}", {"stream": s.name})
        rows = sum(b.num_rows for b in batches)
        columns = batches[0].schema.names if batches else []
        return CheckResult(
            True,
            f"{self.config.base_url}: stream {s.name} answered, {rows} records on the first page",
            {"stream": s.name, "rows_first_page": rows, "columns": columns},
        )
