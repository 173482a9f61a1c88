"""The ``sql`` connector: a table or a query of a relational database, as Arrow record batches.

::

    source:
      connector: sql
      config:
        url: postgresql://hotich@10.0.0.5:5432/hotich       # no password in the URL
        password: {"$env": "HOTICH_DB_PASSWORD"}
        table: public.khai_sinh                              # or query: "SELECT ... FROM ..."
        cursor_field: updated_at                             # incremental: WHERE updated_at > <state>
        primary_key: [so_dang_ky]

PostgreSQL is read through ADBC, MariaDB/MySQL through connectorx, the rest through SQLAlchemy with
a server-side cursor (see ``backends``). With a cursor field the query becomes
``SELECT * FROM <table> WHERE <cursor> > <last committed value> ORDER BY <cursor>``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import re
from collections.abc import Iterator
from typing import Any, Literal

import pyarrow as pa
import sqlalchemy as sa
from pydantic import Field, field_validator, model_validator

from connectors.sql import backends
from hub.errors import ConfigError, ConnectorError, SourceUnavailableError
from hub.ingest.connector import CheckResult, Connector, ConnectorConfig, Secret, StreamSpec, WriteMode

FastPath = Literal["auto", "adbc", "connectorx", "sqlalchemy"]


class SqlConfig(ConnectorConfig):
    url: str = Field(description="SQLAlchemy URL without the password, e.g. postgresql://user@host:5432/db.")
    password: Secret | None = Field(default=None, description='{"$env": "NAME"} or {"$secret": "name"}.')
    table: str | None = Field(default=None, description="A table, optionally schema-qualified.")
    query: str | None = Field(default=None, description="A SELECT statement instead of a table.")
    stream: str | None = Field(default=None, description="Stream name; default: the table's name or 'query'.")
    cursor_field: str | None = Field(default=None, description="Column for incremental reads.")
    primary_key: list[str] = Field(default_factory=list)
    batch_rows: int | None = Field(default=None, gt=0, description="Rows per batch; default: the hub's.")
    fast_path: FastPath = Field(default="auto", description="auto, adbc, connectorx or sqlalchemy.")
    connect_timeout: int = Field(default=10, gt=0, description="Seconds to wait for the server.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            url = sa.engine.make_url(v)
        except sa.exc.ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from exc
        if url.password:
            raise ValueError(
                'the URL holds a password; remove it and give password: {"$env": "NAME"} (a secret reference)'
            )
        return v

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        return self


DATETIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _literal(value: Any, dialect: str) -> str:
    """A SQL literal of a committed cursor value (which the hub itself produced).

    Date-times (objects or ISO 8601 text, as the runner stores them) are written the way each database
    compares them: with a space; PostgreSQL keeps the offset; MariaDB/MySQL and SQLite get UTC without
    one (SQLite compares text, so always with microseconds, as SQLAlchemy stores them)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | decimal.Decimal):
        return str(value)
    if isinstance(value, str) and DATETIME_TEXT.match(value):
        with contextlib.suppress(ValueError):
            value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and dialect != "postgresql":
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        text = value.isoformat(sep=" ", timespec="microseconds" if dialect == "sqlite" else "auto")
    else:
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
    text = text.replace("'", "''")
    if dialect in ("mysql", "mariadb"):
        text = text.replace("\\", "\\\\")
    return f"'{text}'"


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, pa.Scalar):
        return _json_value(value.as_py())
    return value


