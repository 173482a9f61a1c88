"""What a dataset page previews: a table of rows (paged, sortable, filterable by column), a chart of an
aggregate release, a map of data with geometry or coordinates.

The table's rows come from the DataStore (``datastore_search``, called by ``hub.api.portal_dataset``
with ``PreviewParams.datastore_data``) or from a release version's ``data.parquet`` (``release_table``).
Everything is in the page's URL (``pv`` the source, ``psort``/``pdir``, ``pcol``/``pval``, ``ppage``,
``cm``/``cd`` the chart's measure and dimension), so the server renders it all and scripts only
enhance: a chart drawn from the totals table, a map of the GeoJSON file or of the coordinates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pyarrow as pa
import pyarrow.compute as pc
from markupsafe import Markup, escape

from hub.publish.columns import table_schema_type

PAGE_ROWS = 20
MAX_PAGE = 10_000
CHART_GROUPS = 60
"""Most groups a chart shows (the totals table says how many were left out)."""
TEMPORAL_NAMES = ("year", "month", "quarter", "week", "day", "date", "nam", "thang")
LAT_NAMES = ("latitude", "lat", "vi_do")
LON_NAMES = ("longitude", "lon", "lng", "kinh_do")
NUMERIC_TYPES = {"integer", "number", "int", "int4", "int8", "numeric", "float8"}


@dataclass
class PreviewParams:
    source: str = ""
    sort: str = ""
    desc: bool = False
    column: str = ""
    value: str = ""
    page: int = 1
    measure: str = ""
    dimension: str = ""

    @classmethod
    def from_params(cls, params: Iterable[tuple[str, str]]) -> PreviewParams:
        p = cls()
        for key, value in params:
            value = value[:200]
            if key == "pv":
                p.source = value
            elif key == "psort":
                p.sort = value
            elif key == "pdir":
                p.desc = value == "desc"
            elif key == "pcol":
                p.column = value
            elif key == "pval":
                p.value = value.strip()
            elif key == "ppage":
                text = value.strip()
                p.page = min(max(1, int(text)), MAX_PAGE + 1) if text.isdecimal() and len(text) <= 9 else 1
            elif key == "cm":
                p.measure = value
            elif key == "cd":
                p.dimension = value
        return p

    def url(self, path: str, **changes: Any) -> str:
        """The dataset page's URL with these preview parameters changed (``#preview`` or ``#chart``)."""
        values = {
            "pv": self.source,
            "psort": self.sort,
            "pdir": "desc" if self.desc else "",
            "pcol": self.column,
            "pval": self.value,
            "ppage": str(self.page) if self.page > 1 else "",
            "cm": self.measure,
            "cd": self.dimension,
        }
        anchor = changes.pop("anchor", "preview")
        for key, value in changes.items():
            values[key] = "" if value is None else str(value)
        if "ppage" not in changes and any(k in changes for k in ("pv", "psort", "pdir", "pcol", "pval")):
            values["ppage"] = ""
        query = urlencode([(k, v) for k, v in values.items() if v and not (k == "ppage" and v == "1")])
        return f"{path}?{query}#{anchor}" if query else f"{path}#{anchor}"

    def sort_url(self, path: str, column: str) -> str:
        desc = not self.desc if self.sort == column else False
        return self.url(path, psort=column, pdir="desc" if desc else "")

    def datastore_data(self, resource_id: str, columns: list[str]) -> dict[str, Any]:
        """``datastore_search`` parameters of this page of the table (a GET's strings)."""
        data: dict[str, Any] = {
            "resource_id": resource_id,
            "limit": str(PAGE_ROWS),
            "offset": str((min(self.page, MAX_PAGE) - 1) * PAGE_ROWS),
            "records_format": "lists",
        }
        if self.sort in columns:
            data["sort"] = f'"{self.sort}" {"desc" if self.desc else "asc"}'
        if self.column in columns and self.value:
            import json

            data["q"] = json.dumps({self.column: self.value}, ensure_ascii=False)
        return data


@dataclass
class Table:
    """One page of rows, as the template shows it."""

    source: str
    columns: list[str]
    types: list[str]
    rows: list[list[str]]
    total: int
    page: int
    sort: str = ""
    desc: bool = False
    column: str = ""
    value: str = ""
    error: str | None = None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_ROWS))

    @property
    def html_rows(self) -> list[Markup]:
        """The rows as ``<tr>`` elements (escaped here: a template loop per cell costs more than the
        rest of the page), numbers aligned right."""
        numeric = [t in NUMERIC_TYPES for t in self.types]
        out = []
        for row in self.rows:
            cells = "".join(
                f'<td class="num">{escape(v)}</td>' if num else f"<td>{escape(v)}</td>"
                for v, num in zip(row, numeric, strict=False)
            )
            out.append(Markup(f"<tr>{cells}</tr>"))  # noqa: S704  (every value escaped above)
        return out

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_ROWS + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e15 else str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "…"


def type_name(t: pa.DataType) -> str:
    """The Table Schema type of ``t`` (as the releases' data dictionaries name it)."""
    return table_schema_type(t)


