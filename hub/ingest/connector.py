"""The connector contract: the public API a connector plugin implements.

A connector pulls one or more *streams* from an agency's system and yields ``pyarrow.RecordBatch``es.
It does not keep state: the runner passes the last committed state of a stream to ``read`` and
advances it only in the commit that makes the new rows visible.

A plugin is a class registered under the ``hub.connectors`` entry-point group::

    [project.entry-points."hub.connectors"]
    land_vbdlis = "my_agency.vbdlis:VbdlisConnector"

    class VbdlisConfig(ConnectorConfig):
        url: str
        password: Secret                       # {"$env": "VBDLIS_PASSWORD"} or {"$secret": "name"}

    class VbdlisConnector(Connector[VbdlisConfig]):
        name = "land_vbdlis"
        version = "1.0.0"
        config_model = VbdlisConfig

        def streams(self) -> list[StreamSpec]: ...
        def check(self) -> CheckResult: ...
        def read(self, stream, state) -> Iterator[pa.RecordBatch]: ...

Rows carry their source position in two optional reserved columns, so that the runner can name the
file and row of an invalid record: ``_hub_row`` (int64, 1-based line or record number in the source)
and ``_hub_source`` (string, e.g. the file name). The runner numbers rows itself when they are absent.
Column values may be the contract's types or text (CSV, XML): the validator parses text columns.

A row the connector could not read (a CSV line with the wrong number of columns or broken quoting, bytes
that are not valid in the declared encoding) may be handed on instead of failing the run, when the
source is configured for it (``on_error: quarantine``). Such a row carries a third reserved column,
``_hub_error`` (string): the reason, e.g. ``expected 5 columns, found 4``; its data columns are null and
its ``_hub_row``/``_hub_source`` say where it was. ``_hub_error`` is null on every readable row, and a
connector that never quarantines leaves the column out. The validator sends every row whose
``_hub_error`` is not null to quarantine with one error ``{path: "", keyword: "source", message:
<_hub_error>}`` without checking its (null) fields, and drops the column from valid rows.

Errors: raise ``hub.errors.SourceUnavailableError`` (retryable) when the source cannot be reached,
``hub.errors.SourceDataError`` (file, line, column) when its data cannot be read, and
``hub.errors.ConnectorError(..., retryable=...)`` otherwise.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import pyarrow as pa
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from hub.errors import ConfigError

# the reserved columns are part of the connector contract; their one definition is hub.reserved
from hub.reserved import ERROR_COLUMN as ERROR_COLUMN
from hub.reserved import RESERVED_COLUMNS as RESERVED_COLUMNS
from hub.reserved import ROW_COLUMN as ROW_COLUMN
from hub.reserved import SOURCE_COLUMN as SOURCE_COLUMN


class WriteMode(StrEnum):
    APPEND = "append"
    REPLACE = "replace"
    UPSERT = "upsert"


class SecretRef(BaseModel):
    """A reference to a secret: ``{"$env": "NAME"}`` (an environment variable) or ``{"$secret": "name"}``
    (a secret stored encrypted in the hub). Literal secrets are refused in configuration."""

    model_config = ConfigDict(frozen=True)
    env: str | None = None
    secret: str | None = None

    def reveal(self, resolver: Callable[[str], str] | None = None) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"environment variable {self.env} (a secret reference) is not set")
            return value
        if self.secret is not None:
            if resolver is None:
                raise ConfigError(f"secret {self.secret!r} cannot be resolved here (no secret store)")
            return resolver(self.secret)
        raise ConfigError("empty secret reference")

    def __repr__(self) -> str:
        return f"SecretRef(env={self.env!r})" if self.env else f"SecretRef(secret={self.secret!r})"


def _parse_secret(value: Any) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    if isinstance(value, dict) and set(value) == {"$env"}:
        return SecretRef(env=str(value["$env"]))
    if isinstance(value, dict) and set(value) == {"$secret"}:
        return SecretRef(secret=str(value["$secret"]))
    raise ValueError('a secret must be a reference: {"$env": "NAME"} or {"$secret": "name"}, never a literal')


def _dump_secret(ref: SecretRef) -> dict[str, str]:
    return {"$env": ref.env} if ref.env is not None else {"$secret": ref.secret or ""}


Secret = Annotated[SecretRef, BeforeValidator(_parse_secret), PlainSerializer(_dump_secret)]
"""Type of a config field that holds a secret. Serialises back to the reference, never the value."""


class ConnectorConfig(BaseModel):
    """Base of every connector's config model. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class StreamSpec:
    """A stream a connector offers: its name, key, cursor and the write mode it suits."""

    name: str
    primary_key: tuple[str, ...] = ()
    cursor_field: str | None = None
    write_mode: WriteMode = WriteMode.APPEND
    schema: pa.Schema | None = None
    description: str = ""


