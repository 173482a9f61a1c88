"""The catalogue instance of one connection: a small DuckDB that holds catalogue rows, never data.

Built by the hub's one DuckDB factory (``hub.warehouse.engine.duck.connect(file_access=False)``: no
file access, locked configuration, a small memory limit, one thread) when the connection sends its
first catalogue query, and rebuilt when what the principal may read changes. It holds:

- ``hubpg.<table>`` for every relation of PostgreSQL's ``pg_catalog`` and ``hubinfo.<view>`` for
  ``information_schema`` (their columns and types from ``data/pg_catalog.json``, taken from a
  PostgreSQL 15 server's own catalogue), empty except those ``hub.pgwire.catalog_rows`` fills;
- macros for the catalogue functions tools call (``format_type``, ``pg_get_userbyid``,
  ``pg_table_is_visible``, ``has_table_privilege``, ``obj_description`` ...).

The tool's SQL, rewritten by ``hub.pgwire.catalog_sql``, runs there with a time limit.
"""

from __future__ import annotations

import json
import threading
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from hub.errors import QueryError
from hub.pgwire.catalog_rows import Relation, fingerprint, rows
from hub.pgwire.catalog_sql import INFO_SCHEMA, PG_SCHEMA
from hub.settings import Settings
from hub.warehouse.engine import duck

_SPEC = Path(__file__).parent / "data" / "pg_catalog.json"
_DUCK_TYPES = {
    "oid": "BIGINT", "name": "VARCHAR", "text": "VARCHAR", '"char"': "VARCHAR", "boolean": "BOOLEAN",
    "smallint": "SMALLINT", "integer": "INTEGER", "bigint": "BIGINT", "real": "REAL",
    "double precision": "DOUBLE", "regproc": "VARCHAR", "regtype": "VARCHAR", "xid": "BIGINT",
    "int2vector": "SMALLINT[]", "oidvector": "BIGINT[]", "pg_node_tree": "VARCHAR", "anyarray": "VARCHAR[]",
    "timestamp with time zone": "TIMESTAMPTZ", "interval": "INTERVAL", "bytea": "BLOB", "pg_lsn": "VARCHAR",
    "information_schema.cardinal_number": "INTEGER", "information_schema.character_data": "VARCHAR",
    "information_schema.sql_identifier": "VARCHAR", "information_schema.time_stamp": "TIMESTAMPTZ",
    "information_schema.yes_or_no": "VARCHAR",
}  # fmt: skip