def release_table(table: pa.Table, source: str, params: PreviewParams) -> Table:
    """A page of ``table`` (a release version's data) sorted and filtered as ``params`` say."""
    columns = table.column_names
    types = [type_name(f.type) for f in table.schema]
    out = Table(source, columns, types, [], 0, min(params.page, MAX_PAGE))
    if params.column in columns and params.value:
        text = pc.cast(table.column(params.column), pa.string())
        mask = pc.fill_null(pc.match_substring(text, params.value, ignore_case=True), False)
        table = table.filter(mask)
        out.column, out.value = params.column, params.value
    if params.sort in columns:
        order = "descending" if params.desc else "ascending"
        table = table.sort_by([(params.sort, order)])  # nulls last
        out.sort, out.desc = params.sort, params.desc
    out.total = table.num_rows
    start = (out.page - 1) * PAGE_ROWS
    page = table.slice(start, PAGE_ROWS) if start < table.num_rows else table.slice(0, 0)
    out.rows = [[cell(v) for v in row.values()] for row in page.to_pylist()]
    return out


def datastore_table(result: dict[str, Any], source: str, params: PreviewParams) -> Table:
    """A page of a ``datastore_search`` result (``records_format=lists``) without its ``_id``."""
    fields = [f for f in result.get("fields", [])]
    keep = [i for i, f in enumerate(fields) if f["id"] != "_id"]
    columns = [fields[i]["id"] for i in keep]
    types = [str(fields[i].get("type", "text")) for i in keep]
    rows = [[cell(r[i]) for i in keep] for r in result.get("records", [])]
    out = Table(source, columns, types, rows, int(result.get("total") or 0), min(params.page, MAX_PAGE))
    if params.sort in columns:
        out.sort, out.desc = params.sort, params.desc
    if params.column in columns and params.value:
        out.column, out.value = params.column, params.value
    return out


# --- chart ----------------------------------------------------------------------------------------


@dataclass
class Chart:
    """Totals of a measure by a dimension: the table the page shows, and the series a script draws."""

    measures: list[str]
    dimensions: list[str]
    measure: str
    dimension: str
    groups: list[tuple[str, float]] = field(default_factory=list)
    left_out: int = 0
    line: bool = False

    @property
    def largest(self) -> float:
        return max((v for _, v in self.groups), default=0.0) or 1.0


def _temporal(name: str, t: pa.DataType) -> bool:
    return pa.types.is_date(t) or pa.types.is_timestamp(t) or name.lower() in TEMPORAL_NAMES


def chart_columns(schema: pa.Schema, person_count: str | None) -> tuple[list[str], list[str]]:
    """(measures, dimensions) of a release: numbers that are not codes or periods, and the rest."""
    measures: list[str] = []
    dimensions: list[str] = []
    for f in schema:
        name = f.name.lower()
        if pa.types.is_boolean(f.type) or name in ("suppressed", "geometry"):
            continue
        numeric = pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type)
        if numeric and not _temporal(f.name, f.type) and not name.endswith(("_code", "_id", "_number")):
            measures.append(f.name)
        elif not name.endswith(("_name", "location", "centroid", "address")):
            dimensions.append(f.name)
    if person_count in measures:
        measures.remove(person_count)
        measures.insert(0, person_count)
    return measures, dimensions


def chart(table: pa.Table, person_count: str | None, params: PreviewParams) -> Chart | None:
    """The chart of an aggregate release (a measure and a dimension to pick), or None."""
    measures, dimensions = chart_columns(table.schema, person_count)
    if not measures or not dimensions:
        return None
    measure = params.measure if params.measure in measures else measures[0]
    preferred = [d for d in dimensions if _temporal(d, table.schema.field(d).type)] or dimensions
    dimension = params.dimension if params.dimension in dimensions else preferred[0]
    grouped = table.group_by(dimension).aggregate([(measure, "sum")])
    grouped = grouped.sort_by([(dimension, "ascending")])
    keys = grouped.column(dimension).to_pylist()
    sums = grouped.column(f"{measure}_sum").to_pylist()
    pairs = [(cell(k) if k is not None else "—", float(v or 0)) for k, v in zip(keys, sums, strict=True)]
    out = Chart(
        measures,
        dimensions,
        measure,
        dimension,
        line=_temporal(dimension, table.schema.field(dimension).type),
    )
    out.groups = pairs[:CHART_GROUPS]
    out.left_out = max(0, len(pairs) - CHART_GROUPS)
    return out


def coordinates(columns: list[str]) -> tuple[str, str] | None:
    """The latitude and longitude columns of a table, when it has both."""
    lower = {c.lower(): c for c in columns}
    lat = next((lower[n] for n in LAT_NAMES if n in lower), None)
    lon = next((lower[n] for n in LON_NAMES if n in lower), None)
    return (lat, lon) if lat and lon else None


def temporal_coverage(table: pa.Table) -> tuple[str, str] | None:
    """(first, last) date of the first date column of a release, or of a ``year`` column."""
    for f in table.schema:
        if pa.types.is_date(f.type) or pa.types.is_timestamp(f.type):
            bounds = pc.min_max(table.column(f.name)).as_py()
            if bounds["min"] is not None:
                return _day(bounds["min"]), _day(bounds["max"])
    for f in table.schema:
        if f.name.lower() in ("year", "nam") and pa.types.is_integer(f.type):
            bounds = pc.min_max(table.column(f.name)).as_py()
            if bounds["min"] is not None:
                return str(bounds["min"]), str(bounds["max"])
    return None


def _day(value: dt.date | dt.datetime) -> str:
    return (value.date() if isinstance(value, dt.datetime) else value).isoformat()
