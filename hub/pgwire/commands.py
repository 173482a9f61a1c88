"""Statements the endpoint answers itself, never passed to the query engine.

Drivers and tools send them at connect and around queries: transaction control (``BEGIN``,
``COMMIT``, ``ROLLBACK``, savepoints), session settings (``SET``/``RESET``/``SHOW`` of the ordinary
client settings: ``search_path``, ``client_encoding``, ``DateStyle``, ``extra_float_digits``,
``application_name``, ``statement_timeout`` ...; and ``hub.as_of``, the hub's time travel),
``DISCARD``/``DEALLOCATE``, and server-side cursors (``DECLARE ... CURSOR FOR``, ``FETCH``, ``MOVE``,
``CLOSE``), which psycopg's named cursors use. Any other ``SET`` (an engine setting such as
``enable_external_access`` or ``memory_limit``) is refused: the engine's settings are the hub's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub.errors import QueryError

CLIENT_SETTINGS = {
    "application_name": "", "client_encoding": "UTF8", "datestyle": "ISO, MDY", "intervalstyle": "postgres",
    "timezone": "UTC", "extra_float_digits": "1", "search_path": '"$user", public',
    "statement_timeout": "0", "lock_timeout": "0", "idle_in_transaction_session_timeout": "0",
    "standard_conforming_strings": "on", "bytea_output": "hex", "client_min_messages": "notice",
    "default_transaction_isolation": "read committed", "default_transaction_read_only": "on",
    "transaction_isolation": "read committed", "transaction_read_only": "on", "escape_string_warning": "on",
    "row_security": "on", "jit": "off", "work_mem": "4MB", "max_parallel_workers_per_gather": "2",
    "geqo": "on", "lc_messages": "C", "lc_monetary": "C", "lc_numeric": "C", "lc_time": "C",
    "max_identifier_length": "63", "default_text_search_config": "pg_catalog.simple",
    "synchronous_commit": "on", "enable_seqscan": "on", "idle_session_timeout": "0",
    "default_table_access_method": "heap", "default_tablespace": "", "temp_tablespaces": "",
    "server_version": "14.0", "server_version_num": "140000", "server_encoding": "UTF8",
    "integer_datetimes": "on", "is_superuser": "off", "max_connections": "100", "block_size": "8192",
    "hub.as_of": "",
}  # fmt: skip
READ_ONLY = {"server_version", "server_version_num", "server_encoding", "integer_datetimes", "is_superuser",
             "max_connections", "block_size", "max_identifier_length"}  # fmt: skip
SHOW_NAMES = {"transaction isolation level": "transaction_isolation", "time zone": "timezone"}
AS_OF = "hub.as_of"


@dataclass(frozen=True)
class Command:
    """A statement the endpoint answers itself: ``kind`` and its arguments."""

    kind: str  # begin commit rollback savepoint set reset show discard deallocate declare fetch close move
    name: str = ""
    value: str = ""
    query: str = ""
    count: int | None = None  # FETCH: rows (None: all)
    binary: bool = False
    hold: bool = False


_WORD = r"[A-Za-z_][A-Za-z0-9_$]*"
_IDENT = rf'(?:"(?:[^"]|"")+"|{_WORD})'
_SET = re.compile(
    rf"SET\s+(?:(?:SESSION|LOCAL)\s+)?({_IDENT}(?:\.{_IDENT})?)\s*(?:=|\bTO\b)\s*(.*)$", re.I | re.S
)
_SET_TZ = re.compile(r"SET\s+(?:(?:SESSION|LOCAL)\s+)?TIME\s+ZONE\s+(.*)$", re.I | re.S)
_DECLARE = re.compile(
    rf"DECLARE\s+({_IDENT})\s+((?:BINARY|INSENSITIVE|ASENSITIVE|NO\s+SCROLL|SCROLL|\s)*)CURSOR\s*"
    r"((?:WITH|WITHOUT)\s+HOLD)?\s*FOR\s+(.*)$",
    re.I | re.S,
)
_FETCH = re.compile(
    rf"(FETCH|MOVE)\s+(?:(NEXT|FORWARD\s+ALL|FORWARD\s+\d+|FORWARD|ALL|\d+)\s+)?(?:(?:FROM|IN)\s+)?({_IDENT})$",
    re.I | re.S,
)


def unquote(ident: str) -> str:
    if ident.startswith('"') and ident.endswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def _value(raw: str) -> str:
    """The value of ``SET x = <raw>``: a list of quoted strings, identifiers or numbers, as text."""
    raw = raw.strip().rstrip(";").strip()
    if raw.upper() == "DEFAULT":
        return "DEFAULT"
    parts = []
    for m in re.finditer(r"'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\"|([^,\s]+)", raw):
        if m.group(1) is not None:
            parts.append(m.group(1).replace("''", "'"))
        elif m.group(2) is not None:
            parts.append(f'"{m.group(2)}"')
        else:
            parts.append(m.group(3))
    return ", ".join(parts)


def parse(sql: str) -> Command | None:
    """The command ``sql`` is (its comments removed), or None for a query."""
    text = sql.strip().rstrip(";").strip()
    head = text.split(None, 1)[0].upper() if text else ""
    words = " ".join(text.upper().split()[:3])
    if head in ("BEGIN", "START"):
        return Command("begin")
    if head in ("COMMIT", "END"):
        return Command("commit")
    if head in ("ROLLBACK", "ABORT"):
        return Command("savepoint" if " TO " in f" {words} " else "rollback")
    if head in ("SAVEPOINT", "RELEASE"):
        return Command("savepoint", name=head)
    if head == "SET":
        return _set(text)
    if head == "RESET":
        target = text[5:].strip()
        return Command("reset", name="all" if target.upper() == "ALL" else unquote(target))
    if head == "SHOW":
        name = " ".join(text[4:].split()).lower()
        return Command("show", name=SHOW_NAMES.get(name, name.strip('"')))
    if head == "DISCARD":
        return Command("discard")
    if head == "DEALLOCATE":
        rest = text.split()[1:]
        rest = rest[1:] if rest and rest[0].upper() == "PREPARE" else rest
        return Command("deallocate", name="" if not rest or rest[0].upper() == "ALL" else unquote(rest[0]))
    if head == "DECLARE":
        m = _DECLARE.match(text)
        if m is None:
            raise QueryError(
                "DECLARE: expected DECLARE name [BINARY] CURSOR [WITH HOLD] FOR query", sqlstate="42601"
            )
        options = m.group(2).upper()
        return Command(
            "declare",
            name=unquote(m.group(1)),
            query=m.group(4),
            binary="BINARY" in options,
            hold=(m.group(3) or "").upper().startswith("WITH "),
        )
    if head in ("FETCH", "MOVE"):
        m = _FETCH.match(text)
        if m is None:
            raise QueryError(f"{head}: only forward fetching is supported", sqlstate="0A000")
        how = " ".join((m.group(2) or "NEXT").upper().split())
        count: int | None = 1
        if how in ("ALL", "FORWARD ALL"):
            count = None
        elif how.split()[-1].isdigit():
            count = int(how.split()[-1])
        return Command(head.lower(), name=unquote(m.group(3)), count=count)
    if head == "CLOSE":
        target = text[5:].strip()
        return Command("close", name="" if target.upper() == "ALL" else unquote(target))
    return None


def _set(text: str) -> Command:
    upper = " ".join(text.upper().split())
    if upper.startswith(("SET TRANSACTION", "SET SESSION CHARACTERISTICS")):
        return Command("set", name="", value="")
    if upper.startswith(("SET ROLE", "SET SESSION AUTHORIZATION", "SET LOCAL ROLE", "SET SESSION ROLE")):
        raise QueryError("permission denied to set role", sqlstate="42501")
    tz = _SET_TZ.match(text)
    if tz:
        return Command("set", name="timezone", value=_value(tz.group(1)))
    m = _SET.match(text)
    if m is None:
        raise QueryError("SET: expected SET name = value", sqlstate="42601")
    name = ".".join(unquote(p) for p in re.findall(_IDENT, m.group(1)))
    return Command("set", name=name, value=_value(m.group(2)))


def parse_as_of(value: str) -> dict[str, str | int]:
    """``hub.as_of``: ``'<dataset key>=<snapshot id or ISO time>[, ...]'``."""
    out: dict[str, str | int] = {}
    for part in re.split(r"[,;]\s*(?=[A-Za-z_][\w.]*\s*=)", value.strip()):
        if not part.strip():
            continue
        key, sep, when = part.partition("=")
        if not sep or not key.strip() or not when.strip():
            raise QueryError(
                "hub.as_of is '<dataset key>=<snapshot id or ISO time>', several separated by commas",
                sqlstate="22023",
            )
        when = when.strip()
        out[key.strip().lower()] = int(when) if when.isdigit() else when
    return out