MACROS = """
CREATE MACRO format_type(t, m) AS (SELECT CASE WHEN t = 1700 AND m > 4
    THEN 'numeric(' || ((m - 4) // 65536) || ',' || ((m - 4) % 65536) || ')'
    ELSE hub_f.display END FROM hubpg.hub_format hub_f WHERE hub_f.oid = t);
CREATE MACRO pg_get_userbyid(r) AS coalesce((SELECT hub_r.rolname FROM hubpg.pg_roles hub_r
    WHERE hub_r.oid = r), 'unknown');
CREATE MACRO pg_table_is_visible(o) AS true;
CREATE MACRO pg_type_is_visible(o) AS true;
CREATE MACRO pg_function_is_visible(o) AS true;
CREATE MACRO pg_collation_is_visible(o) AS true;
CREATE MACRO pg_get_expr(a, b) AS NULL::VARCHAR, (a, b, c) AS NULL::VARCHAR;
CREATE MACRO pg_get_indexdef(a) AS NULL::VARCHAR, (a, b, c) AS NULL::VARCHAR;
CREATE MACRO pg_get_constraintdef(a) AS NULL::VARCHAR, (a, b) AS NULL::VARCHAR;
CREATE MACRO pg_get_viewdef(a) AS NULL::VARCHAR, (a, b) AS NULL::VARCHAR;
CREATE MACRO pg_get_triggerdef(a) AS NULL::VARCHAR, (a, b) AS NULL::VARCHAR;
CREATE MACRO pg_get_ruledef(a) AS NULL::VARCHAR, (a, b) AS NULL::VARCHAR;
CREATE MACRO pg_get_partkeydef(a) AS NULL::VARCHAR;
CREATE MACRO pg_get_function_identity_arguments(a) AS ''::VARCHAR;
CREATE MACRO pg_get_function_arguments(a) AS ''::VARCHAR;
CREATE MACRO pg_get_function_result(a) AS NULL::VARCHAR;
CREATE MACRO pg_get_function_sqlbody(a) AS NULL::VARCHAR;
CREATE MACRO pg_relation_is_publishable(a) AS false;
CREATE MACRO pg_get_statisticsobjdef_columns(a) AS NULL::VARCHAR;
CREATE MACRO pg_get_serial_sequence(a, b) AS NULL::VARCHAR;
CREATE MACRO pg_tablespace_location(a) AS ''::VARCHAR;
CREATE MACRO pg_encoding_to_char(a) AS 'UTF8';
CREATE MACRO pg_char_to_encoding(a) AS 6;
CREATE MACRO pg_is_in_recovery() AS false;
CREATE MACRO pg_postmaster_start_time() AS now();
CREATE MACRO pg_conf_load_time() AS now();
CREATE MACRO txid_current() AS 1::BIGINT;
CREATE MACRO pg_current_xact_id() AS 1::BIGINT;
CREATE MACRO pg_relation_size(a) AS 0::BIGINT, (a, b) AS 0::BIGINT;
CREATE MACRO pg_total_relation_size(a) AS 0::BIGINT;
CREATE MACRO pg_table_size(a) AS 0::BIGINT;
CREATE MACRO pg_indexes_size(a) AS 0::BIGINT;
CREATE MACRO pg_stat_get_numscans(a) AS 0::BIGINT;
CREATE MACRO pg_size_pretty(a) AS a::VARCHAR || ' bytes';
CREATE MACRO obj_description(o) AS (SELECT min(hub_d.description) FROM hubpg.pg_description hub_d
    WHERE hub_d.objoid = o AND hub_d.objsubid = 0),
  (o, c) AS (SELECT min(hub_d.description) FROM hubpg.pg_description hub_d
    WHERE hub_d.objoid = o AND hub_d.objsubid = 0);
CREATE MACRO col_description(o, n) AS (SELECT min(hub_d.description) FROM hubpg.pg_description hub_d
    WHERE hub_d.objoid = o AND hub_d.objsubid = n);
CREATE MACRO shobj_description(o, c) AS NULL::VARCHAR;
CREATE MACRO has_table_privilege(a, b) AS true, (a, b, c) AS true;
CREATE MACRO has_schema_privilege(a, b) AS true, (a, b, c) AS true;
CREATE MACRO has_database_privilege(a, b) AS true, (a, b, c) AS true;
CREATE MACRO has_column_privilege(a, b, c) AS true, (a, b, c, d) AS true;
CREATE MACRO has_any_column_privilege(a, b) AS true, (a, b, c) AS true;
CREATE MACRO has_function_privilege(a, b) AS true, (a, b, c) AS true;
CREATE MACRO has_sequence_privilege(a, b) AS false, (a, b, c) AS false;
CREATE MACRO pg_has_role(a, b) AS false, (a, b, c) AS false;
CREATE MACRO array_upper(a, d) AS len(a);
CREATE MACRO array_lower(a, d) AS CASE WHEN len(a) > 0 THEN 1 END;
CREATE MACRO quote_ident(s) AS CASE WHEN regexp_full_match(s, '[a-z_][a-z0-9_]*') THEN s
    ELSE '"' || replace(s, '"', '""') || '"' END;
CREATE MACRO hub_regclass_oid(s) AS (SELECT min(hub_c.oid) FROM hubpg.pg_class hub_c
    JOIN hubpg.pg_namespace hub_n ON hub_n.oid = hub_c.relnamespace
    WHERE hub_c.relname = s OR hub_n.nspname || '.' || hub_c.relname = replace(s, '"', ''));
CREATE MACRO to_regclass(s) AS hub_regclass_oid(s);
CREATE MACRO hub_regclass_name(o) AS coalesce((SELECT hub_n.nspname || '.' || hub_c.relname
    FROM hubpg.pg_class hub_c JOIN hubpg.pg_namespace hub_n ON hub_n.oid = hub_c.relnamespace
    WHERE hub_c.oid = o), o::VARCHAR);
CREATE MACRO hub_regtype_oid(s) AS (SELECT min(hub_t.oid) FROM hubpg.pg_type hub_t WHERE hub_t.typname = s);
CREATE MACRO to_regtype(s) AS hub_regtype_oid(s);
CREATE MACRO hub_regtype_name(o) AS coalesce((SELECT hub_f.display FROM hubpg.hub_format hub_f
    WHERE hub_f.oid = o), o::VARCHAR);
CREATE MACRO hub_regnamespace_oid(s) AS (SELECT min(hub_n.oid) FROM hubpg.pg_namespace hub_n
    WHERE hub_n.nspname = s);
CREATE MACRO hub_regnamespace_name(o) AS coalesce((SELECT hub_n.nspname FROM hubpg.pg_namespace hub_n
    WHERE hub_n.oid = o), o::VARCHAR);
"""

