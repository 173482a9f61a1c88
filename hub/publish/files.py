"""The files of a release version: CSV (UTF-8), Parquet, JSON, GeoJSON, ``datapackage.json`` and a
data dictionary in Vietnamese and English, each with its size and SHA-256.

Layout: ``{data_dir}/releases/<dataset key>/<release id>/<version>/``::

    data.csv  data.parquet  data.json  [data.geojson]  datapackage.json  README.md  SHA256SUMS

The Frictionless Table Schema of ``data.csv`` comes from the contract: an output column that is a
contract field passed through keeps the field's type, Vietnamese and English labels and description;
a derived column (``count(*)``, ``date_trunc(...)``) is described by its lineage.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hub.errors import PublishError
from hub.publish.gate import GateReport

MEDIA_TYPES = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
    "geojson": "application/geo+json",
    "datapackage": "application/json",
    "md": "text/markdown",
    "sha256": "text/plain",
}


@dataclass(frozen=True)
class FieldDoc:
    """What the data dictionary says about one contract field."""

    label_vi: str | None = None
    label_en: str | None = None
    description: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class WrittenFile:
    name: str
    format: str
    media_type: str
    path: Path
    size: int
    sha256: str
    is_data: bool


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _table_schema_type(t: pa.DataType) -> tuple[str, str | None]:
    if pa.types.is_boolean(t):
        return "boolean", None
    if pa.types.is_integer(t):
        return "integer", None
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number", None
    if pa.types.is_date(t):
        return "date", None
    if pa.types.is_timestamp(t):
        return "datetime", None
    return "string", None


_POINT = re.compile(r"^\s*POINT\s*\(\s*(\S+)\s+(\S+)\s*\)\s*$", re.IGNORECASE)
_PAIR = re.compile(r"(-?[\d.eE+-]+)\s+(-?[\d.eE+-]+)")


def wkt_geometry(wkt: str | None) -> dict[str, Any] | None:
    """GeoJSON of a WKT POINT or POLYGON (the kinds the warehouse holds)."""
    if not wkt:
        return None
    m = _POINT.match(wkt)
    if m:
        return {"type": "Point", "coordinates": [float(m.group(1)), float(m.group(2))]}
    if wkt.strip().upper().startswith("POLYGON"):
        rings = [
            [[float(x), float(y)] for x, y in _PAIR.findall(ring)]
            for ring in wkt.split("((", 1)[-1].split("),")
        ]
        return {"type": "Polygon", "coordinates": [r for r in rings if r]}
    return None


def _json_value(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if hasattr(v, "as_tuple"):  # Decimal
        return float(v)
    return v


def _describe(name: str, report: GateReport | None, docs: dict[str, FieldDoc]) -> dict[str, str]:
    col = next((c for c in report.columns if c.name == name), None) if report else None
    if col is None:
        if name == "suppressed":
            return {
                "title": "Ô bị ẩn / Suppressed cell",
                "description": "Đúng nếu số liệu của dòng bị ẩn để bảo vệ dữ liệu cá nhân "
                "(nhóm nhỏ hơn k). / "
                "True where the row's figures are withheld to protect personal data (group smaller than k).",
            }
        return {}
    if len(col.lineage) == 1 and col.lineage[0].treatment == "raw":
        doc = docs.get(col.lineage[0].source, FieldDoc())
        title = " / ".join(x for x in (doc.label_vi, doc.label_en) if x)
        out = {"title": title} if title else {}
        if doc.description:
            out["description"] = doc.description
        return out
    how = {"counted": "đếm / count of", "generalized": "khái quát hoá / generalized from",
           "aggregated": "tổng hợp / aggregate of", "null-test": "có giá trị hay không / presence of",
           "raw": "từ / from"}  # fmt: skip
    parts = [f"{how[lin.treatment]} {lin.source}" for lin in col.lineage]
    return {"description": "; ".join(parts) if parts else "hằng số / constant"}


def write_release_files(
    table: pa.Table,
    folder: Path,
    *,
    name: str,
    title: dict[str, str | None],
    report: GateReport | None,
    docs: dict[str, FieldDoc],
    geometry: str | None,
    license_id: str,
    k: int,
    extra: dict[str, Any] | None = None,
) -> list[WrittenFile]:
    """Write every file of a release version into ``folder`` (created) and return them with checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, str, bool]] = []
    pacsv.write_csv(table, folder / "data.csv")
    written.append(("data.csv", "csv", True))
    pq.write_table(table, folder / "data.parquet", compression="zstd")
    written.append(("data.parquet", "parquet", True))
    rows = [{k2: _json_value(v) for k2, v in r.items()} for r in table.to_pylist()]
    (folder / "data.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    written.append(("data.json", "json", True))
    if geometry:
        if geometry not in table.column_names:
            raise PublishError(f"geometry column {geometry!r} is not an output column of the release")
        features = [
            {"type": "Feature", "geometry": wkt_geometry(r.pop(geometry)), "properties": r} for r in rows
        ]
        (folder / "data.geojson").write_text(
            json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
            encoding="utf-8",
        )
        written.append(("data.geojson", "geojson", True))
    fields = []
    for f in table.schema:
        ftype, _ = _table_schema_type(f.type)
        fields.append({"name": f.name, "type": ftype, **_describe(f.name, report, docs)})
    csv_path = folder / "data.csv"
    package = {
        "profile": "data-package",
        "name": name,
        "title": " / ".join(t for t in (title.get("vi"), title.get("en")) if t),
        "licenses": [{"name": license_id}],
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "resources": [
            {
                "name": "data",
                "path": "data.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "bytes": csv_path.stat().st_size,
                "hash": "sha256:" + sha256_file(csv_path),
                "schema": {"fields": fields, "missingValues": [""]},
            }
        ],
        "hub": {"k_anonymity": k, **(extra or {})},
    }
    (folder / "datapackage.json").write_text(
        json.dumps(package, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    written.append(("datapackage.json", "datapackage", False))
    (folder / "README.md").write_text(_dictionary(package, fields, k), encoding="utf-8")
    written.append(("README.md", "md", False))
    out = [
        WrittenFile(
            n, fmt, MEDIA_TYPES[fmt], folder / n, (folder / n).stat().st_size, sha256_file(folder / n), d
        )
        for n, fmt, d in written
    ]
    sums = "".join(f"{f.sha256}  {f.name}\n" for f in out)
    (folder / "SHA256SUMS").write_text(sums, encoding="utf-8")
    p = folder / "SHA256SUMS"
    out.append(
        WrittenFile("SHA256SUMS", "sha256", MEDIA_TYPES["sha256"], p, p.stat().st_size, sha256_file(p), False)
    )
    return out


def _dictionary(package: dict[str, Any], fields: list[dict[str, Any]], k: int) -> str:
    lines = [
        f"# {package['title']}",
        "",
        "## Từ điển dữ liệu / Data dictionary",
        "",
        "| Cột / Column | Kiểu / Type | Tên / Title | Mô tả / Description |",
        "|---|---|---|---|",
    ]
    for f in fields:
        cells = [f["name"], f["type"], f.get("title", ""), f.get("description", "")]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "## Bảo vệ dữ liệu cá nhân / Personal-data protection",
        "",
        f"Dữ liệu đã được khử định danh. Các nhóm ít hơn {k} người bị ẩn (ô trống, cột `suppressed`), "
        "kèm ẩn bổ sung để không thể suy ra từ các tổng.",
        "",
        f"The data is de-identified. Groups of fewer than {k} persons are suppressed (empty cell, "
        "`suppressed` column), with complementary suppression so that they cannot be derived from totals.",
        "",
        f"Giấy phép / Licence: {package['licenses'][0]['name']}",
        "",
    ]
    return "\n".join(lines)


def validate_datapackage(path: Path) -> list[str]:
    """Errors of ``frictionless.validate`` on the package (empty when valid)."""
    import frictionless

    report = frictionless.validate(str(path))
    if report.valid:
        return []
    return [f"{e.type}: {e.message}" for task in report.tasks for e in task.errors] + [
        f"{e.type}: {e.message}" for e in report.errors
    ]
