"""The error tree of the hub. Every error the hub raises on purpose is a ``HubError``.

::

    HubError                      code, http_status, retryable
    ├── ConfigError               a setting, catalog file or contract is wrong (names file and pointer)
    │   ├── ContractError         a JSON Schema contract cannot be loaded or honoured
    │   └── CatalogError          a catalog/<agency>/<dataset>.yaml file is wrong
    ├── NotFoundError             no such dataset, resource, run, connector, ...
    ├── ConflictError             the request contradicts the current state (name taken, run in progress)
    ├── ValidationFailed          input of an API call is invalid (field -> messages)
    ├── AccessDenied              the caller may not do this (403); AuthenticationError for 401
    │   └── AuthenticationError   no valid credentials where they are required
    ├── ConnectorError            a connector failed; ``retryable`` says whether a retry can help
    │   ├── SourceUnavailable     the source could not be reached (retryable)
    │   └── SourceDataError       the source sent data that cannot be read (file, line, column)
    ├── IngestError               a run could not commit (threshold passed, killed, ...)
    │   └── ThresholdExceeded     the invalid share passed the dataset's threshold
    ├── QueryError                a SQL query is invalid, not allowed, or ran out of time
    │   └── BusyError             every query worker is busy and the queue is full (503, retry after)
    └── PublishError              a release cannot be built (de-identification gate, ...)

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


class ValidationFailed(HubError):
    """Invalid input to an API call or command. ``errors`` maps a field to its messages."""

    code = "validation_error"
    http_status = 409

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message, errors=errors or {})
        self.errors = errors or {}


class AccessDenied(HubError):
    code = "access_denied"
    http_status = 403


class AuthenticationError(AccessDenied):
    code = "authentication_required"
    http_status = 401


class ConnectorError(HubError):
    code = "connector_error"
    http_status = 502


class SourceUnavailable(ConnectorError):
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


class ThresholdExceeded(IngestError):
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