_DISPLAY = {
    "bool": "boolean", "int2": "smallint", "int4": "integer", "int8": "bigint", "float4": "real",
    "float8": "double precision", "varchar": "character varying", "bpchar": "character",
    "timestamp": "timestamp without time zone", "timestamptz": "timestamp with time zone",
    "time": "time without time zone", "timetz": "time with time zone", "char": '"char"',
}  # fmt: skip


@cache
def _spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_SPEC.read_text(encoding="utf-8"))
    return data


def _create(schema: str, name: str) -> str | None:
    """The CREATE TABLE of catalogue relation ``schema.name`` (``hubpg``/``hubinfo``), or None when
    PostgreSQL has no such relation."""
    if schema == PG_SCHEMA and name == "hub_format":
        return f"CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.hub_format (oid BIGINT, display VARCHAR)"
    columns = _spec()["relations"].get(
        f"{'pg_catalog' if schema == PG_SCHEMA else 'information_schema'}.{name}"
    )
    if columns is None:
        return None
    cols = ", ".join(f'"{c}" {_duck_type(t)}' for c, t in columns)
    return f'CREATE TABLE IF NOT EXISTS {schema}."{name}" ({cols})'


def _duck_type(pg: str) -> str:
    if pg.endswith("[]"):
        return _duck_type(pg[:-2]).removesuffix("[]") + "[]"
    return _DUCK_TYPES.get(pg, "VARCHAR")


def _type_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    types, display = [], []
    for t in _spec()["types"]:
        row = {k: v for k, v in t.items() if k != "oid"}
        types.append({"oid": t["oid"], "typnamespace": 11, "typowner": 10, "typisdefined": True,
                      "typrelid": 0, "typnotnull": False, "typbasetype": 0, "typtypmod": -1, "typndims": 0,
                      **row})  # fmt: skip
        name = t["typname"]
        shown = _DISPLAY.get(name.lstrip("_"), name.lstrip("_")) + ("[]" if name.startswith("_") else "")
        display.append({"oid": t["oid"], "display": shown})
    return types, display


