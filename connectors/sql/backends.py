"""How the ``sql`` connector gets Arrow batches out of a database: the fastest door each one has.

- PostgreSQL: ADBC (``adbc-driver-postgresql``), which streams the result with binary ``COPY`` and
  hands over Arrow record batches without a Python object per value.
- MariaDB / MySQL: connectorx's ``arrow_stream`` (Rust client, Arrow batches as they arrive).
- Anything else SQLAlchemy speaks (SQLite, ...): a server-side cursor (``stream_results``) read with
  ``fetchmany`` and turned into columns.

Each backend returns an iterator of record batches; ``SourceUnavailableError`` when the server cannot be
reached (naming host and port), ``ConnectorError`` for other failures (a missing table, bad SQL).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import sqlalchemy as sa

from hub.errors import ConnectorError, SourceDataError, SourceUnavailableError

UNREACHABLE = re.compile(
    r"connection refused|could not connect|can't connect|timeout|timed out|could not translate host|"
    r"name or service not known|no route to host|network is unreachable|connection reset|"
    r"server closed the connection|unable to open database|lost connection",
    re.IGNORECASE,
)


def where(url: sa.engine.URL) -> str:
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database or ':memory:'}"
    return f"{url.get_backend_name()} at {url.host or 'localhost'}:{url.port or _default_port(url)}"


def _default_port(url: sa.engine.URL) -> int | str:
    ports: dict[str, int] = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}
    return ports.get(url.get_backend_name(), "?")


def classify(exc: BaseException, url: sa.engine.URL) -> ConnectorError:
    """A source error as the hub's: unreachable (retryable) or not."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if UNREACHABLE.search(str(exc)):
        return SourceUnavailableError(f"sql: cannot reach the {where(url)}: {text}")
    return ConnectorError(f"sql: the {where(url)} refused the query: {text}", retryable=False)


def libpq_uri(url: sa.engine.URL, connect_timeout: int) -> str:
    auth = ""
    if url.username:
        auth = quote(url.username, safe="")
        if url.password:
            auth += ":" + quote(str(url.password), safe="")
        auth += "@"
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    query = {k: (v if isinstance(v, str) else v[-1]) for k, v in url.query.items()}
    query.setdefault("connect_timeout", str(connect_timeout))
    qs = "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())
    return f"postgresql://{auth}{host}{port}/{quote(url.database or '')}?{qs}"


def mysql_uri(url: sa.engine.URL) -> str:
    auth = quote(url.username or "root", safe="")
    if url.password:
        auth += ":" + quote(str(url.password), safe="")
    return f"mysql://{auth}@{url.host or 'localhost'}:{url.port or 3306}/{quote(url.database or '')}"


# --- PostgreSQL: ADBC -------------------------------------------------------------------------------


def read_adbc(
    url: sa.engine.URL, sql: str, batch_rows: int, connect_timeout: int
) -> Iterator[pa.RecordBatch]:
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as pgdbapi

    try:
        conn = pgdbapi.connect(libpq_uri(url, connect_timeout))
    except adbc_driver_manager.Error as exc:
        raise classify(exc, url) from exc
    try:
        cur = conn.cursor()
        cur.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(max(4 << 20, batch_rows * 128))}
        )
        try:
            cur.execute(sql)
            reader = cur.fetch_record_batch()
        except adbc_driver_manager.Error as exc:
            raise classify(exc, url) from exc
        try:
            yield from _rebatch(reader, batch_rows)
        except adbc_driver_manager.Error as exc:
            raise classify(exc, url) from exc
        finally:
            cur.close()
    finally:
        conn.close()


