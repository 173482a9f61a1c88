"""What a release's output columns are: the Table Schema fields of ``datapackage.json`` and the data
dictionary (``README.md``), Vietnamese first, English beside it.

A column that passes a contract field through keeps the field's labels and description. A derived
column is described by what its expression does to its sources (the gate's lineage, followed through
CTEs and derived tables to the expression that defines it):

==========================  ====================================================================
``count(*)``                "Số người / Number of persons" when it is the release's ``person_count``,
                            else "Số bản ghi / Number of records" (of the datasets the release reads)
``count(x)``                "Số bản ghi có <label> / Number of records with <label>"
``count(DISTINCT x)``       "Số giá trị khác nhau của <label> / Number of distinct values of <label>"
``sum`` ``avg`` ...         "Tổng <label> / Sum of <label>", "Trung bình ... / Average of ...", ...
``year()`` ``date_trunc``   "Năm của <label> / Year of <label>", "Tháng của ... / Month of ...", ...
``hub_centroid(x)``         "Tâm của <label> / Centroid of <label>"
``x IS [NOT] NULL``         "Có <label> / Has <label>", "Không có <label> / No <label>"
other expressions           "Tính từ <labels> / Computed from <labels>"; a literal: "Hằng số / Constant"
==========================  ====================================================================

``CAST``, ``round``, ``coalesce`` and parentheses around an expression do not change what it is.
The type is the Arrow type's Table Schema type (whole numbers are integers, see
``hub.publish.files.normalize_types``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, build_scope

from hub.publish.gate import GateReport, OutputColumn

SUPPRESSED_FIELD = {
    "title": "Ô bị ẩn / Suppressed cell",
    "description": "Đúng nếu số liệu của dòng bị ẩn để bảo vệ dữ liệu cá nhân (nhóm nhỏ hơn k). / "
    "True where the row's figures are withheld to protect personal data (group smaller than k).",
}
_WRAPPERS = (exp.Cast, exp.TryCast, exp.Paren, exp.Round, exp.Coalesce, exp.Window)
_AGGREGATES: list[tuple[type[exp.Expr] | tuple[type[exp.Expr], ...], str, str]] = [
    (exp.Sum, "Tổng {vi}", "Sum of {en}"),
    (exp.Avg, "Trung bình {vi}", "Average of {en}"),
    ((exp.Stddev, exp.StddevPop, exp.StddevSamp), "Độ lệch chuẩn của {vi}", "Standard deviation of {en}"),
    ((exp.Variance, exp.VariancePop), "Phương sai của {vi}", "Variance of {en}"),
]
_UNITS = {
    "DAY": ("Ngày", "Day"),
    "WEEK": ("Tuần", "Week"),
    "MONTH": ("Tháng", "Month"),
    "QUARTER": ("Quý", "Quarter"),
    "YEAR": ("Năm", "Year"),
    "DECADE": ("Thập niên", "Decade"),
    "CENTURY": ("Thế kỷ", "Century"),
}
_FORMATS = {"%Y": "YEAR", "%Y-%m": "MONTH", "%m/%Y": "MONTH", "%Y%m": "MONTH"}


@dataclass(frozen=True)
class FieldDoc:
    """What the data dictionary says about one contract field."""

    label_vi: str | None = None
    label_en: str | None = None
    description: str | None = None
    unit: str | None = None


def table_schema_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "datetime"
    return "string"


def describe_fields(
    schema: pa.Schema, report: GateReport | None, docs: dict[str, FieldDoc], person_count: str | None = None
) -> list[dict[str, Any]]:
    """The Table Schema fields of a release's columns: name, type, title, description."""
    columns = {c.name: c for c in report.columns} if report else {}
    definitions = _definitions(report.tree) if report else {}
    datasets = ", ".join(report.datasets) if report else ""
    out: list[dict[str, Any]] = []
    for f in schema:
        field: dict[str, Any] = {"name": f.name, "type": table_schema_type(f.type)}
        col = columns.get(f.name)
        if col is not None:
            field.update(_describe(col, definitions.get(f.name), docs, f.name == person_count, datasets))
        elif f.name == "suppressed":
            field.update(SUPPRESSED_FIELD)
        out.append(field)
    return out


