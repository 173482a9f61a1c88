"""The catalogue queries tools send (``pg_catalog``, ``information_schema``, ``version()``), rewritten
for the hub's catalogue instance (``hub.pgwire.catalog``).

A query goes here when it names a ``pg_catalog`` or ``information_schema`` relation (or a bare
``pg_*`` one), or calls a function only PostgreSQL's catalogue has; everything else is a query of
the warehouse and takes the hub's one SQL door. The query is parsed as PostgreSQL
(sqlglot) and rewritten into DuckDB's SQL:

- ``pg_catalog.x`` and bare ``pg_x`` relations become ``hubpg.x``; ``information_schema.x``
  becomes ``hubinfo.x``: the catalogue instance's own tables, whose rows describe what the caller may
  read; a query that also names a warehouse table is refused (catalogue and data never mix);
- ``OPERATOR(pg_catalog.~)``, ``COLLATE pg_catalog.default``, ``pg_catalog.`` in front of functions
  and types, casts to ``regclass``/``regtype``/``regnamespace``/``oid``/``name`` are turned into
  what DuckDB and the instance's macros understand;
- the session's own values (``current_user``, ``current_database()``, ``current_schema()``,
  ``version()``, ``current_setting(...)``, ``pg_backend_pid()``) become literals.

Only one SELECT is accepted, and only functions the policy allows or the instance defines, so the
catalogue instance (empty of data, no file access) is read and never changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from hub.errors import AccessDeniedError, HubError, QueryError
from hub.warehouse.engine import policy

PG_SCHEMA = "hubpg"
INFO_SCHEMA = "hubinfo"

MACROS = frozenset(
    {
        "format_type", "pg_get_userbyid", "pg_table_is_visible", "pg_type_is_visible",
        "pg_function_is_visible", "pg_collation_is_visible", "pg_get_expr", "pg_get_indexdef",
        "pg_get_constraintdef", "pg_get_viewdef", "pg_get_triggerdef", "pg_get_ruledef",
        "pg_relation_is_publishable", "pg_get_statisticsobjdef_columns", "pg_get_serial_sequence",
        "pg_get_function_identity_arguments", "pg_get_function_arguments", "pg_get_function_result",
        "pg_get_partkeydef", "pg_tablespace_location", "pg_encoding_to_char", "pg_is_in_recovery",
        "pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size",
        "pg_size_pretty", "obj_description", "col_description", "shobj_description",
        "has_table_privilege", "has_schema_privilege", "has_database_privilege",
        "has_column_privilege", "has_any_column_privilege", "has_function_privilege",
        "has_sequence_privilege", "pg_has_role", "array_upper", "array_lower", "quote_ident",
        "hub_regclass_oid", "hub_regclass_name", "hub_regtype_oid", "hub_regtype_name",
        "hub_regnamespace_oid", "hub_regnamespace_name", "pg_postmaster_start_time",
        "pg_conf_load_time", "txid_current", "pg_current_xact_id", "to_regclass", "to_regtype",
        "pg_get_keywords", "pg_char_to_encoding", "pg_get_function_sqlbody", "pg_stat_get_numscans",
        "pg_available_extension_versions",
    }
)  # fmt: skip
"""Functions the catalogue instance defines as macros (``hub.pgwire.catalog``)."""

_SESSION_FUNCS = {"version", "current_database", "current_schema", "current_schemas", "current_user",
                  "session_user", "current_catalog", "current_role", "user", "pg_backend_pid",
                  "current_setting", "set_config", "inet_server_addr", "inet_server_port",
                  "inet_client_addr", "getdatabaseencoding", "pg_client_encoding"}  # fmt: skip

_CATALOGUE_WORDS = re.compile(
    r"pg_|information_schema|\bversion\s*\(|current_(schema|database|catalog|setting|user|role)|"
    r"session_user|has_\w+_privilege|format_type|obj_description|col_description|getdatabaseencoding|"
    r"inet_server|set_config",
    re.IGNORECASE,
)

_FORBIDDEN = policy.FORBIDDEN_NODES  # the statements the engine's policy refuses

_TYPES = {
    "oid": "BIGINT", "xid": "BIGINT", "cid": "BIGINT", "tid": "VARCHAR", "name": "VARCHAR",
    "text": "VARCHAR", "char": "VARCHAR", "bpchar": "VARCHAR", "varchar": "VARCHAR",
    "regproc": "VARCHAR", "regprocedure": "VARCHAR", "regoper": "VARCHAR", "regrole": "VARCHAR",
    "regconfig": "VARCHAR", "int2vector": "SMALLINT[]", "oidvector": "BIGINT[]", "int2": "SMALLINT",
    "int4": "INTEGER", "int8": "BIGINT", "float4": "REAL", "float8": "DOUBLE", "bool": "BOOLEAN",
    "_text": "VARCHAR[]", "_oid": "BIGINT[]", "_int2": "SMALLINT[]", "_int4": "INTEGER[]",
    "_char": "VARCHAR[]", "aclitem": "VARCHAR", "pg_node_tree": "VARCHAR", "anyarray": "VARCHAR[]",
    "json": "JSON", "jsonb": "JSON",
}  # fmt: skip
_RENAMED = {"json_build_object": "json_object", "jsonb_build_object": "json_object"}
_REG = {"regclass": "regclass", "regtype": "regtype", "regnamespace": "regnamespace"}
_OPERATORS = {"~": "regex", "!~": "not regex", "~*": "iregex", "!~*": "not iregex", "~~": "like",
              "!~~": "not like", "~~*": "ilike", "!~~*": "not ilike", "=": "eq", "<>": "neq",
              "!=": "neq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}  # fmt: skip


class NotCatalogueError(HubError):
    """The query reads no catalogue relation: it is a warehouse query."""


@dataclass(frozen=True)
class SessionValues:
    """What a session's own functions return."""

    user: str
    database: str
    schema: str
    search_path: tuple[str, ...]
    version: str
    pid: int
    settings: Mapping[str, str]


