"""The de-identification gate: which personal data a release's SQL lets through.

The gate parses the release SQL (DuckDB dialect) with sqlglot, qualifies every column against the
contracts of the datasets it reads, and follows each output column back to its source fields (column
lineage through CTEs, derived tables and UNIONs). Each source field carries its personal-data class
from the contract's ``x-personal`` annotation. The rules, per class:

===========  =================================================================================
direct       (names, personal ids) only inside ``count(...)`` / ``count(DISTINCT ...)`` or an
             ``IS [NOT] NULL`` test. Never raw, never in min/max/any_value/string_agg/...
sensitive    (ethnicity, health, ...) as *direct*, plus non-revealing aggregates (sum, avg,
             stddev, variance) whose cells are then subject to small-cell suppression.
quasi        must be generalized (see ``GENERALIZERS``) or aggregated (count, sum, avg, ...).
             *Coarse* quasi-identifiers (sex, admin-unit codes: ward, province) may appear raw;
             the result is then checked for groups smaller than k (``hub.publish.suppress``).
===========  =================================================================================

The generalizing functions (the whitelist): ``year``, ``quarter``, ``month``, ``date_trunc`` /
``date_part`` / ``extract`` to month, quarter, year or decade, ``strftime`` with ``%Y`` or ``%Y-%m``,
and ``hub_centroid`` (the centroid of a geometry, a function of the query engine,
``hub.warehouse.engine.duck``). Functions that read files, settings or the environment are refused by
the hub's one SQL policy (``hub.warehouse.engine.policy``), as at every other SQL door.
Revealing aggregates (min, max, first, last, any_value, arg_min/arg_max, median, quantile, mode,
list, array_agg, string_agg) protect nothing: they return a value of one person.

A failure is a ``PublishError`` naming the output column and its source column (``dataset.field``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

from hub.errors import AccessDeniedError, PublishError, QueryError
from hub.warehouse.engine import policy

Personal = Literal["direct", "quasi", "sensitive"] | None
Kind = Literal["date", "geometry", "coarse", "other"]
Treatment = Literal["counted", "null-test", "generalized", "aggregated", "raw"]


@dataclass(frozen=True)
class SourceField:
    """What the gate knows about one field of a warehouse dataset."""

    personal: Personal = None
    kind: Kind = "other"
    sql_type: str = "VARCHAR"


Catalog = dict[str, dict[str, SourceField]]
"""dataset key (``civil_status.births``) -> field name -> SourceField."""


@dataclass
class Lineage:
    source: str  # dataset.field
    personal: Personal
    kind: Kind
    treatment: Treatment
    revealed: bool = False


@dataclass
class OutputColumn:
    name: str
    lineage: list[Lineage] = field(default_factory=list)

    @property
    def quasi(self) -> bool:
        """Does this column carry (possibly generalized) quasi-identifying values?"""
        return any(
            lin.personal in ("quasi", "sensitive") and lin.treatment in ("raw", "generalized")
            for lin in self.lineage
        )


@dataclass
class GateReport:
    sql: str
    columns: list[OutputColumn]
    datasets: list[str]
    aggregated: bool
    tree: exp.Query
    """The qualified tree the gate approved: what the release build runs (``hub.sql.door``)."""

    @property
    def quasi_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.quasi]


COUNTING = (exp.Count,)
REVEALING = (
    exp.Min, exp.Max, exp.ArgMin, exp.ArgMax, exp.AnyValue, exp.First, exp.Last, exp.Median,
    exp.Quantile, exp.ApproxQuantile, exp.PercentileCont, exp.PercentileDisc, exp.ArrayAgg,
    exp.GroupConcat, exp.Mode,
)  # fmt: skip
SAFE_AGGREGATES = (exp.Sum, exp.Avg, exp.Stddev, exp.StddevPop, exp.StddevSamp, exp.Variance, exp.VariancePop)
COARSE_UNITS = {"MONTH", "QUARTER", "YEAR", "DECADE", "CENTURY"}
COARSE_FORMATS = {"%Y", "%Y-%m", "%m/%Y", "%Y%m"}
CENTROID_FUNCTIONS = {"hub_centroid", "st_centroid"}
REVEALING_NAMES = {"list", "string_agg", "mode", "arbitrary", "first", "last", "histogram", "list_agg"}


def _generalizes(node: exp.Expression) -> bool:
    if isinstance(node, exp.Year | exp.Quarter | exp.Month):
        return True
    if isinstance(node, exp.TimestampTrunc | exp.DateTrunc | exp.Extract):
        unit = node.args.get("unit") if not isinstance(node, exp.Extract) else node.this
        return unit is not None and unit.name.upper() in COARSE_UNITS
    if isinstance(node, exp.TimeToStr):
        fmt = node.args.get("format")
        return isinstance(fmt, exp.Literal) and fmt.this in COARSE_FORMATS
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name in CENTROID_FUNCTIONS:
            return True
        if name in ("date_part", "datepart") and node.expressions:
            first = node.expressions[0]
            return isinstance(first, exp.Literal) and first.this.upper() in COARSE_UNITS
    return False


def _is_null_test(column: exp.Column) -> bool:
    parent = column.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    return isinstance(parent, exp.Is) and isinstance(parent.expression, exp.Null)


def _treatment(column: exp.Column, root: exp.Expression) -> tuple[Treatment, bool]:
    """How the path from ``column`` up to ``root`` treats the value; and whether it reveals."""
    if _is_null_test(column):
        return "null-test", False
    counted = generalized = aggregated = revealed = False
    node: Any = column
    child: Any = column
    while node is not None and node is not root.parent:
        if isinstance(node, COUNTING):
            counted = True
        elif isinstance(node, REVEALING) or (
            isinstance(node, exp.Anonymous) and node.name.lower() in REVEALING_NAMES
        ):
            revealed = True
        elif isinstance(node, exp.Window) and child is not node.this:
            # a column in PARTITION BY / ORDER BY: counted by a count window, otherwise raw
            counted = counted or isinstance(node.this, exp.Count)
        elif _generalizes(node):
            generalized = True
        elif isinstance(node, SAFE_AGGREGATES):
            aggregated = True
        child = node
        node = node.parent
    if counted:
        return "counted", revealed
    if generalized:
        return "generalized", revealed
    if aggregated:
        return "aggregated", revealed
    return "raw", revealed


def _selects(scope: Scope) -> list[Any]:
    expression: Any = scope.expression
    return list(expression.selects)


def _projection(scope_expr: Any, name: str) -> Any:
    for sel in scope_expr.selects if isinstance(scope_expr, exp.Select) else []:
        if sel.alias_or_name == name:
            return sel
    return None


class _Tracer:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.datasets: set[str] = set()
        self.revealed = False

    def trace(self, scope: Scope, projection: exp.Expression, outer: list[Treatment]) -> list[Lineage]:
        if projection.find(exp.Subquery, exp.Select) is not None and projection is not scope.expression:
            raise PublishError(
                f"output column {projection.alias_or_name!r}: subqueries in the output are not allowed"
            )
        out: list[Lineage] = []
        for column in projection.find_all(exp.Column):
            treatment, revealed = _treatment(column, projection)
            source = scope.sources.get(column.table)
            chain = [*outer, treatment]
            revealed = revealed or self.revealed
            if isinstance(source, exp.Table):
                key = f"{source.db}.{source.name}"
                info = self.catalog.get(key, {}).get(column.name, SourceField())
                self.datasets.add(key)
                out.append(
                    Lineage(f"{key}.{column.name}", info.personal, info.kind, _combine(chain), revealed)
                )
            elif isinstance(source, Scope):
                saved, self.revealed = self.revealed, revealed
                out.extend(self._trace_scope(source, column.name, chain))
                self.revealed = saved
        return out

    def _trace_scope(self, scope: Scope, name: str, outer: list[Treatment]) -> list[Lineage]:
        if isinstance(scope.expression, exp.SetOperation):
            out: list[Lineage] = []
            first = _selects(_branches(scope)[0])
            index = next((i for i, sel in enumerate(first) if sel.alias_or_name == name), None)
            if index is None:
                return out
            for branch in _branches(scope):
                out.extend(self.trace(branch, _selects(branch)[index], outer))
            return out
        proj = _projection(scope.expression, name)
        return [] if proj is None else self.trace(scope, proj, outer)


def _branches(scope: Scope) -> list[Scope]:
    """The SELECT scopes of a (nested) UNION / INTERSECT / EXCEPT, left to right."""
    if not isinstance(scope.expression, exp.SetOperation):
        return [scope]
    return [b for child in scope.set_operation_scopes for b in _branches(child)]


def _combine(chain: list[Treatment]) -> Treatment:
    for t in ("counted", "null-test", "generalized", "aggregated"):
        if t in chain:
            return t  # type: ignore[return-value]
    return "raw"


def _allowed(lin: Lineage) -> bool:
    if lin.personal is None:
        return True
    if lin.personal == "direct":
        return lin.treatment in ("counted", "null-test")
    if lin.personal == "sensitive":
        return lin.treatment in ("counted", "null-test", "aggregated")
    return lin.treatment != "raw" or lin.kind == "coarse"


def _why(lin: Lineage) -> str:
    if lin.personal == "quasi":
        what = {
            "date": "a date (use year(), date_trunc('month', ...))",
            "geometry": "a geometry (use hub_centroid(...))",
        }.get(lin.kind, "an exact value")
        return f"quasi-identifier {lin.source} reaches the output as {what}; generalize or aggregate it"
    if lin.revealed and lin.treatment == "raw":
        return (
            f"{lin.personal} personal data {lin.source} reaches the output through min/max/first/... "
            "which return one person's value; only count(...) may use it"
        )
    how = "count(...)" if lin.personal == "direct" else "count(...), sum(...) or avg(...)"
    return (
        f"{lin.personal} personal data {lin.source} reaches the output {lin.treatment}; only {how} may use it"
    )


def check_sql(sql: str, catalog: Catalog) -> GateReport:
    """Run the gate over ``sql``; raise ``PublishError`` naming the output column and its source."""
    try:
        tree = policy.parse_select(sql)
    except (QueryError, AccessDeniedError) as exc:
        denied = exc.message.removeprefix("Not authorized to call function ")
        if denied != exc.message:
            raise PublishError(
                f"release SQL may not call {denied}(): it reads files, settings or the environment"
            ) from exc
        if exc.message in ("Only a SELECT statement is allowed.", "Query is not a single statement."):
            raise PublishError("a release is exactly one SELECT statement") from exc
        raise PublishError(f"release SQL: {exc.message}") from exc
    if not isinstance(tree, exp.Select | exp.SetOperation):
        raise PublishError("a release is exactly one SELECT statement")
    had_star = any(True for _ in tree.find_all(exp.Star) if not isinstance(_.parent, exp.Count))
    for func in tree.find_all(exp.Func):
        name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
        if policy.denied_function(name):
            raise PublishError(
                f"release SQL may not call {name}(): it reads files, settings or the environment"
            )
    for source in policy.table_refs(tree):
        key = f"{source.db}.{source.name}"
        if not isinstance(source.this, exp.Identifier) or not source.db or key not in catalog:
            raise PublishError(
                f"release SQL reads {source.sql(dialect='duckdb')[:80]}, which is not a warehouse dataset"
            )
    schema: dict[str, Any] = {}
    for key, fields in catalog.items():
        ns, name = key.split(".", 1)
        schema.setdefault(ns, {})[name] = {field: f.sql_type for field, f in fields.items()}
    try:
        qualified = qualify(tree, schema=schema, dialect="duckdb", validate_qualify_columns=True)
    except OptimizeError as exc:
        raise PublishError(f"release SQL refers to unknown data: {exc}") from exc
    root = build_scope(qualified)
    assert root is not None
    tracer = _Tracer(catalog)
    columns: list[OutputColumn] = []
    scopes = _branches(root)
    for i, proj in enumerate(_selects(scopes[0])):
        col = OutputColumn(proj.alias_or_name)
        for scope in scopes:
            col.lineage.extend(tracer.trace(scope, _selects(scope)[i], []))
        for lin in col.lineage:
            if not _allowed(lin):
                star = " (SELECT * copies every column, name the columns instead)" if had_star else ""
                raise PublishError(
                    f"output column {col.name!r}: {_why(lin)}{star}", column=col.name, source=lin.source
                )
        columns.append(col)
    aggregated = any(
        s.expression.args.get("group") is not None
        or any(p.find(exp.AggFunc) is not None and p.find(exp.Window) is None for p in _selects(s))
        for s in scopes
    )
    return GateReport(
        sql=qualified.sql("duckdb"),
        columns=columns,
        datasets=sorted(tracer.datasets),
        aggregated=aggregated,
        tree=qualified,
    )
