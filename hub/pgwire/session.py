"""One client connection: startup, login, and the simple and extended query protocols.

Each statement is answered by exactly one of three paths:

1. a command the endpoint answers itself (``hub.pgwire.commands``: transactions, settings, cursors);
2. a catalogue query (``hub.pgwire.catalog_sql``), answered from the catalogue instance of what the
   principal may read (``hub.pgwire.catalog``);
3. anything else is a warehouse query and goes through the hub's one SQL door,
   ``hub.sql.door.stream(..., door.PG_QUERY)``: the SQL policy, ``authorize_read`` (scope
   ``warehouse:query``), a query worker with its limits, and the audit of what was read. Its rows stream
   from the worker's Arrow batches to DataRow messages (``hub.pgwire.encode``).

Parameters of the extended protocol become literals in the SQL text (``hub.pgwire.sqltext``) before
any of these paths sees it. Portals and cursors (``DECLARE``/``FETCH``) hand out rows a number at a
time from the same stream, so that a client reading in chunks holds the server to one batch.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import pyarrow as pa

from hub.errors import AccessDeniedError, BusyError, HubError, QueryError
from hub.pgwire import auth, commands, encode, protocol, sqltext
from hub.pgwire.catalog import Catalogue
from hub.pgwire.catalog_rows import readable
from hub.pgwire.catalog_sql import NotCatalogueError, SessionValues, looks_like_catalogue, rewrite
from hub.pgwire.protocol import ClientGoneError, ConnectionEndError, ProtocolViolationError, Reader
from hub.pgwire.rows import Rows, StartingRows, StreamRows, TableRows
from hub.sql import door
from hub.sql.limits import ClientLimitError
from hub.warehouse.engine import policy
from hub.warehouse.engine.pool import ResultStream
from hub.warehouse.engine.tables import TableSource

if TYPE_CHECKING:
    from hub.pgwire.server import PgServer

log = logging.getLogger("hub.pgwire")
VERSION = "14.0 (Lien Thong hub)"
FULL_VERSION = "PostgreSQL 14.0 (Liên Thông hub) on x86_64-pc-linux-gnu, 64-bit"


class FatalError(ConnectionEndError):
    """End the connection after telling the client (``sqlstate``, ``text``)."""

    def __init__(self, sqlstate: str, text: str) -> None:
        super().__init__(text)
        self.sqlstate = sqlstate
        self.text = text


@dataclass
class Statement:
    sql: str
    param_oids: list[int]


@dataclass
class Portal:
    """A bound statement (or a cursor): where its rows come from and how they are written."""

    sql: str
    formats: list[int] = field(default_factory=list)
    rows: Rows | None = None
    tag: str = ""
    started: bool = False
    limit: int | None = None  # FETCH: the most rows this portal returns
    owns_rows: bool = True
    cursor: bool = False
    hold: bool = False
    sent: int = 0

    def codecs(self) -> list[encode.Codec] | None:
        return None if self.rows is None else encode.codecs(self.rows.schema, self.formats)

    def close(self, error: str | None = None) -> None:
        if self.rows is not None and self.owns_rows:
            self.rows.close(error)


def sqlstate(exc: HubError) -> str:
    """The SQLSTATE of a hub error met while running a statement."""
    given = exc.details.get("sqlstate")
    if isinstance(given, str):
        return given
    if isinstance(exc, ClientLimitError):
        return "53400"  # configuration_limit_exceeded: this client's own limit, not the hub's load
    if isinstance(exc, BusyError):
        return "53000"
    if isinstance(exc, AccessDeniedError):
        return "42501"
    text = exc.message
    kind = exc.details.get("kind")
    if "does not exist or is not readable" in text or kind == "file":
        return "42501"  # a table not granted and one that does not exist: one error
    if kind in ("timeout", "killed") or "took too long" in text:
        return "57014"
    if kind == "memory":
        return "53200"
    if text.startswith("Only a SELECT"):
        return "25006"
    if "Binder Error" in text and "column" in text.lower():
        return "42703"
    if text.startswith(("Invalid query", "Query is not a single", "The query")):
        return "42601"
    return "22000"


def _timeout_ms(value: str) -> float:
    text = value.strip().lower()
    units = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000}
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit) and text[: -len(unit)].strip().replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * factor
    return float(text) if text.replace(".", "", 1).isdigit() else 0.0


class Connection:
    """One client (see the module docstring). ``run()`` serves it until it leaves."""

    def __init__(self, server: PgServer, sock: socket.socket, address: Any) -> None:
        self.server = server
        self.hub = server.hub
        self.sock: socket.socket = sock
        self.ip: str | None = address[0] if isinstance(address, tuple) else None
        self.rfile = cast(BinaryIO, sock.makefile("rb", buffering=65_536))
        self.pid, self.secret = 0, 0
        self.settings = dict(commands.CLIENT_SETTINGS)
        self.status = b"I"
        self.statements: dict[str, Statement] = {}
        self.portals: dict[str, Portal] = {}
        self.cursors: dict[str, Portal] = {}
        self.login: auth.Login | None = None
        self.user = ""
        self.database = "hub"
        self.catalogue: Catalogue | None = None
        self.as_of: dict[str, str | int] = {}
        self._out = bytearray()
        self._skip_to_sync = False
        self._running: Rows | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._deferred: list[Callable[[], None]] = []

    # --- output --------------------------------------------------------------------------------
    def send(self, data: bytes | memoryview) -> None:
        self._out += data
        if len(self._out) >= 262_144:
            self.flush()

    def flush(self) -> None:
        if self._out:
            self.sock.sendall(self._out)
            self._out.clear()

    def defer(self, work: Callable[[], None]) -> None:
        """Run ``work`` once the answers so far are flushed to the client, before the next message is
        read (or when the connection ends): a finished query's audit entry, off the client's wait."""
        self._deferred.append(work)

    def _run_deferred(self) -> None:
        while self._deferred:
            work = self._deferred.pop(0)
            try:
                work()
            except Exception:
                log.exception("deferred work of a PostgreSQL connection failed")

    def error(self, code: str, text: str, *, severity: str = "ERROR", hint: str | None = None) -> None:
        self.send(protocol.error_response(code, text, severity=severity, hint=hint))

    # --- life ----------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.sock.settimeout(60)
            if not self._startup():
                return
            self.sock.settimeout(None)
            self._loop()
        except FatalError as exc:
            with contextlib.suppress(OSError):
                self.error(exc.sqlstate, exc.text, severity="FATAL")
                self.flush()
        except (ClientGoneError, ConnectionError, TimeoutError, ssl.SSLError, OSError):
            pass
        except ProtocolViolationError as exc:
            with contextlib.suppress(OSError):
                self.error("08P01", str(exc), severity="FATAL")
                self.flush()
        except Exception:
            log.exception("a PostgreSQL connection failed")
        finally:
            self.close()

    def close(self) -> None:
        self._run_deferred()
        for portal in [*self.portals.values(), *self.cursors.values()]:
            with contextlib.suppress(Exception):
                portal.close("the connection ended")
        self.portals.clear()
        self.cursors.clear()
        if self.catalogue is not None:
            self.catalogue.close()
        self.server.forget(self)
        with contextlib.suppress(OSError):  # the reader holds the socket open until it is closed too
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.sock.close()

    def cancel(self) -> None:
        """A CancelRequest for this connection (from another thread): stop what runs now."""
        with self._lock:
            running = self._running
            if running is None:
                return
            self._cancelled.set()
        running.cancel()
        if self.catalogue is not None:
            self.catalogue.interrupt()

    # --- startup and login ---------------------------------------------------------------------
    def _startup(self) -> bool:
        while True:
            start = protocol.read_startup(self.rfile)
            if start.code == protocol.SSL_REQUEST:
                tls = self.server.tls
                self.sock.sendall(b"S" if tls is not None else b"N")
                if tls is not None:
                    self.sock = tls.wrap_socket(self.sock, server_side=True)
                    self.rfile = cast(BinaryIO, self.sock.makefile("rb", buffering=65_536))
                continue
            if start.code == protocol.GSSENC_REQUEST:
                self.sock.sendall(b"N")
                continue
            if start.code == protocol.CANCEL_REQUEST:
                self.server.cancel(start.pid, start.secret)
                return False
            if start.code != protocol.PROTOCOL_3:
                raise FatalError("0A000", "unsupported frontend protocol: the hub speaks protocol 3.0")
            break
        params = start.params
        self.user = params.get("user", "")
        self.database = params.get("database") or self.user or "hub"
        for key in ("application_name", "search_path", "datestyle", "timezone", "extra_float_digits"):
            if key in params:
                self.settings[key] = params[key]
        options = params.get("options", "")
        for opt in options.replace("--", "-c ").split("-c "):
            key, sep, value = opt.strip().partition("=")
            if sep and key.strip().lower() in self.settings:
                self._set(key.strip().lower(), value.strip())
        self.sock.sendall(protocol.AUTH_CLEARTEXT)
        kind, payload = protocol.read_message(self.rfile)
        if kind != b"p":
            raise FatalError("28000", "expected a password message")
        password = Reader(payload).cstring()
        try:
            self.login = auth.authenticate(self.hub, self.server.oauth, self.user, password, self.ip)
        except auth.LoginFailedError:
            raise FatalError("28P01", f'password authentication failed for user "{self.user}"') from None
        self.pid, self.secret = self.server.register(self)
        self.send(protocol.AUTH_OK)
        for name, value in (
            ("server_version", VERSION),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("TimeZone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("is_superuser", "off"),
            ("in_hot_standby", "off"),
            ("default_transaction_read_only", "on"),
            ("session_authorization", self.user),
            ("application_name", self.settings.get("application_name", "")),
        ):
            self.send(protocol.parameter_status(name, value))
        self.send(protocol.backend_key(self.pid, self.secret))
        self.send(protocol.ready(self.status))
        self.flush()
        return True

    def _check_login(self) -> None:
        """The token of this session may have expired: renew it (a client's secret) or end."""
        login = self.login
        assert login is not None
        if login.expired():
            try:
                self.login = auth.renew(self.hub, self.server.oauth, login, self.ip)
            except auth.LoginFailedError:
                raise FatalError("28P01", "the access token of this session expired; connect again") from None

    # --- the message loop ----------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            kind, payload = protocol.read_message(self.rfile)
            if kind == b"X":
                return
            if self._skip_to_sync and kind not in (b"S", b"Q"):
                continue
            try:
                self._dispatch(kind, payload)
            except (ConnectionEndError, ConnectionError):
                raise
            except HubError as exc:
                self._failed(sqlstate(exc), exc.message, exc)
            except Exception as exc:
                log.exception("a PostgreSQL statement failed")
                self._failed("XX000", f"internal error: {type(exc).__name__}", exc)
            if kind in (b"S", b"Q", b"H"):
                try:
                    self.flush()
                finally:
                    self._run_deferred()

    def _failed(self, code: str, text: str, exc: BaseException) -> None:
        hint = f"retry in {exc.retry_after} s" if isinstance(exc, BusyError) else None
        self.error(code, text, hint=hint)
        if self.status == b"T":
            self.status = b"E"
        if self._extended:
            self._skip_to_sync = True

    _extended = False

    def _dispatch(self, kind: bytes, payload: bytes) -> None:
        self._extended = kind != b"Q"
        if kind == b"Q":
            self._simple(Reader(payload).cstring())
        elif kind == b"P":
            self._parse(Reader(payload))
        elif kind == b"B":
            self._bind(Reader(payload))
        elif kind == b"D":
            self._describe(Reader(payload))
        elif kind == b"E":
            r = Reader(payload)
            name = r.cstring()
            self._execute(name, r.int32())
        elif kind == b"C":
            r = Reader(payload)
            what, name = r.bytes(1), r.cstring()
            if what == b"S":
                self.statements.pop(name, None)
            else:
                portal = self.portals.pop(name, None)
                if portal is not None:
                    portal.close()
            self.send(protocol.CLOSE_COMPLETE)
        elif kind == b"S":
            self._skip_to_sync = False
            if self.status != b"T" and self.status != b"E":
                self._end_portals()
            self.send(protocol.ready(self.status))
        elif kind == b"H":
            pass
        elif kind in (b"F", b"d", b"c", b"f"):
            raise QueryError("the function call and COPY protocols are not supported", sqlstate="0A000")
        else:
            raise ProtocolViolationError(f"invalid message type {kind!r}")

    def _end_portals(self) -> None:
        for portal in self.portals.values():
            portal.close()
        self.portals.clear()

    # --- simple query --------------------------------------------------------------------------
    def _simple(self, text: str) -> None:
        try:
            statements = sqltext.split(text)
            if not statements:
                self.send(protocol.EMPTY_QUERY)
                return
            queries = [s for s in statements if commands.parse(sqltext.strip_comments(s)) is None]
            if len(queries) > 1:
                raise QueryError("Query is not a single statement.", sqlstate="42601")
            for sql in statements:
                portal = Portal(sql)
                self._start(portal)
                codecs = portal.codecs()
                if codecs is not None:
                    self.send(protocol.row_description(c.column for c in codecs))
                self._send_rows(portal, None)
                portal.close()
        except ConnectionEndError:
            raise
        except HubError as exc:
            self._failed(sqlstate(exc), exc.message, exc)
        finally:
            self.send(protocol.ready(self.status))

    # --- extended query ------------------------------------------------------------------------
    def _parse(self, r: Reader) -> None:
        name, sql = r.cstring(), r.cstring()
        oids = [r.int32() & 0xFFFFFFFF for _ in range(r.int16())]
        if len(sqltext.split(sql)) > 1:
            raise QueryError("cannot insert multiple commands into a prepared statement", sqlstate="42601")
        self.statements[name] = Statement(sql, oids)
        self.send(protocol.PARSE_COMPLETE)

    def _statement(self, name: str) -> Statement:
        found = self.statements.get(name)
        if found is None:
            raise QueryError(f'prepared statement "{name}" does not exist', sqlstate="26000")
        return found

    def _bind(self, r: Reader) -> None:
        portal_name, stmt = r.cstring(), self._statement(r.cstring())
        formats = [r.int16() for _ in range(r.int16())]
        values: list[bytes | None] = []
        for _ in range(r.int16()):
            size = r.int32()
            values.append(None if size < 0 else r.bytes(size))
        results = [r.int16() for _ in range(r.int16())]
        literals = []
        for i, value in enumerate(values):
            fmt = formats[0] if len(formats) == 1 else (formats[i] if i < len(formats) else 0)
            oid = stmt.param_oids[i] if i < len(stmt.param_oids) else 0
            literals.append(sqltext.literal(oid, value, fmt == 1))
        sql = sqltext.substitute(stmt.sql, literals) if values else stmt.sql
        old = self.portals.pop(portal_name, None)
        if old is not None:
            old.close()
        self.portals[portal_name] = Portal(sql, results)
        self.send(protocol.BIND_COMPLETE)

    def _describe(self, r: Reader) -> None:
        what, name = r.bytes(1), r.cstring()
        if what == b"S":
            stmt = self._statement(name)
            count = max(sqltext.placeholders(stmt.sql), len(stmt.param_oids))
            oids = [
                (stmt.param_oids[i] if i < len(stmt.param_oids) else 0) or encode.TEXT for i in range(count)
            ]
            self.send(protocol.parameter_description(oids))
            schema = self._describe_sql(sqltext.substitute(stmt.sql, ["NULL"] * count) if count else stmt.sql)
            if schema is None:
                self.send(protocol.NO_DATA)
            else:
                self.send(protocol.row_description(c.column for c in encode.codecs(schema)))
            return
        portal = self.portals.get(name) or self.cursors.get(name)
        if portal is None:
            raise QueryError(f'portal "{name}" does not exist', sqlstate="34000")
        if not portal.started:
            self._start(portal)
        codecs = portal.codecs()
        self.send(protocol.NO_DATA if codecs is None else protocol.row_description(c.column for c in codecs))

    def _execute(self, name: str, max_rows: int) -> None:
        portal = self.portals.get(name)
        if portal is None:
            raise QueryError(f'portal "{name}" does not exist', sqlstate="34000")
        if not portal.started:
            self._start(portal)
        self._send_rows(portal, max_rows if max_rows > 0 else None)

    # --- running a statement -------------------------------------------------------------------
    def _send_rows(self, portal: Portal, max_rows: int | None) -> None:
        """Write up to ``max_rows`` rows of ``portal`` and its CommandComplete (or PortalSuspended)."""
        if portal.rows is None:
            self.send(protocol.command_complete(portal.tag))
            return
        limit = portal.limit if portal.limit is None else portal.limit - portal.sent
        if max_rows is not None:
            limit = max_rows if limit is None else min(limit, max_rows)
        codecs = portal.codecs()
        assert codecs is not None
        moving = portal.tag == "MOVE"
        count = 0
        try:
            with self._running_rows(portal.rows):
                for batch in portal.rows.take(limit):
                    count += batch.num_rows
                    if not moving:
                        self.send(encode.data_rows(batch, codecs))
        except HubError as exc:
            portal.close(exc.message)
            raise
        portal.sent += count
        done = portal.rows.exhausted or (portal.limit is not None and portal.sent >= portal.limit)
        if max_rows is not None and not done and count >= max_rows:
            self.send(protocol.PORTAL_SUSPENDED)
            return
        if portal.tag in ("FETCH", "MOVE"):
            self.send(protocol.command_complete(f"{portal.tag} {count}"))
        else:
            self.send(protocol.command_complete(f"SELECT {portal.sent}"))

    @contextlib.contextmanager
    def _running_rows(self, rows: Rows) -> Any:
        with self._lock:
            self._running = rows
            self._cancelled.clear()
        try:
            yield
        except ConnectionEndError:
            raise
        except HubError:
            if self._cancelled.is_set():
                raise QueryError("canceling statement due to user request", sqlstate="57014") from None
            raise
        finally:
            with self._lock:
                self._running = None
            if self._cancelled.is_set():
                self._cancelled.clear()
                rows.close("canceled")
                raise QueryError("canceling statement due to user request", sqlstate="57014")

    def _start(self, portal: Portal) -> None:
        """Run ``portal``'s statement up to its first rows (or answer a command)."""
        portal.started = True
        text = sqltext.strip_comments(portal.sql).strip()
        command = commands.parse(text)
        if self.status == b"E" and (command is None or command.kind not in ("rollback", "commit")):
            raise QueryError(
                "current transaction is aborted, commands ignored until end of transaction block",
                sqlstate="25P02",
            )
        if command is not None:
            self._command(portal, command)
            return
        self._check_login()
        portal.tag = "SELECT"
        portal.rows = self._query(portal.sql)

    def _query(self, sql: str) -> Rows:
        if looks_like_catalogue(sql):
            rows = self._catalogue(sql)
            if rows is not None:
                return rows
        return self._warehouse(sql)

    def _values(self) -> SessionValues:
        path = tuple(p.strip().strip('"') for p in self.settings["search_path"].split(",") if p.strip())
        schemas = tuple(p for p in path if p != "$user") or ("public",)
        return SessionValues(
            self.user, self.database, schemas[0], schemas, FULL_VERSION, self.pid, dict(self.settings)
        )

    def _catalogue(self, sql: str, *, describe: bool = False) -> Rows | None:
        try:
            rewritten = rewrite(sql, self._values())
        except NotCatalogueError:
            return None
        assert self.login is not None
        if self.catalogue is None:
            self.catalogue = Catalogue(self.hub.settings, self.user, self.database)
        with self.hub.session_factory() as session:
            relations = readable(self.hub, session, self.login.principal)
        text = f"SELECT * FROM ({rewritten.sql}) AS q LIMIT 0" if describe else rewritten.sql
        timeout = self._timeout()
        holder = TableRows(pa.table({}))
        with self._running_rows(holder):
            table = self.catalogue.query(text, rewritten.tables, relations, self.settings, timeout)
        return TableRows(table)

    def _timeout(self) -> float:
        limit = self.hub.settings.query_timeout_seconds
        ms = _timeout_ms(self.settings.get("statement_timeout", "0"))
        return min(limit, ms / 1000) if ms > 0 else limit

    def _as_of_for(self, sql: str) -> dict[str, str | int] | None:
        if not self.as_of:
            return None
        limits = policy.Limits(self.hub.settings.query_max_sql_chars, self.hub.settings.query_max_nesting)
        read = {f"{s}.{n}".lower() for s, n in policy.referenced(policy.parse_select(sql, limits)) if s}
        return {k: v for k, v in self.as_of.items() if k in read} or None

    def _warehouse(self, sql: str) -> Rows:
        """Start ``sql`` through the door; a cancel request stops it while its worker computes the
        first rows (an aggregate's whole work), as well as while they are sent."""
        assert self.login is not None
        slot = self.hub.query_limits.acquire(self.login.principal)  # the client's limits, as over HTTP
        session = self.hub.session_factory()
        starting = StartingRows()
        started: tuple[ResultStream, door.Prepared] | None = None
        try:
            as_of = self._as_of_for(sql)
            with self._running_rows(starting):
                started = door.stream(
                    self.hub,
                    session,
                    self.login.principal,
                    sql,
                    door.PG_QUERY,
                    timeout=self._timeout(),
                    as_of=as_of,
                    cancel=starting.event,
                )
            session.commit()
        except BaseException:
            if started is not None:  # cancelled just as the first rows came
                StreamRows(*started, session, slot).close("canceled")
            else:
                session.close()
                slot.release()
            raise
        return StreamRows(*started, session, slot, defer=self.defer)

    def _describe_sql(self, sql: str) -> pa.Schema | None:
        """The columns ``sql`` would return, without reading data (Describe of a statement)."""
        text = sqltext.strip_comments(sql).strip()
        command = commands.parse(text)
        if command is not None:
            return pa.schema([(command.name, pa.string())]) if command.kind == "show" else None
        if looks_like_catalogue(sql):
            rows = self._catalogue(sql, describe=True)
            if rows is not None:
                return rows.schema
        assert self.login is not None
        with self.hub.session_factory() as session:
            prepared = door.prepare(
                self.hub, session, self.login.principal, sql, door.PG_QUERY, as_of=self._as_of_for(sql)
            )
        empty = {
            n: TableSource(s.key, s.snapshot_id, (), s.schema, s.row_id) for n, s in prepared.tables.items()
        }
        with self.hub.pool.run(
            f"SELECT * FROM ({prepared.sql}) AS q LIMIT 0", empty, timeout=self._timeout()
        ) as s:
            return s.schema

    # --- commands ------------------------------------------------------------------------------
    def _set(self, name: str, value: str) -> None:
        if name == commands.AS_OF:
            self.as_of = {} if value in ("", "DEFAULT") else commands.parse_as_of(value)
            self.settings[name] = "" if value == "DEFAULT" else value
            return
        if name not in self.settings:
            raise QueryError(f'unrecognized configuration parameter "{name}"', sqlstate="42704")
        if name in commands.READ_ONLY:
            raise QueryError(f'parameter "{name}" cannot be changed', sqlstate="55P02")
        self.settings[name] = commands.CLIENT_SETTINGS[name] if value == "DEFAULT" else value
        if name in ("application_name", "datestyle", "timezone", "intervalstyle"):
            shown = {"datestyle": "DateStyle", "timezone": "TimeZone", "intervalstyle": "IntervalStyle"}
            self.send(protocol.parameter_status(shown.get(name, name), self.settings[name]))

    def _command(self, portal: Portal, c: commands.Command) -> None:
        kind = c.kind
        tags = {"begin": "BEGIN", "commit": "COMMIT", "rollback": "ROLLBACK", "set": "SET",
                "reset": "RESET", "discard": "DISCARD ALL", "deallocate": "DEALLOCATE",
                "savepoint": c.name or "ROLLBACK"}  # fmt: skip
        portal.tag = tags.get(kind, kind.upper())
        if kind == "begin":
            if self.status == b"I":
                self.status = b"T"
        elif kind in ("commit", "rollback"):
            if kind == "commit" and self.status == b"E":
                portal.tag = "ROLLBACK"
            self.status = b"I"
            for name, cursor in list(self.cursors.items()):
                if not cursor.hold:
                    cursor.close()
                    del self.cursors[name]
        elif kind == "set":
            if c.name:
                self._set(c.name, c.value)
        elif kind == "reset":
            for name in list(self.settings) if c.name == "all" else [c.name]:
                if name not in commands.READ_ONLY:
                    self._set(name, "DEFAULT")
        elif kind == "show":
            self._show(portal, c.name)
        elif kind == "discard":
            self.statements.clear()
            for cursor in self.cursors.values():
                cursor.close()
            self.cursors.clear()
        elif kind == "deallocate":
            if c.name:
                self.statements.pop(c.name, None)
            else:
                self.statements.clear()
        elif kind == "declare":
            self._declare(portal, c)
        elif kind in ("fetch", "move"):
            source = self.cursors.get(c.name)
            if source is None:
                raise QueryError(f'cursor "{c.name}" does not exist', sqlstate="34000")
            portal.rows, portal.owns_rows, portal.limit = source.rows, False, c.count
        elif kind == "close":
            names = [c.name] if c.name else list(self.cursors)
            for name in names:
                closing = self.cursors.pop(name, None)
                if closing is None:
                    raise QueryError(f'cursor "{name}" does not exist', sqlstate="34000")
                closing.close()
            portal.tag = "CLOSE CURSOR"

    def _show(self, portal: Portal, name: str) -> None:
        if name == "all":
            names = sorted(self.settings)
            table = pa.table({"name": names, "setting": [self.settings[n] for n in names],
                              "description": [""] * len(names)})  # fmt: skip
        else:
            key = name.lower()
            if key not in self.settings:
                raise QueryError(f'unrecognized configuration parameter "{name}"', sqlstate="42704")
            value = self.settings[key] if key != "server_version" else VERSION
            table = pa.table({key: [value]})
        portal.rows = TableRows(table)
        portal.tag = "SHOW"

    def _declare(self, portal: Portal, c: commands.Command) -> None:
        if c.name in self.cursors:
            raise QueryError(f'cursor "{c.name}" already exists', sqlstate="42P03")
        self._check_login()
        rows = self._query(c.query)
        self.cursors[c.name] = Portal(c.query, [1] if c.binary else [], rows, "SELECT", True, cursor=True,
                                      hold=c.hold or self.status == b"I")  # fmt: skip
        portal.tag = "DECLARE CURSOR"

    def __repr__(self) -> str:
        return f"<pg connection {self.pid} {self.user!r} from {self.ip}>"