def _strip(e: exp.Expr) -> exp.Expr:
    while isinstance(e, _WRAPPERS) and isinstance(e.this, exp.Expr):
        e = e.this
    return e


def _first_select(scope: Scope) -> Scope:
    while isinstance(scope.expression, exp.SetOperation) and scope.set_operation_scopes:
        scope = scope.set_operation_scopes[0]
    return scope


def _definitions(tree: exp.Expr) -> dict[str, exp.Expr]:
    """Each output column's defining expression, followed through CTEs and derived tables (the first
    branch of a UNION speaks for the others)."""
    root = build_scope(tree)
    if root is None:
        return {}
    top = _first_select(root)
    if not isinstance(top.expression, exp.Select):
        return {}
    out: dict[str, exp.Expr] = {}
    for proj in top.expression.selects:
        scope, e = top, _strip(proj.unalias())
        for _ in range(32):  # a column of a CTE or derived table: its definition there
            source = scope.sources.get(e.table) if isinstance(e, exp.Column) else None
            if not isinstance(source, Scope):
                break
            inner = _first_select(source)
            found = next(
                (p for p in getattr(inner.expression, "selects", []) if p.alias_or_name == e.name), None
            )
            if found is None:
                break
            scope, e = inner, _strip(found.unalias())
        out[proj.alias_or_name] = e
    return out


def _lower(label: str) -> str:
    """``label`` to follow a word ("Ngày đăng ký" -> "ngày đăng ký"); acronyms keep their case."""
    if len(label) > 1 and label[0].isupper() and not label[1].isupper():
        return label[0].lower() + label[1:]
    return label


def _labels(col: OutputColumn, docs: dict[str, FieldDoc]) -> tuple[str, str, str, str | None]:
    """Vietnamese and English labels of a column's sources, the sources, and their common unit."""
    sources = list(dict.fromkeys(lin.source for lin in col.lineage))
    vi: list[str] = []
    en: list[str] = []
    units: set[str | None] = set()
    for source in sources:
        doc = docs.get(source, FieldDoc())
        name = source.rsplit(".", 1)[-1]
        vi.append(_lower(doc.label_vi or doc.label_en or name))
        en.append(_lower(doc.label_en or doc.label_vi or name))
        units.add(doc.unit)
    unit = units.pop() if len(units) == 1 else None
    return ", ".join(dict.fromkeys(vi)), ", ".join(dict.fromkeys(en)), ", ".join(sources), unit


def _unit_of(e: exp.Expr) -> str | None:
    """The time unit a generalizing function keeps (YEAR, MONTH, ...), "CENTROID", or None."""
    if isinstance(e, exp.Year):
        return "YEAR"
    if isinstance(e, exp.Quarter):
        return "QUARTER"
    if isinstance(e, exp.Month):
        return "MONTH"
    if isinstance(e, exp.TimestampTrunc | exp.DateTrunc):
        unit = e.args.get("unit")
        return unit.name.upper() if unit is not None else None
    if isinstance(e, exp.Extract):
        return e.this.name.upper() if isinstance(e.this, exp.Expr) else None
    if isinstance(e, exp.TimeToStr):
        fmt = e.args.get("format")
        return _FORMATS.get(fmt.this) if isinstance(fmt, exp.Literal) else None
    if isinstance(e, exp.Anonymous):
        name = e.name.lower()
        if name in ("hub_centroid", "st_centroid"):
            return "CENTROID"
        if name in ("date_part", "datepart") and e.expressions and isinstance(e.expressions[0], exp.Literal):
            return str(e.expressions[0].this).upper()
    return None


