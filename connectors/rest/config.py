"""Config model of the ``rest`` connector."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from hub.ingest.connector import ConnectorConfig, Secret, WriteMode


class ApiKeyAuth(ConnectorConfig):
    type: Literal["api_key"]
    key: Secret
    header: str = Field(default="X-API-Key", description="Header that carries the key.")
    query_param: str | None = Field(default=None, description="Send the key as this query parameter instead.")


class BearerAuth(ConnectorConfig):
    type: Literal["bearer"]
    token: Secret


class ClientCredentialsAuth(ConnectorConfig):
    """OAuth 2.0 client credentials: the connector fetches and renews an access token."""

    type: Literal["oauth_client_credentials"]
    token_url: str
    client_id: str
    client_secret: Secret
    scope: str | None = None
    audience: str | None = None


Auth = Annotated[ApiKeyAuth | BearerAuth | ClientCredentialsAuth, Field(discriminator="type")]


class Pagination(ConnectorConfig):
    """How to reach the next page.

    - ``none``: one request.
    - ``page``: ``?page=1,2,...`` (``page_param``, ``start_page``), with ``size_param=page_size``.
    - ``offset``: ``?offset=0,n,2n,...`` (``offset_param``) with ``size_param=page_size``.
    - ``cursor``: the answer's ``next_cursor_path`` value goes back as ``cursor_param``.
    - ``link``: follow the ``Link: <...>; rel="next"`` header (RFC 8288).

    Page and offset pagination stop at the first page shorter than ``page_size``.
    """

    type: Literal["none", "page", "offset", "cursor", "link"] = "none"
    page_size: int = Field(default=1000, gt=0)
    size_param: str | None = "limit"
    page_param: str = "page"
    start_page: int = 1
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"


class RestStream(ConnectorConfig):
    name: str
    path: str = Field(description="Path under base_url, e.g. /api/births.")
    records_path: str | None = Field(
        default="data",
        description="Dotted path of the records array in the answer; null: the answer is the array.",
    )
    params: dict[str, str] = Field(default_factory=dict)
    pagination: Pagination | None = Field(default=None, description="Default: the connector's pagination.")
    primary_key: list[str] = Field(default_factory=list)
    cursor_field: str | None = Field(default=None, description="Field whose largest value is the next state.")
    updated_since_param: str | None = Field(
        default=None, description="Query parameter that receives the last committed cursor (incremental)."
    )
    write_mode: WriteMode = WriteMode.APPEND
    description: str = ""


class RestConfig(ConnectorConfig):
    base_url: str = Field(description="e.g. https://hotich.example.gov.vn")
    streams: list[RestStream] = Field(min_length=1)
    auth: Auth | None = None
    pagination: Pagination = Field(default_factory=Pagination)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=30.0, gt=0, description="Read/write timeout of one request.")
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, description="Attempts per request, the first included.")
    backoff_seconds: float = Field(default=0.5, ge=0, description="First retry wait; doubles each time.")
    max_backoff_seconds: float = Field(default=30.0, ge=0)
    max_retry_after_seconds: float = Field(default=300.0, ge=0, description="Longest Retry-After honoured.")
    verify_tls: bool = True
