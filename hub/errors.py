"""The error tree of the hub. Every error the hub raises on purpose is a ``HubError``.

::

    HubError                        code, http_status, retryable
    ├── ConfigError                 a setting, catalog file or contract is wrong (names file and pointer)
    │   ├── ContractError           a JSON Schema contract cannot be loaded or honoured
    │   ├── CatalogError            a catalog/<agency>/<dataset>.yaml file is wrong
    │   └── ConsoleUnavailableError the SQL console cannot be set up (hub.console.sessions)
    ├── NotFoundError               no such dataset, resource, run, connector, ...
    │   └── ResultGoneError         a query job's result has expired (410; hub.sql.jobs)
    ├── ConflictError               the request contradicts the current state (name taken, run in progress)
    ├── InvalidInputError           input of an API call is invalid (field -> messages)
    ├── AccessDeniedError           the caller may not do this (403)
    │   ├── AuthenticationError     no valid credentials where they are required (401)
    │   │   ├── InvalidTokenError   a token that is malformed, expired or revoked (hub.auth.tokens)
    │   │   ├── LoginFailedError    PostgreSQL-protocol credentials refused (hub.pgwire.auth)
    │   │   ├── SignInRequiredError / SignInFailedError   the SQL console (hub.api.console_render,
    │   │   │                       hub.console.sessions)
    │   └── CsrfRefusedError        a console POST without its token or from another site
    ├── ConnectorError              a connector failed; ``retryable`` says whether a retry can help
    │   ├── SourceUnavailableError  the source could not be reached (retryable)
    │   └── SourceDataError         the source sent data that cannot be read (file, line, column)
    │       └── PageUnreadableError a REST page whose body cannot be parsed (retried; connectors.rest)
    ├── IngestError                 a run could not commit (threshold passed, killed, ...)
    │   └── ThresholdExceededError  the invalid share passed the dataset's threshold
    ├── QueryError                  a SQL query is invalid, not allowed, or ran out of time
    │   └── BusyError               every query worker is busy and the queue is full (503, retry after)
    │       └── ClientLimitError    TooManyQueriesError, QuotaExceededError: one client's limits
    ├── PublishError                a release cannot be built (de-identification gate, ...)
    ├── WitnessUnavailableError     the audit log's external witness cannot be reached (hub.auth.witness)
    ├── CkanBadRequestError, SearchQueryError, InvalidBodyError, BodyTooLargeError, NotAcceptableError
    │                               how the HTTP layer refuses a request (hub.api.errors, hub.api.v1_query)
    ├── QuerySyntaxError            a package_search ``fq`` that cannot be parsed (hub.catalog.search_fq)
    ├── ProtocolError               a query worker's pipe closed or carried no frame (engine.protocol)
    ├── NotCatalogueError           not a catalogue query: run it on the warehouse (hub.pgwire)
    └── ConnectionEndError          a PostgreSQL-protocol connection ends: FatalError, ClientGoneError,
                                    ProtocolViolationError (hub.pgwire)

The classes outside this module sit beside the code that raises them; every one is a ``HubError``.
Three private signals of control flow (a job's and a pool's cancel, a regex the contracts cannot
translate) are plain exceptions that never leave their module.

Data problems inside rows are not exceptions: they are validation reports (see ``hub.contracts``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class HubError(Exception):
    """Root of the hub's errors: a machine code, an HTTP status, and whether a retry can help."""

    code: ClassVar[str] = "hub_error"
    http_status: ClassVar[int] = 500
    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details
        if retryable is not None:
            self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class ConfigError(HubError):
    code = "config_error"
    http_status = 500


def _located(message: str, file: str | None, pointer: str | None) -> str:
    """``file#pointer: message``, as far as the place is known."""
    if not file:
        return message
    return f"{file}{'' if pointer is None else '#' + pointer}: {message}"


class ContractError(ConfigError):
    """A contract file is wrong; the message names the file and the JSON pointer."""

    code = "contract_error"

    def __init__(self, message: str, *, file: str | None = None, pointer: str | None = None) -> None:
        super().__init__(_located(message, file, pointer), file=file, pointer=pointer)


class CatalogError(ConfigError):
    """A catalog file is wrong; the message names the file and the JSON pointer."""

    code = "catalog_error"

    def __init__(self, message: str, *, file: str | None = None, pointer: str | None = None) -> None:
        super().__init__(_located(message, file, pointer), file=file, pointer=pointer)


class NotFoundError(HubError):
    code = "not_found"
    http_status = 404


class ConflictError(HubError):
    code = "conflict"
    http_status = 409


class InvalidInputError(HubError):
    """Invalid input to an API call or command. ``errors`` maps a field to its messages."""

    code = "validation_error"
    http_status = 409

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message, errors=errors or {})
        self.errors = errors or {}


class AccessDeniedError(HubError):
    code = "access_denied"
    http_status = 403


class AuthenticationError(AccessDeniedError):
    code = "authentication_required"
    http_status = 401


class ConnectorError(HubError):
    code = "connector_error"
    http_status = 502


class SourceUnavailableError(ConnectorError):
    code = "source_unavailable"
    retryable = True


class SourceDataError(ConnectorError):
    """The source sent data that cannot be read. Names the file, line and column where known."""

    code = "source_data_error"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | str | None = None,
    ) -> None:
        parts = [
            p for p in (file, f"line {line}" if line else None, f"column {column}" if column else None) if p
        ]
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message, retryable=False)
        self.details.update(file=file, line=line, column=column)


class IngestError(HubError):
    code = "ingest_error"


class ThresholdExceededError(IngestError):
    code = "threshold_exceeded"
    http_status = 422


class QueryError(HubError):
    code = "query_error"
    http_status = 400


class BusyError(QueryError):
    """Every query worker is busy and the queue is full: retry after ``retry_after`` seconds."""

    code = "busy"
    http_status = 503
    retryable = True

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class PublishError(HubError):
    code = "publish_error"
    http_status = 422