def looks_like_catalogue(sql: str) -> bool:
    """Whether ``sql`` may be a catalogue query (cheap: no parsing); False means it is not one."""
    return _CATALOGUE_WORDS.search(sql) is not None


def _literal(value: object) -> exp.Expr:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _func_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def _type_name(dtype: exp.Expr) -> str | None:
    if isinstance(dtype, exp.ObjectIdentifier):
        return str(dtype.this).lower()
    if isinstance(dtype, exp.DataType):
        kind = dtype.args.get("kind")
        if isinstance(kind, exp.Dot):
            return str(kind.expression.name).lower()
        if dtype.this == exp.DataType.Type.USERDEFINED and kind is not None:
            return str(kind.name if isinstance(kind, exp.Expr) else kind).lower()
    return None


def _uncast(node: exp.Expr) -> exp.Expr:
    """A constant under its casts (``'x'::text`` is ``'x'``)."""
    while isinstance(node, exp.Cast):
        node = node.this
    return node


class _Rewriter:
    def __init__(self, values: SessionValues) -> None:
        self.values = values
        self.catalogue = False
        self.tables: set[tuple[str, str]] = set()

    def table(self, node: exp.Table, ctes: set[str]) -> exp.Expr:
        if isinstance(node.this, exp.Func):
            self.check_function(node.this)
            node.set("db", None)
            node.set("catalog", None)
            return node
        db = node.args.get("db")
        schema = db.name.lower() if isinstance(db, exp.Identifier) else None
        name = node.name.lower()
        if schema is None and name in ctes:
            return node
        node.set("catalog", None)
        if schema == "pg_catalog" or (schema is None and name.startswith("pg_")):
            target = PG_SCHEMA
        elif schema == "information_schema":
            target = INFO_SCHEMA
        else:
            raise NotCatalogueError(f"{schema}.{name}" if schema else name)
        node.set("db", exp.to_identifier(target))
        node.set("this", exp.to_identifier(name))
        self.tables.add((target, name))
        self.catalogue = True
        return node

    def check_function(self, node: exp.Func) -> None:
        name = _func_name(node)
        if name in MACROS or name in _SESSION_FUNCS:
            return
        if policy.denied_function(name):
            raise AccessDeniedError(f"Not authorized to call function {name}")

    def session_function(self, node: exp.Expr) -> exp.Expr | None:
        v = self.values
        if isinstance(node, exp.CurrentUser | exp.SessionUser):
            return _literal(v.user)
        if isinstance(node, exp.CurrentSchema):
            return _literal(v.schema)
        if isinstance(node, exp.CurrentDatabase | exp.CurrentCatalog):
            return _literal(v.database)
        if type(node).__name__ == "CurrentVersion":  # sqlglot's node for version()
            return _literal(v.version)
        if not isinstance(node, exp.Func):
            return None
        name = _func_name(node)
        args = node.expressions if isinstance(node, exp.Anonymous) else [a for a in node.args.values() if a]
        if name == "version":
            return _literal(v.version)
        if name in ("current_database", "current_catalog"):
            return _literal(v.database)
        if name == "current_schema":
            return _literal(v.schema)
        if name in ("current_user", "session_user", "current_role", "user"):
            return _literal(v.user)
        if name == "current_schemas":
            return exp.Array(expressions=[_literal(s) for s in v.search_path])
        if name == "pg_backend_pid":
            return _literal(v.pid)
        if name in ("getdatabaseencoding", "pg_client_encoding"):
            return _literal("UTF8")
        if name in ("inet_server_addr", "inet_client_addr", "inet_server_port"):
            return exp.Null()
        args = [_uncast(a) for a in args]  # drivers write current_setting('x'::text)
        if name in ("current_setting", "set_config") and args and isinstance(args[0], exp.Literal):
            key = str(args[0].this).lower()
            if name == "set_config" and len(args) > 1 and isinstance(args[1], exp.Literal):
                return _literal(str(args[1].this))
            if key not in v.settings and not (len(args) > 1 and str(args[1]).lower() == "true"):
                raise QueryError(f'unrecognized configuration parameter "{key}"', sqlstate="42704")
            return _literal(v.settings.get(key))
        if name in ("current_setting", "set_config"):
            raise QueryError(f"{name} takes a constant setting name here", sqlstate="0A000")
        return None

    def cast(self, node: exp.Cast) -> exp.Expr | None:
        name = _type_name(node.args["to"])
        if name is None:
            return None
        if name in _REG:
            operand = node.this
            kind = "oid" if isinstance(operand, exp.Literal) and operand.is_string else "name"
            return exp.Anonymous(this=f"hub_{name}_{kind}", expressions=[operand])
        if name in _TYPES:
            return exp.Cast(this=node.this, to=exp.DataType.build(_TYPES[name], dialect="duckdb"))
        return None

    def operator(self, node: exp.Operator) -> exp.Expr:
        op = str(node.args.get("operator") or "").split(".")[-1].strip()
        kind = _OPERATORS.get(op)
        left, right = node.this, node.expression
        if isinstance(right, exp.Collate):
            right = right.this
        if kind is None:
            raise QueryError(f"operator does not exist: {op}", sqlstate="42883")
        negate = kind.startswith("not ")
        made: exp.Expr
        kind = kind.removeprefix("not ")
        if kind == "regex":
            made = exp.RegexpLike(this=left, expression=right)
        elif kind == "iregex":
            made = exp.RegexpLike(this=left, expression=right, flag=exp.Literal.string("i"))
        elif kind == "like":
            made = exp.Like(this=left, expression=right)
        elif kind == "ilike":
            made = exp.ILike(this=left, expression=right)
        else:
            made = {"eq": exp.EQ, "neq": exp.NEQ, "lt": exp.LT, "lte": exp.LTE, "gt": exp.GT, "gte": exp.GTE}[
                kind
            ](this=left, expression=right)
        return exp.Not(this=made) if negate else made


