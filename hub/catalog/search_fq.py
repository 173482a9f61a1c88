"""A Solr/Lucene-like query parser for package_search's ``q`` (with ``:``), ``fq`` and ``fq_list``.

Grammar (the subset CKAN clients send)::

    query   := or ( 'OR' or )*                 a OR b
    or      := unary ( ['AND' | '&&'] unary )*  space-joined clauses are ANDed (q.op = AND)
    unary   := ('-' | '!' | 'NOT' | '+') unary | primary
    primary := '(' query ')' | FIELD ':' value | value
    value   := '(' query-of-values ')' | '"phrase"' | '[' lo 'TO' hi ']' | '{' lo 'TO' hi '}' | term
    term    := text with optional '*' and '?' wildcards; '*:*' matches everything

Range ends may be ``*`` and dates may use ``NOW`` with Solr date math (``NOW-1DAY``, ``NOW/DAY``).
The parser returns a small tree (``Node``) that ``hub.catalog.search`` evaluates over its index.

Limits: parentheses and prefix operators (``NOT``, ``-``, ``+``, ``!``) nest at most ``max_nesting``
deep (the API passes ``HUB_QUERY_MAX_NESTING``), so neither the parser nor the evaluation recurses
without bound; a date outside the years 1 to 9999 is a syntax error. Both are ``QuerySyntaxError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Union

from hub.errors import HubError


class QuerySyntaxError(HubError):
    """The query cannot be parsed (the API answers CKAN's 400 ``Search Query Error``)."""

    code = "search_query_error"
    http_status = 400


@dataclass(frozen=True)
class All:
    pass


@dataclass(frozen=True)
class Term:
    field: str | None
    value: str
    phrase: bool = False

    @property
    def wildcard(self) -> bool:
        return not self.phrase and ("*" in self.value or "?" in self.value)


@dataclass(frozen=True)
class Range:
    field: str | None
    lo: str | None
    hi: str | None
    lo_incl: bool = True
    hi_incl: bool = True


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Union[All, Term, Range, And, Or, Not]  # noqa: UP007

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<phrase>"(?:\\.|[^"\\])*")
      | (?P<lrange>[\[{])
      | (?P<rrange>[\]}])
      | (?P<lpar>\()
      | (?P<rpar>\))
      | (?P<op>&&|\|\|)
      | (?P<word>(?:\\.|[^\s()\[\]{}"])+)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise QuerySyntaxError(f"cannot parse query at {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


MAX_NESTING = 64
"""Nesting allowed when the caller names none (the default of ``HUB_QUERY_MAX_NESTING``)."""


class _Parser:
    def __init__(self, text: str, max_nesting: int = MAX_NESTING) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0
        self.max_nesting = max_nesting

    def _enter(self) -> None:
        """One level deeper (a parenthesis or a prefix operator); refused past ``max_nesting``."""
        self.depth += 1
        if self.depth > self.max_nesting:
            raise QuerySyntaxError(f"the query nests deeper than {self.max_nesting} levels")

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise QuerySyntaxError("unexpected end of query")
        self.i += 1
        return tok

    def parse(self) -> Node:
        if not self.toks:
            return All()
        node = self.query(None)
        if self.peek() is not None:
            raise QuerySyntaxError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def query(self, field: str | None) -> Node:
        items = [self.conj(field)]
        while self._is_op("OR", "||"):
            self.i += 1
            items.append(self.conj(field))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _is_op(self, *names: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] in ("word", "op") and tok[1] in names

    def conj(self, field: str | None) -> Node:
        items = [self.unary(field)]
        while True:
            tok = self.peek()
            if tok is None or tok[0] == "rpar" or self._is_op("OR", "||"):
                break
            if self._is_op("AND", "&&"):
                self.i += 1
            items.append(self.unary(field))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, field: str | None) -> Node:
        tok = self.peek()
        if tok is None:
            raise QuerySyntaxError("unexpected end of query")
        kind, text = tok
        if kind == "word" and text in ("NOT", "!"):
            self.i += 1
            return Not(self._nested(self.unary, field))
        if kind == "word" and text[0] in "-!+" and len(text) > 1:
            self.toks[self.i] = ("word", text[1:])
            inner = self._nested(self.unary, field)
            return Not(inner) if text[0] in "-!" else inner
        if kind == "word" and text in ("-", "+"):
            self.i += 1
            inner = self._nested(self.unary, field)
            return Not(inner) if text == "-" else inner
        return self.primary(field)

    def _nested(self, rule: Callable[[str | None], Node], field: str | None) -> Node:
        self._enter()
        node = rule(field)
        self.depth -= 1
        return node

    def primary(self, field: str | None) -> Node:
        kind, text = self.take()
        if kind == "lpar":
            node = self._nested(self.query, field)
            self._expect("rpar")
            return node
        if kind == "phrase":
            return Term(field, _unescape(text[1:-1]), phrase=True)
        if kind == "lrange":
            return self.range(field, text == "[")
        if kind != "word":
            raise QuerySyntaxError(f"unexpected {text!r}")
        if text == "*:*":
            return All()
        m = re.match(r"^((?:\\.|[^:\\])+):(.*)$", text)
        if m and field is None:
            name, rest = _unescape(m.group(1)), m.group(2)
            if rest:
                return self._value_word(name, rest)
            nxt = self.peek()
            if nxt is None:
                raise QuerySyntaxError(f"missing value after {name}:")
            if nxt[0] == "lpar":
                self.i += 1
                node = self._nested(self.query, name)
                self._expect("rpar")
                return node
            if nxt[0] == "phrase":
                self.i += 1
                return Term(name, _unescape(nxt[1][1:-1]), phrase=True)
            if nxt[0] == "lrange":
                self.i += 1
                return self.range(name, nxt[1] == "[")
            raise QuerySyntaxError(f"missing value after {name}:")
        return self._value_word(field, text)

    def _value_word(self, field: str | None, text: str) -> Node:
        value = _unescape(text)
        if value == "*" and field is not None:
            return Term(field, "*")
        return Term(field, value)

    def range(self, field: str | None, lo_incl: bool) -> Node:
        parts: list[str] = []
        while True:
            kind, text = self.take()
            if kind == "rrange":
                hi_incl = text == "]"
                break
            if kind == "phrase":
                text = text[1:-1]
            parts.append(text)
        if len(parts) != 3 or parts[1] != "TO":
            raise QuerySyntaxError("a range must look like [X TO Y]")
        lo = None if parts[0] == "*" else _unescape(parts[0])
        hi = None if parts[2] == "*" else _unescape(parts[2])
        return Range(field, lo, hi, lo_incl, hi_incl)

    def _expect(self, kind: str) -> None:
        tok = self.take()
        if tok[0] != kind:
            raise QuerySyntaxError(f"expected ')' but found {tok[1]!r}")


def parse(text: str, max_nesting: int = MAX_NESTING) -> Node:
    """Parse one Solr query string (``fq``, a fielded ``q``) into a ``Node`` tree."""
    return _Parser(text, max_nesting).parse()


_UNITS = {
    "YEAR": "years",
    "YEARS": "years",
    "MONTH": "months",
    "MONTHS": "months",
    "DAY": "days",
    "DAYS": "days",
    "DATE": "days",
    "HOUR": "hours",
    "HOURS": "hours",
    "MINUTE": "minutes",
    "MINUTES": "minutes",
    "SECOND": "seconds",
    "SECONDS": "seconds",
    "MILLI": "ms",
    "MILLIS": "ms",
    "MILLISECOND": "ms",
    "MILLISECONDS": "ms",
}


def _round(dt: datetime, unit: str) -> datetime:
    if unit == "years":
        return dt.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "months":
        return dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "days":
        return dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "hours":
        return dt.replace(minute=0, second=0, microsecond=0)
    if unit == "minutes":
        return dt.replace(second=0, microsecond=0)
    if unit == "seconds":
        return dt.replace(microsecond=0)
    return dt


def _add(dt: datetime, n: int, unit: str) -> datetime:
    if unit in ("years", "months"):
        months = dt.month - 1 + n * (12 if unit == "years" else 1)
        year = dt.year + months // 12
        month = months % 12 + 1
        day = min(
            dt.day,
            [
                31,
                29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][month - 1],
        )
        return dt.replace(year=year, month=month, day=day)
    if unit == "ms":
        return dt + timedelta(milliseconds=n)
    return dt + timedelta(**{unit: n})


MAX_DATE_CHARS = 200


def parse_date(text: str, now: datetime | None = None) -> datetime:
    """A Solr date (ISO 8601, optional fraction and ``Z``) or ``NOW`` with date math, as naive UTC."""
    text = text.strip()
    if len(text) > MAX_DATE_CHARS:  # the pattern below backtracks over long texts
        raise QuerySyntaxError(f"invalid date {text[:40]!r}...: longer than {MAX_DATE_CHARS} characters")
    base_now = now or datetime.now(UTC).replace(tzinfo=None)
    m = re.match(r"^(NOW|[0-9][0-9:\-T.]*Z?)((?:[+\-/][0-9]*[A-Z]+)*)$", text)
    if not m:
        raise QuerySyntaxError(f"invalid date {text[:40]!r}")
    head, math = m.group(1), m.group(2)
    if head == "NOW":
        dt = base_now
    else:
        try:
            parsed = datetime.fromisoformat(head.replace("Z", "+00:00"))
            dt = parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
        except (OverflowError, ValueError) as exc:  # not a date, or past year 9999 in UTC
            raise QuerySyntaxError(f"invalid date {text[:40]!r}") from exc
    for op, num, unit_name in re.findall(r"([+\-/])([0-9]*)([A-Z]+)", math):
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise QuerySyntaxError(f"invalid date math unit {unit_name!r}")
        if op == "/":
            dt = _round(dt, unit)
            continue
        if len(num) > 18:  # more than any date can move (int() refuses 4,300 digits)
            raise QuerySyntaxError(f"date math out of range in {text[:40]!r}")
        n = int(num or "1")
        try:
            dt = _add(dt, n if op == "+" else -n, unit)
        except (OverflowError, ValueError) as exc:  # past the years 1 to 9999
            raise QuerySyntaxError(f"date math out of range in {text[:40]!r}") from exc
    return dt
