"""The civil-status registry's own store: a SQLite file with tables ``births``, ``marriages``, ``deaths``.

The simulated civil-status service (``hub.demo.civil_status_service``) serves it; the generator fills it.
Pages are read in the order (updated_at, registration_number), so a cursor is the last pair read.
"""

from __future__ import annotations

import base64
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import orjson

from hub.demo.people import Columns, rows

KINDS = ("births", "marriages", "deaths")
SINGULAR = {"births": "birth", "marriages": "marriage", "deaths": "death"}
INTEGER_FIELDS = {"birth_weight_grams"}


def write_store(path: Path, tables: dict[str, Columns]) -> None:
    """Replace the store at ``path`` with ``tables`` (kind -> columns), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        for kind, cols in tables.items():
            defs = ", ".join(f"{k} {'INTEGER' if k in INTEGER_FIELDS else 'TEXT'}" for k in cols)
            con.execute(f"CREATE TABLE {kind} ({defs}, PRIMARY KEY (registration_number))")
            con.executemany(f"INSERT INTO {kind} VALUES ({', '.join('?' * len(cols))})", rows(cols))
            con.execute(f"CREATE INDEX {kind}_page ON {kind} (updated_at, registration_number)")
        con.commit()
    finally:
        con.close()
    tmp.replace(path)


def encode_cursor(updated_at: str, key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([updated_at, key])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (updated_at, registration_number) a cursor stands for; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, key = orjson.loads(raw)
    except Exception as exc:
        raise ValueError("invalid cursor") from exc
    if not isinstance(updated_at, str) or not isinstance(key, str):
        raise ValueError("invalid cursor")
    return updated_at, key


class Store:
    """Read access to the store; one SQLite connection per call (the service runs calls in threads)."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; run `hub demo generate` first")
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        con.row_factory = sqlite3.Row
        return con

    def count(self, kind: str, updated_since: str | None = None) -> int:
        where, params = _filter(updated_since, None)
        with self._connect() as con:
            return int(con.execute(f"SELECT count(*) FROM {kind}{where}", params).fetchone()[0])

    def page(
        self,
        kind: str,
        *,
        limit: int,
        cursor: str | None = None,
        updated_since: str | None = None,
        offset: int | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` records after ``cursor`` (or from ``offset``), and the next cursor or None."""
        after = decode_cursor(cursor) if cursor else None
        where, params = _filter(updated_since, after)
        sql = f"SELECT * FROM {kind}{where} ORDER BY updated_at, registration_number LIMIT ?"
        params.append(limit + 1)
        if offset:
            sql += " OFFSET ?"
            params.append(offset)
        with self._connect() as con:
            found = [dict(r) for r in con.execute(sql, params)]
        more = len(found) > limit
        found = found[:limit]
        nxt = (
            encode_cursor(found[-1]["updated_at"], found[-1]["registration_number"])
            if more and found
            else None
        )
        return found, nxt

    def iterate(self, kind: str, updated_since: str | None = None) -> Iterator[dict[str, Any]]:
        where, params = _filter(updated_since, None)
        con = self._connect()
        try:
            for r in con.execute(
                f"SELECT * FROM {kind}{where} ORDER BY updated_at, registration_number", params
            ):
                yield dict(r)
        finally:
            con.close()

    def columns(self, kind: str) -> list[str]:
        with self._connect() as con:
            return [r[1] for r in con.execute(f"PRAGMA table_info({kind})")]


def _filter(updated_since: str | None, after: tuple[str, str] | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if updated_since:
        clauses.append("updated_at >= ?")
        params.append(updated_since)
    if after:
        clauses.append("(updated_at, registration_number) > (?, ?)")
        params.extend([after[0], after[1]])
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def xml_chunks(store: Store, kind: str, since: str | None, *, stop_halfway: bool = False) -> Iterator[bytes]:
    """The XML export of ``kind`` in pieces: ``<births count=".." exported_at=".."><birth>...`` with one
    child element per non-null field. ``stop_halfway`` ends it in the middle (a broken export)."""
    element = SINGULAR[kind]
    total = store.count(kind, since)
    stamp = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).isoformat(timespec="seconds")
    yield (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{kind} source="So Tu phap - simulated" '
        f'exported_at="{stamp}" count="{total}">\n'
    ).encode()
    buf: list[str] = []
    for i, rec in enumerate(store.iterate(kind, since)):
        if stop_halfway and i >= total // 2:
            yield "".join(buf).encode()
            return
        fields = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in rec.items() if v is not None)
        buf.append(f"  <{element}>{fields}</{element}>\n")
        if len(buf) >= 500:
            yield "".join(buf).encode()
            buf.clear()
    buf.append(f"</{kind}>\n")
    yield "".join(buf).encode()


def write_xml_export(store: Store, kind: str, path: Path) -> None:
    """Write the XML export of ``kind`` to ``path`` (what the registry drops for file-based exchange)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for piece in xml_chunks(store, kind, None):
            f.write(piece)
    tmp.replace(path)