def _rebatch(reader: Any, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of about ``batch_rows`` rows from a reader whose batches may be any size."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        if not batch.num_rows:
            continue
        if not pending and batch.num_rows >= batch_rows // 2:
            yield batch
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= batch_rows:
            yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


# --- MariaDB / MySQL: connectorx --------------------------------------------------------------------


def _probe_mysql(url: sa.engine.URL, connect_timeout: int) -> None:
    """Fail fast when the server is down (connectorx's pool would retry for half a minute)."""
    import pymysql

    try:
        conn = pymysql.connect(
            host=url.host or "localhost",
            port=url.port or 3306,
            user=url.username or "root",
            password=str(url.password or ""),
            database=url.database,
            connect_timeout=connect_timeout,
        )
    except pymysql.err.MySQLError as exc:
        raise classify(exc, url) from exc
    conn.close()


def read_connectorx(
    url: sa.engine.URL, sql: str, batch_rows: int, connect_timeout: int = 10
) -> Iterator[pa.RecordBatch]:
    import connectorx as cx

    _probe_mysql(url, connect_timeout)
    try:
        reader = cx.read_sql(mysql_uri(url), sql, return_type="arrow_stream", batch_size=batch_rows)
    except BaseException as exc:  # connectorx raises RuntimeError or pyo3 PanicException
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        raise classify(exc, url) from exc
    try:
        yield from _rebatch(reader, batch_rows)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        raise classify(exc, url) from exc


# --- everything else: SQLAlchemy with a server-side cursor ------------------------------------------


def driver_sql(engine: sa.engine.Engine, sql: str) -> str:
    """``sql`` as the DB-API driver must see it: ``%`` doubled where ``%s`` marks a parameter."""
    if engine.dialect.paramstyle in ("format", "pyformat"):
        return sql.replace("%", "%%")
    return sql


def read_sqlalchemy(
    engine: sa.engine.Engine, sql: str, batch_rows: int, types: dict[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    url = engine.url
    try:
        conn = engine.connect()
    except sa.exc.DBAPIError as exc:
        raise classify(exc, url) from exc
    try:
        try:
            streaming = conn.execution_options(stream_results=True, yield_per=batch_rows)
            result = streaming.exec_driver_sql(driver_sql(engine, sql))
        except sa.exc.DBAPIError as exc:
            raise classify(exc, url) from exc
        names = list(result.keys())
        schema: pa.Schema | None = None
        while True:
            rows = result.fetchmany(batch_rows)
            if not rows:
                break
            columns = list(zip(*rows, strict=True))
            if schema is None:
                schema = _first_schema(names, columns, types)
            yield _to_batch(schema, columns)
    finally:
        conn.close()


def _first_schema(
    names: list[str], columns: list[tuple[Any, ...]], types: dict[str, pa.DataType]
) -> pa.Schema:
    fields = []
    for name, values in zip(names, columns, strict=True):
        wanted = types.get(name)
        try:
            if wanted is not None:
                _array(values, wanted)
                fields.append(pa.field(name, wanted))
                continue
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pass
        try:
            inferred = pa.array(values).type
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            inferred = pa.string()
        fields.append(pa.field(name, pa.string() if pa.types.is_null(inferred) else inferred))
    return pa.schema(fields)


def _array(values: tuple[Any, ...], type_: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if pa.types.is_string(type_):
            return pa.array([None if v is None else str(v) for v in values], type=type_)
        return pa.array(values).cast(type_)


def _to_batch(schema: pa.Schema, columns: list[tuple[Any, ...]]) -> pa.RecordBatch:
    arrays = []
    for f, values in zip(schema, columns, strict=True):
        try:
            arrays.append(_array(values, f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise SourceDataError(f"column {f.name}: values do not all fit {f.type}: {exc}") from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def arrow_type(column_type: sa.types.TypeEngine[Any]) -> pa.DataType | None:
    """The Arrow type of a reflected SQLAlchemy column type, where it is clear."""
    checks: list[tuple[type[Any], pa.DataType]] = [
        (sa.Boolean, pa.bool_()),
        (sa.Integer, pa.int64()),
        (sa.Float, pa.float64()),
        (sa.DateTime, pa.timestamp("us")),
        (sa.Date, pa.date32()),
        (sa.String, pa.string()),
        (sa.LargeBinary, pa.binary()),
    ]
    for sa_type, arrow in checks:
        if isinstance(column_type, sa_type):
            return arrow
    return None
