"""The one SQL policy of the hub: what SQL written outside the hub may be, and which tables it names.

Used by every SQL door (DataStore SQL, ``/api/v1/query``, the PostgreSQL protocol, ``hub query``) and
by the release gate (``hub.publish.gate``). It is the *second* line of defence: the first is
structural (``hub.warehouse.engine.duck``): the DuckDB that runs the query reads no path at all and
sees only the tables the hub registered on the query's own cursor.

The rules, checked on the parsed tree (sqlglot, DuckDB dialect):

===================  ==============================================================================
size                 at most ``max_chars`` characters and ``max_nesting`` levels of parentheses
                     (checked before parsing, so no input can exhaust the parser's recursion)
one statement        exactly one query (SELECT, WITH ... SELECT, UNION/INTERSECT/EXCEPT, VALUES)
read-only            no INSERT/UPDATE/DELETE/CREATE/DROP/ALTER/COPY/ATTACH/INSTALL/LOAD/SET/PRAGMA/
                     EXPORT/IMPORT/CALL/DESCRIBE/SUMMARIZE/transaction statements, no SELECT INTO
functions            none of ``DENIED_FUNCTIONS`` nor a name starting with ``DENIED_PREFIXES``
                     (functions that read files, settings, secrets, the catalogue or the environment)
relations            a table reference is a plain name, ``name`` or ``schema.name`` (no catalog part,
                     no table function, no file path): a CTE in scope, or a name the door resolves
===================  ==============================================================================

CTE names are resolved by scope, as DuckDB does: a CTE is visible in the query that defines it (and
in the CTEs after it, and in itself when RECURSIVE), not elsewhere. A name that is neither a CTE in
scope nor a table the caller may read is an unknown table, whatever its spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from hub.errors import AccessDeniedError, QueryError

DENIED_FUNCTIONS = frozenset(
    {
        "current_setting", "getenv", "getvariable", "query", "query_table", "glob", "checkpoint",
        "force_checkpoint", "install", "load", "attach", "detach", "copy", "export_database",
        "import_database", "which_secret", "current_database", "current_schema", "current_schemas",
        "current_catalog", "sql_auto_complete", "json_serialize_sql", "json_deserialize_sql",
        "json_execute_serialized_sql", "enable_profiling", "disable_profiling", "version", "platform",
        "pragma", "summary", "system", "shell", "read_text", "read_blob", "read_csv", "read_json",
        "read_parquet", "sniff_csv", "repeat_row", "range_table", "get_current_time", "txid_current",
        "current_query", "duckdb_secrets", "load_extension", "set_bit",
    }
)  # fmt: skip
"""Functions that read files, settings, secrets, the catalogue or the environment."""

DENIED_PREFIXES = (
    "read_", "duckdb_", "pragma_", "parquet_", "iceberg_", "delta_", "sniff_", "sqlite_", "postgres_",
    "mysql_", "scan_", "enable_", "disable_", "test_", "pg_", "icu_", "arrow_", "json_execute",
)  # fmt: skip

FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, n)
    for n in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Copy", "Command", "Pragma",
        "Set", "Use", "Attach", "Detach", "Install", "Describe", "Transaction", "Commit", "Rollback",
        "LoadData", "Export", "Summarize", "Into", "Lock", "TruncateTable", "Cache", "Uncache", "Refresh",
        "Show", "Call", "Analyze", "Kill", "Grant", "Revoke",
    )
    if hasattr(exp, n)
)  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """How large and how deep SQL from outside may be (settings ``query_max_sql_chars`` and
    ``query_max_nesting``)."""

    max_chars: int = 100_000
    max_nesting: int = 64


def denied_function(name: str) -> bool:
    """Whether a function of this name may not be called by SQL from outside."""
    lower = name.lower()
    return lower in DENIED_FUNCTIONS or lower.startswith(DENIED_PREFIXES)


def nesting(sql: str) -> int:
    """The deepest nesting of ``(``/``[``/``{`` in ``sql``, outside quotes and comments."""
    depth = deepest = 0
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            end = sql.find(c, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == c:  # a doubled quote escapes itself
                end = sql.find(c, end + 2)
            i = n if end == -1 else end + 1
            continue
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
            continue
        if c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
            continue
        if c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def _func_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def parse_select(sql: str, limits: Limits = Limits()) -> exp.Query:
    """Parse ``sql`` as one read-only query and check it against the rules above.

    Raises ``QueryError`` naming what is wrong, ``AccessDeniedError`` naming a denied function."""
    if not sql.strip():
        raise QueryError("The query is empty.")
    if len(sql) > limits.max_chars:
        raise QueryError(
            f"The query has {len(sql):,} characters; the limit is {limits.max_chars:,} "
            "(setting HUB_QUERY_MAX_SQL_CHARS)."
        )
    depth = nesting(sql)
    if depth > limits.max_nesting:
        raise QueryError(
            f"The query nests parentheses {depth} levels deep; the limit is {limits.max_nesting} "
            "(setting HUB_QUERY_MAX_NESTING)."
        )
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"Invalid query: {str(exc).splitlines()[0]}") from exc
    except (sqlglot.errors.SqlglotError, RecursionError, ValueError) as exc:
        raise QueryError("Invalid query: it could not be parsed.") from exc
    if len(statements) != 1:
        raise QueryError("Query is not a single statement.")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise QueryError("Only a SELECT statement is allowed.")
    for node in tree.walk():
        if isinstance(node, FORBIDDEN_NODES):
            raise QueryError("Only a SELECT statement is allowed.")
        if isinstance(node, exp.Func) and denied_function(_func_name(node)):
            raise AccessDeniedError(f"Not authorized to call function {_func_name(node)}")
    return tree


def _with_of(node: exp.Expr) -> exp.With | None:
    w = node.args.get("with_") or node.args.get("with")
    return w if isinstance(w, exp.With) else None


def _children(node: exp.Expr, skip: object = None) -> Iterator[exp.Expr]:
    for value in node.args.values():
        if value is skip:
            continue
        if isinstance(value, exp.Expr):
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, exp.Expr))


def table_refs(tree: exp.Expr) -> list[exp.Table]:
    """Every relation ``tree`` reads that is not a CTE in scope, in the order written.

    A reference that is not a plain ``name`` / ``schema.name`` (a table function, a catalog part) is
    returned too: ``relation_name`` refuses it."""
    out: list[exp.Table] = []
    stack: list[tuple[exp.Expr, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        node, ctes = stack.pop()
        with_ = _with_of(node)
        inner = ctes
        if with_ is not None:
            recursive = bool(with_.args.get("recursive"))
            defs: list[tuple[exp.Expr, frozenset[str]]] = []
            for cte in with_.expressions:
                name = cte.alias_or_name.lower()
                defs.append((cte.this, inner | {name} if recursive else inner))
                inner = inner | {name}
            stack.extend(reversed(defs))
        if isinstance(node, exp.Table):
            plain = isinstance(node.this, exp.Identifier) and not node.args.get("db")
            if not (plain and not node.args.get("catalog") and node.name.lower() in ctes):
                out.append(node)
        stack.extend((child, inner) for child in reversed(list(_children(node, skip=with_))))
    return out


def relation_name(table: exp.Table) -> tuple[str | None, str]:
    """``(schema, name)`` of a plain table reference; ``AccessDeniedError`` for a table function,
    ``QueryError`` (worded as for an unknown table) for a catalog part or another time-travel form
    than ``AT (VERSION => n)`` / ``AT (TIMESTAMP => '...')``."""
    if not isinstance(table.this, exp.Identifier):
        raise AccessDeniedError("Not authorized to read this relation: only tables may be queried")
    if table.args.get("catalog") or table.args.get("version"):
        raise QueryError(f'relation "{table.sql(dialect="duckdb")[:80]}" does not exist or is not readable')
    as_of(table)  # a time-travel clause must be one the hub reads
    db = table.args.get("db")
    schema = db.name if isinstance(db, exp.Identifier) else None
    return schema, table.name


def as_of(table: exp.Table) -> str | None:
    """The snapshot a table reference asks for: ``AT (VERSION => <snapshot id>)`` gives the id,
    ``AT (TIMESTAMP => '<ISO time>')`` the time (the snapshot current then); None without a clause."""
    when = table.args.get("when")
    if when is None:
        return None
    kind = str(when.args.get("kind") or "").upper()
    value = when.args.get("expression")
    if (
        not isinstance(when, exp.HistoricalData)
        or str(when.this).upper() != "AT"
        or kind not in ("VERSION", "TIMESTAMP")
        or not isinstance(value, exp.Literal)
        or (kind == "VERSION") == value.is_string
    ):
        raise QueryError(
            f"time travel is AT (VERSION => <snapshot id>) or AT (TIMESTAMP => '<ISO time>'), not "
            f"{when.sql(dialect='duckdb')[:80]}"
        )
    return str(value.this)


def unknown(schema: str | None, name: str) -> QueryError:
    """The one error for a relation that does not exist or that the caller may not read."""
    shown = f"{schema}.{name}" if schema else name
    return QueryError(f'relation "{shown}" does not exist or is not readable')


def bind(
    tree: exp.Query, resolve: Callable[[str | None, str, str | None], str]
) -> tuple[str, dict[tuple[str | None, str, str | None], str]]:
    """Replace every relation of ``tree`` by the engine name ``resolve(schema, name, as_of)`` gives
    for it (``resolve`` raises ``unknown(...)`` for a name the caller may not read; ``as_of`` is the
    relation's time-travel clause, see ``as_of``); return the SQL text of the tree the policy
    approved, and the names bound.

    The tree is copied: the caller's tree is not changed. An alias keeps column references working
    (``births.ward_code`` still names the table as written), and a column qualified with the schema
    too (``civil_status.births.ward_code``, as SQLAlchemy and pandas write) loses the schema part."""
    tree = tree.copy()
    bound: dict[tuple[str | None, str, str | None], str] = {}
    unaliased: set[tuple[str, str]] = set()
    for table in table_refs(tree):
        schema, name = relation_name(table)
        when = as_of(table)
        key = (schema.lower() if schema else None, name.lower(), when)
        if key not in bound:
            bound[key] = resolve(schema, name, when)
        if schema and not table.alias:
            unaliased.add((schema.lower(), name.lower()))
        alias = table.alias or name
        table.replace(
            exp.Table(
                this=exp.to_identifier(bound[key], quoted=True),
                alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
            )
        )
    for column in tree.find_all(exp.Column):
        db = column.args.get("db")
        if db is not None and (db.name.lower(), column.table.lower()) in unaliased:
            column.set("db", None)
    try:
        text = tree.sql(dialect="duckdb")
    except RecursionError as exc:  # pragma: no cover - the nesting limit comes first
        raise QueryError("The query is nested too deeply.") from exc
    return text, bound


def referenced(tree: exp.Query) -> list[tuple[str | None, str]]:
    """The distinct ``(schema, name)`` relations ``tree`` reads (not CTEs), in the order written."""
    seen: dict[tuple[str | None, str], None] = {}
    for table in table_refs(tree):
        seen.setdefault(relation_name(table), None)
    return list(seen)