class SqlConnector(Connector[SqlConfig]):
    """A table or query of PostgreSQL, MariaDB/MySQL, SQLite or another SQLAlchemy database."""

    name = "sql"
    version = "1.0.0"
    config_model = SqlConfig
    description = "SQL databases (PostgreSQL via ADBC, MariaDB/MySQL via connectorx, SQLite, ...)"

    # --- contract ----------------------------------------------------------------------------

    @property
    def cursor_field(self) -> str | None:
        return self.config.cursor_field or self.context.cursor_field

    @property
    def stream_name(self) -> str:
        if self.config.stream:
            return self.config.stream
        return self.config.table.rsplit(".", 1)[-1] if self.config.table else "query"

    def streams(self) -> list[StreamSpec]:
        pk = tuple(self.config.primary_key) or tuple(self.context.primary_key)
        mode = WriteMode.REPLACE
        if self.cursor_field:
            mode = WriteMode.UPSERT if pk else WriteMode.APPEND
        what = f"table {self.config.table}" if self.config.table else "a query"
        return [
            StreamSpec(
                name=self.stream_name,
                primary_key=pk,
                cursor_field=self.cursor_field,
                write_mode=mode,
                description=f"rows of {what}",
            )
        ]

    def check(self) -> CheckResult:
        try:
            url = self.url()
            columns = self._columns(url)
        except ConnectorError as exc:
            return CheckResult(False, exc.message, {"code": exc.code, "retryable": exc.retryable})
        except ConfigError as exc:
            return CheckResult(False, exc.message, {"code": exc.code})
        except Exception as exc:
            return CheckResult(False, f"{type(exc).__name__}: {exc}")
        return CheckResult(True, f"connected to the {backends.where(url)}", {"columns": columns})

    def read(self, stream: str, state: dict[str, Any] | None) -> Iterator[pa.RecordBatch]:
        self.stream(stream)
        url = self.url()
        sql = self.select_sql(url, state)
        batch_rows = self.config.batch_rows or self.context.batch_rows
        for batch in self._batches(url, sql, batch_rows):
            if self.context.progress is not None:
                self.context.progress(batch.num_rows)
            yield batch

    def next_state(
        self, stream: str, state: dict[str, Any] | None, cursor_max: Any | None
    ) -> dict[str, Any] | None:
        return super().next_state(stream, state, None if cursor_max is None else _json_value(cursor_max))

    # --- SQL -----------------------------------------------------------------------------------

    def url(self) -> sa.engine.URL:
        url = sa.engine.make_url(self.config.url)
        # Bare postgresql:// and mysql:// mean the drivers the hub ships (psycopg 3, PyMySQL).
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        elif url.drivername in ("mysql", "mariadb"):
            url = url.set(drivername=f"{url.drivername}+pymysql")
        if self.config.password is not None:
            url = url.set(password=self.context.reveal(self.config.password))
        return url

    def _quote(self, url: sa.engine.URL, name: str) -> str:
        preparer = url.get_dialect()().identifier_preparer
        return ".".join(preparer.quote(part) for part in name.split("."))

    def select_sql(self, url: sa.engine.URL, state: dict[str, Any] | None) -> str:
        """The SELECT this read runs: the table or query, after the state's cursor, in cursor order."""
        sql = f"SELECT * FROM {self._source(url)}"
        cursor = self.cursor_field
        if cursor:
            column = self._quote(url, cursor)
            last = (state or {}).get("cursor")
            if last is not None:
                sql += f" WHERE {column} > {_literal(last, url.get_backend_name())}"
            sql += f" ORDER BY {column}"
        return sql

    def _source(self, url: sa.engine.URL) -> str:
        if self.config.table:
            return self._quote(url, self.config.table)
        return f"({(self.config.query or '').rstrip().rstrip(';')}) AS hub_q"

    def _path(self, url: sa.engine.URL) -> str:
        backend = url.get_backend_name()
        if self.config.fast_path != "auto":
            return self.config.fast_path
        if backend == "postgresql":
            return "adbc"
        if backend in ("mysql", "mariadb"):
            return "connectorx"
        return "sqlalchemy"

    def _engine(self, url: sa.engine.URL) -> sa.engine.Engine:
        args: dict[str, Any] = {}
        backend = url.get_backend_name()
        if backend == "sqlite":
            if url.database and url.database != ":memory:":
                from pathlib import Path

                db = Path(url.database)
                if not db.is_absolute():
                    db = Path(self.context.base_dir) / db
                if not db.exists():
                    raise SourceUnavailableError(f"sql: SQLite database {db} does not exist")
                url = url.set(database=str(db))
                args["uri"] = False
        elif backend == "postgresql" or backend in ("mysql", "mariadb"):
            args["connect_timeout"] = self.config.connect_timeout
        return sa.create_engine(url, connect_args=args, poolclass=sa.pool.NullPool)

    def _types(self, engine: sa.engine.Engine) -> dict[str, pa.DataType]:
        if not self.config.table:
            return {}
        schema, _, table = self.config.table.rpartition(".")
        try:
            cols = sa.inspect(engine).get_columns(table, schema=schema or None)
        except sa.exc.NoSuchTableError as exc:
            where = backends.where(engine.url)
            raise ConnectorError(f"sql: no table {self.config.table} in the {where}") from exc
        except sa.exc.DBAPIError as exc:
            raise backends.classify(exc, engine.url) from exc
        out = {}
        for c in cols:
            t = backends.arrow_type(c["type"])
            if t is not None:
                out[c["name"]] = t
        return out

    def _batches(self, url: sa.engine.URL, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        path = self._path(url)
        if path == "adbc":
            return backends.read_adbc(url, sql, batch_rows, self.config.connect_timeout)
        if path == "connectorx":
            return backends.read_connectorx(url, sql, batch_rows, self.config.connect_timeout)
        engine = self._engine(url)
        return self._sqlalchemy(engine, sql, batch_rows)

    def _sqlalchemy(self, engine: sa.engine.Engine, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        try:
            types = self._types(engine)
            yield from backends.read_sqlalchemy(engine, sql, batch_rows, types)
        finally:
            engine.dispose()

    def _columns(self, url: sa.engine.URL) -> list[str]:
        engine = self._engine(url)
        try:
            with engine.connect() as conn:
                sql = f"SELECT * FROM {self._source(url)} WHERE 1 = 0"
                result = conn.exec_driver_sql(backends.driver_sql(engine, sql))
                return list(result.keys())
        except sa.exc.DBAPIError as exc:
            raise backends.classify(exc, url) from exc
        finally:
            engine.dispose()