@dataclass
class CheckResult:
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectorContext:
    """What the hub hands a connector: where relative paths start, how secrets resolve, the batch size,
    and, when run for a dataset, its declared stream settings (cursor field, primary key) and its
    contract's Arrow schema. Fixed when the connector is built (``hub.ingest.registry.build_connector``)."""

    base_dir: str = "."
    batch_rows: int = 131_072
    secret_resolver: Callable[[str], str] | None = None
    cursor_field: str | None = None
    primary_key: tuple[str, ...] = ()
    arrow_schema: pa.Schema | None = None
    progress: Callable[[int], None] | None = None

    def reveal(self, secret: SecretRef) -> str:
        return secret.reveal(self.secret_resolver)


C = TypeVar("C", bound=ConnectorConfig)


class Connector(ABC, Generic[C]):
    """Base class of connector plugins. See the module docstring."""

    name: ClassVar[str]
    version: ClassVar[str] = "0.0.0"
    config_model: ClassVar[type[ConnectorConfig]]
    description: ClassVar[str] = ""

    def __init__(self, config: C, context: ConnectorContext | None = None) -> None:
        self.config = config
        self.context = context or ConnectorContext()

    @classmethod
    def from_dict(cls, config: dict[str, Any], context: ConnectorContext | None = None) -> Connector[C]:
        """Build the connector from a plain config dict; invalid config raises ``ConfigError``."""
        from pydantic import ValidationError

        try:
            model = cls.config_model.model_validate(config)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"connector {cls.name}: invalid config: {problems}") from exc
        return cls(model, context)  # type: ignore[arg-type]

    @abstractmethod
    def streams(self) -> list[StreamSpec]:
        """The streams this configured connector offers."""

    @abstractmethod
    def check(self) -> CheckResult:
        """Test the connection; never raise for an unreachable source, say what is wrong."""

    @abstractmethod
    def read(self, stream: str, state: dict[str, Any] | None) -> Iterator[pa.RecordBatch]:
        """Yield the stream's rows after ``state`` (None: everything) as record batches."""

    def prefetch(self, stream: str) -> bool:
        """Whether the runner should read this stream in a thread of its own, a batch ahead of
        validation (``hub.ingest.prefetch``; default: yes, it overlaps network waits and Python decoding
        with the rest). A connector whose reader already decodes in parallel threads returns False: the
        extra thread only competes with them (Parquet files: ~15% fewer rows/s with it on 2 cores). So
        does one whose ``read`` reads ahead itself with ``hub.ingest.prefetch`` (``rest``, ``xml``): a
        stream gets one reading thread, never two."""
        return True

    def next_state(
        self, stream: str, state: dict[str, Any] | None, cursor_max: Any | None
    ) -> dict[str, Any] | None:
        """The state to commit after a successful read. Default: ``{"cursor": <max cursor value read>}``."""
        if cursor_max is None:
            return state
        return {**(state or {}), "cursor": cursor_max}

    def stream(self, name: str | None) -> StreamSpec:
        streams = self.streams()
        if name is None:
            if len(streams) != 1:
                raise ConfigError(
                    f"connector {self.name} offers {len(streams)} streams; name one with source.stream"
                )
            return streams[0]
        for s in streams:
            if s.name == name:
                return s
        raise ConfigError(
            f"connector {self.name} has no stream {name!r}; it offers {', '.join(s.name for s in streams)}"
        )
