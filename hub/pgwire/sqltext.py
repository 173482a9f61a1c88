"""SQL text as the endpoint reads it before any parser: statements, parameters, literals.

A small scanner that knows PostgreSQL's lexical rules for what can hide a ``;`` or a ``$1``: quoted
strings (``'...'`` with ``''``, ``E'...'`` with backslash escapes), quoted identifiers, dollar-quoted
strings (``$tag$...$tag$``), line and (nested) block comments. It splits a simple Query message into
statements and replaces the placeholders of the extended protocol by literals; the text that results
is then checked by the hub's SQL policy like any other (a mistake here can change what a query
means, never what it may read).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from hub.errors import QueryError

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_PLACEHOLDER = re.compile(r"\$([0-9]+)")


def _tokens(sql: str) -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` of the parts of ``sql`` that matter here: ``;`` and ``$n`` outside quotes
    and comments (``kind`` is ``;`` or ``$``), and ``text`` spans of everything else."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "'" or c == '"':
            escapes = c == "'" and i > 0 and sql[i - 1] in "eE" and (i < 2 or not sql[i - 2].isalnum())
            j = i + 1
            while j < n:
                if escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            yield "text", i, min(j + 1, n)
            i = j + 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            yield "text", i, j
            i = j
        elif c == "/" and sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            yield "text", i, j
            i = j
        elif c == "$":
            m = _PLACEHOLDER.match(sql, i)
            if m and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                yield "$", i, m.end()
                i = m.end()
                continue
            t = _DOLLAR_TAG.match(sql, i)
            if t and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                end = sql.find(t.group(0), t.end())
                j = n if end < 0 else end + len(t.group(0))
                yield "text", i, j
                i = j
                continue
            yield "text", i, i + 1
            i += 1
        elif c == ";":
            yield ";", i, i + 1
            i += 1
        else:
            j = i + 1
            while j < n and sql[j] not in "'\"-/$;":
                j += 1
            yield "text", i, j
            i = j


def split(sql: str) -> list[str]:
    """The statements of ``sql`` (stripped; empty ones dropped)."""
    out: list[str] = []
    start = 0
    for kind, s, e in _tokens(sql):
        if kind == ";":
            out.append(sql[start:s])
            start = e
    out.append(sql[start:])
    return [s.strip() for s in out if strip_comments(s).strip()]


def strip_comments(sql: str) -> str:
    parts = []
    for _kind, s, e in _tokens(sql):
        piece = sql[s:e]
        if piece.startswith("--") or piece.startswith("/*"):
            parts.append(" ")
        else:
            parts.append(piece)
    return "".join(parts)


def placeholders(sql: str) -> int:
    """The highest ``$n`` in ``sql`` (0 when it has none)."""
    return max((int(sql[s + 1 : e]) for kind, s, e in _tokens(sql) if kind == "$"), default=0)


def substitute(sql: str, literals: Sequence[str]) -> str:
    """``sql`` with each ``$n`` replaced by ``literals[n - 1]``."""
    out, last = [], 0
    for kind, s, e in _tokens(sql):
        if kind == "$":
            index = int(sql[s + 1 : e])
            if not 1 <= index <= len(literals):
                raise QueryError(f"there is no parameter ${index}", sqlstate="42P02")
            out.append(sql[last:s])
            out.append(literals[index - 1])
            last = e
    out.append(sql[last:])
    return "".join(out)


# --- parameter values as literals --------------------------------------------------------------


def quote(text: str) -> str:
    if "\x00" in text:
        raise QueryError("a text value may not contain the character NUL", sqlstate="22021")
    return "'" + text.replace("'", "''") + "'"


def _int(text: str) -> str:
    try:
        return str(int(text.strip()))
    except ValueError:
        raise QueryError(f'invalid input syntax for type integer: "{text[:50]}"', sqlstate="22P02") from None


def _float(text: str) -> str:
    try:
        value = float(text.strip())
    except ValueError:
        raise QueryError(f'invalid input syntax for type double: "{text[:50]}"', sqlstate="22P02") from None
    if math.isnan(value) or math.isinf(value):
        return f"CAST('{value}' AS DOUBLE)"
    return repr(value)


def _numeric(text: str) -> str:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise QueryError(f'invalid input syntax for type numeric: "{text[:50]}"', sqlstate="22P02") from None
    if not value.is_finite():
        return f"CAST('{value}' AS DOUBLE)"
    return f"CAST('{value}' AS DECIMAL(38,{max(0, -int(value.as_tuple().exponent))}))"


def _bool(text: str) -> str:
    t = text.strip().lower()
    if t in ("t", "true", "yes", "on", "1", "y"):
        return "TRUE"
    if t in ("f", "false", "no", "off", "0", "n"):
        return "FALSE"
    raise QueryError(f'invalid input syntax for type boolean: "{text[:50]}"', sqlstate="22P02")


def _typed(name: str) -> Callable[[str], str]:
    return lambda text: f"CAST({quote(text)} AS {name})"


def _bytea_text(text: str) -> str:
    raw = bytes.fromhex(text[2:]) if text.startswith("\\x") else text.encode()
    return _bytes(raw)


def _bytes(raw: bytes) -> str:
    return "'" + "".join(f"\\x{b:02x}" for b in raw) + "'::BLOB"


_TEXT_LITERALS: dict[int, Callable[[str], str]] = {
    16: _bool,
    20: _int,
    21: _int,
    23: _int,
    26: _int,
    700: _float,
    701: _float,
    1700: _numeric,
    1082: _typed("DATE"),
    1083: _typed("TIME"),
    1114: _typed("TIMESTAMP"),
    1184: _typed("TIMESTAMPTZ"),
    1186: _typed("INTERVAL"),
    2950: _typed("UUID"),
    17: _bytea_text,
}

_PG_EPOCH = datetime(2000, 1, 1)  # noqa: DTZ001 - PostgreSQL's epoch, a wall time


def _binary_value(oid: int, raw: bytes) -> str:
    """A literal of a parameter sent in binary form."""
    try:
        if oid == 16:
            return "TRUE" if raw != b"\x00" else "FALSE"
        if oid in (20, 21, 23, 26):
            fmt = {2: "!h", 4: "!i", 8: "!q"}[len(raw)]
            return str(struct.unpack(fmt, raw)[0])
        if oid in (700, 701):
            value = struct.unpack("!f" if len(raw) == 4 else "!d", raw)[0]
            return _float(repr(value))
        if oid == 1082:
            days = struct.unpack("!i", raw)[0]
            return f"DATE '{(date(2000, 1, 1) + timedelta(days=days)).isoformat()}'"
        if oid in (1114, 1184):
            micros = struct.unpack("!q", raw)[0]
            stamp = (_PG_EPOCH + timedelta(microseconds=micros)).isoformat(sep=" ")
            return f"{'TIMESTAMPTZ' if oid == 1184 else 'TIMESTAMP'} '{stamp}{'+00' if oid == 1184 else ''}'"
        if oid == 17:
            return _bytes(raw)
        if oid in (25, 1043, 19, 705, 0, 114, 1042, 18):
            return quote(raw.decode("utf-8"))
    except (struct.error, KeyError, UnicodeDecodeError, OverflowError):
        raise QueryError(f"a binary parameter of type {oid} cannot be read", sqlstate="22P03") from None
    raise QueryError(f"parameters of type {oid} must be sent as text", sqlstate="0A000")


def literal(oid: int, value: bytes | None, binary: bool) -> str:
    """The SQL literal of one bound parameter (type ``oid``, 0 when the client left it to the server)."""
    if value is None:
        return "NULL"
    if binary:
        return _binary_value(oid, value)
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise QueryError("a parameter is not UTF-8 text", sqlstate="22021") from None
    convert = _TEXT_LITERALS.get(oid)
    return convert(text) if convert is not None else quote(text)