def _both(vi: str, en: str, *, title: str | None = None, note: str = "") -> dict[str, str]:
    out = {"title": title} if title else {}
    out["description"] = f"{vi} / {en}{note}"
    return out


def _describe(
    col: OutputColumn, e: exp.Expr | None, docs: dict[str, FieldDoc], persons: bool, datasets: str
) -> dict[str, str]:
    vi, en, sources, unit = _labels(col, docs)
    unit_note = f"; đơn vị / unit: {unit}" if unit else ""
    if isinstance(e, exp.Count):
        arg = e.this
        if persons:
            what = f"đếm bản ghi của {datasets}" if arg is None or isinstance(arg, exp.Star) else f"đếm {vi}"
            what_en = (
                f"count of {datasets} records"
                if arg is None or isinstance(arg, exp.Star)
                else f"count of {en}"
            )
            return _both(
                f"Số người trong nhóm ({what}); ô trống: bị ẩn",
                f"Number of persons in the group ({what_en}); empty: suppressed",
                title="Số người / Number of persons",
            )
        if arg is None or isinstance(arg, exp.Star):
            return _both(
                f"Số bản ghi của {datasets} trong nhóm",
                f"Number of {datasets} records in the group",
                title="Số bản ghi / Number of records",
            )
        if isinstance(arg, exp.Distinct):
            return _both(
                f"Số giá trị khác nhau của {vi} ({sources})",
                f"Number of distinct values of {en} ({sources})",
                title=f"Số giá trị khác nhau của {vi} / Number of distinct values of {en}",
            )
        return _both(
            f"Số bản ghi có {vi} ({sources})",
            f"Number of records with {en} ({sources})",
            title=f"Số bản ghi có {vi} / Number of records with {en}",
        )
    for kinds, title_vi, title_en in _AGGREGATES:
        if isinstance(e, kinds):
            t_vi, t_en = title_vi.format(vi=vi), title_en.format(en=en)
            return _both(
                f"{t_vi} của các bản ghi trong nhóm ({sources})",
                f"{t_en} over the records of the group ({sources})",
                title=f"{t_vi} / {t_en}",
                note=unit_note,
            )
    unit_of = _unit_of(e) if e is not None else None
    if unit_of == "CENTROID":
        return _both(
            f"Điểm tâm (WKT) của {vi} ({sources})",
            f"Centroid point (WKT) of {en} ({sources})",
            title=f"Tâm của {vi} / Centroid of {en}",
        )
    if unit_of in _UNITS:
        u_vi, u_en = _UNITS[unit_of]
        return _both(
            f"{u_vi} của {vi}, khái quát hoá từ {sources}",
            f"{u_en} of {en}, generalized from {sources}",
            title=f"{u_vi} của {vi} / {u_en} of {en}",
        )
    if isinstance(e, exp.Is | exp.Not) and col.lineage:
        missing = isinstance(e, exp.Is)
        return _both(
            f"{'Đúng nếu không có' if missing else 'Đúng nếu có'} {vi} ({sources})",
            f"True where {en} is {'missing' if missing else 'present'} ({sources})",
            title=f"Không có {vi} / No {en}" if missing else f"Có {vi} / Has {en}",
        )
    if not col.lineage:
        return _both("Giá trị cố định", "A fixed value", title="Hằng số / Constant")
    if isinstance(e, exp.Column) and all(lin.treatment == "raw" for lin in col.lineage) and "," not in vi:
        doc = docs.get(col.lineage[0].source, FieldDoc())  # a field passed through (by every UNION branch)
        title = " / ".join(x for x in (doc.label_vi, doc.label_en) if x)
        out = {"title": title} if title else {}
        if doc.description:
            out["description"] = doc.description
        return out
    return _both(
        f"Tính từ {vi} ({sources})",
        f"Computed from {en} ({sources})",
        title=f"Tính từ {vi} / Computed from {en}",
    )