def _ctes(tree: exp.Expr) -> set[str]:
    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


def _plain_type(node: exp.DataType) -> exp.DataType:
    """A PostgreSQL type DuckDB knows (``pg_catalog.int2`` is ``SMALLINT``); reg* types stay for
    ``_Rewriter.cast``."""
    name = _type_name(node)
    if name is None or name in _REG:
        return node
    return exp.DataType.build(_TYPES.get(name, name), dialect="duckdb")


def _post_order(node: exp.Expr, fn: Callable[[exp.Expr], exp.Expr]) -> exp.Expr:
    """``node`` with ``fn`` applied to every node, children before their parent."""
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expr):
            node.set(key, _post_order(value, fn))
        elif isinstance(value, list):
            node.set(key, [_post_order(v, fn) if isinstance(v, exp.Expr) else v for v in value])
    return fn(node)


@dataclass(frozen=True)
class Rewritten:
    sql: str
    tables: set[tuple[str, str]]


def rewrite(sql: str, values: SessionValues) -> Rewritten:
    """``sql`` (one PostgreSQL SELECT over the catalogue) as DuckDB SQL for the catalogue instance,
    and the catalogue tables it reads.

    ``NotCatalogueError`` when it reads no catalogue relation (or a warehouse table too, which is refused
    by the caller); ``QueryError``/``AccessDeniedError`` when it is not a query the catalogue answers."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="postgres") if s is not None]
    except (sqlglot.errors.SqlglotError, RecursionError, ValueError) as exc:
        raise QueryError(f"Invalid query: {str(exc).splitlines()[0][:200]}", sqlstate="42601") from exc
    if len(statements) != 1:
        raise QueryError("Query is not a single statement.", sqlstate="42601")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise NotCatalogueError("not a query")
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN):
            raise QueryError("Only a SELECT statement is allowed.", sqlstate="25006")
    rw = _Rewriter(values)
    ctes = _ctes(tree)

    def transform(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table):
            return rw.table(node, ctes)
        if isinstance(node, exp.Column):
            db = node.args.get("db")
            if isinstance(db, exp.Identifier) and db.name.lower() in ("pg_catalog", "information_schema"):
                target = PG_SCHEMA if db.name.lower() == "pg_catalog" else INFO_SCHEMA
                node.set("db", exp.to_identifier(target))
            node.set("catalog", None)
            return node
        if (
            isinstance(node, exp.Dot)
            and isinstance(node.this, exp.Identifier)
            and node.this.name.lower() == "pg_catalog"
        ):
            rw.catalogue = True
            inner: exp.Expr = node.expression  # a function of pg_catalog, already rewritten
            return inner
        if isinstance(node, exp.Operator):
            return rw.operator(node)
        if isinstance(node, exp.Collate):
            collated: exp.Expr = node.this
            return collated
        if isinstance(node, exp.DataType):
            return _plain_type(node)
        if isinstance(node, exp.Cast):
            made = rw.cast(node)
            if made is not None:
                return made
        replaced = rw.session_function(node)
        if replaced is not None:
            rw.catalogue = True
            return replaced
        if isinstance(node, exp.Func):
            rw.check_function(node)
            name = _func_name(node)
            if name in MACROS:
                rw.catalogue = True
            if name in _RENAMED and isinstance(node, exp.Anonymous):
                node.set("this", _RENAMED[name])
        return node

    out = _post_order(tree.copy(), transform)
    if not rw.catalogue:
        raise NotCatalogueError("no catalogue relation")
    try:
        return Rewritten(str(out.sql(dialect="duckdb")), rw.tables)
    except (sqlglot.errors.SqlglotError, RecursionError) as exc:
        raise QueryError(f"Invalid query: {str(exc).splitlines()[0][:200]}", sqlstate="42601") from exc