class Catalogue:
    """The catalogue instance of one connection (see the module docstring)."""

    def __init__(self, settings: Settings, user: str, database: str) -> None:
        self.settings = settings
        self.user = user
        self.database = database
        self._con: Any = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._settings_shown: tuple[tuple[str, str], ...] | None = None
        self._lock = threading.Lock()

    def _build(self, relations: list[Relation]) -> None:
        self.close()
        con = duck.connect(
            file_access=False,
            memory_limit="128MB",
            threads=1,
            temp_dir=self.settings.data_dir / "tmp" / "duckdb",
        )
        con.execute(f"CREATE SCHEMA {PG_SCHEMA}; CREATE SCHEMA {INFO_SCHEMA}")
        types, display = _type_rows()
        filled = rows(relations, self.user, self.database)
        filled["pg_type"] = types
        filled["hub_format"] = display
        filled["pg_settings"] = []
        for table, values in filled.items():
            schema, _, name = table.rpartition(".")
            create = _create(INFO_SCHEMA if schema == "information_schema" else PG_SCHEMA, name)
            assert create is not None, table
            con.execute(create)
            if values:
                self._insert(con, table, values)
        con.execute(MACROS)
        self._con = con
        self._fingerprint = fingerprint(relations)
        self._settings_shown = None

    @staticmethod
    def _insert(con: Any, table: str, values: list[dict[str, Any]]) -> None:
        schema, _, name = table.rpartition(".")
        target = INFO_SCHEMA if schema == "information_schema" else PG_SCHEMA
        keys = sorted({k for v in values for k in v})
        data = pa.Table.from_pylist([{k: v.get(k) for k in keys} for v in values])
        con.register("hub_rows", data)
        try:
            con.execute(f'INSERT INTO {target}."{name}" BY NAME SELECT * FROM hub_rows')
        finally:
            con.unregister("hub_rows")

    def _show(self, settings: dict[str, str]) -> None:
        shown = tuple(sorted(settings.items()))
        if shown == self._settings_shown:
            return
        self._con.execute(f"DELETE FROM {PG_SCHEMA}.pg_settings")
        values = [
            {"name": k, "setting": v, "category": "Client", "short_desc": "", "context": "user",
             "vartype": "string", "source": "session", "boot_val": v, "reset_val": v,
             "pending_restart": False}
            for k, v in shown
        ]  # fmt: skip
        if values:
            self._insert(self._con, "pg_settings", values)
        self._settings_shown = shown

    def query(
        self,
        sql: str,
        tables: set[tuple[str, str]],
        relations: list[Relation],
        settings: dict[str, str],
        timeout: float,
    ) -> pa.Table:
        """The result of ``sql`` (DuckDB SQL from ``catalog_sql.rewrite``, reading ``tables``) over the
        catalogue of ``relations``, interrupted after ``timeout`` seconds."""
        with self._lock:
            if self._con is None or fingerprint(relations) != self._fingerprint:
                self._build(relations)
            self._show(settings)
            for schema, name in tables:
                create = _create(schema, name)
                if create is None:
                    shown = "pg_catalog" if schema == PG_SCHEMA else "information_schema"
                    raise QueryError(f'relation "{shown}.{name}" does not exist', sqlstate="42P01")
                self._con.execute(create)
            timer = threading.Timer(timeout, self._con.interrupt)
            timer.start()
            try:
                table: pa.Table = self._con.sql(sql).to_arrow_table()
                return table
            except Exception as exc:  # DuckDB's errors (its module is the warehouse's to import)
                text = duck.clean_message(str(exc))
                if "INTERRUPT" in type(exc).__name__.upper():
                    raise QueryError(
                        "canceling statement due to statement timeout", sqlstate="57014"
                    ) from None
                raise QueryError(text, sqlstate=_sqlstate(text)) from None
            finally:
                timer.cancel()

    def interrupt(self) -> None:
        con = self._con
        if con is not None:
            con.interrupt()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _sqlstate(text: str) -> str:
    if text.startswith("Catalog Error: Table"):
        return "42P01"
    if text.startswith("Binder Error") and "column" in text.lower():
        return "42703"
    if text.startswith(("Catalog Error: Scalar Function", "Catalog Error: Table Function")):
        return "42883"
    if text.startswith("Parser Error"):
        return "42601"
    return "XX000"
