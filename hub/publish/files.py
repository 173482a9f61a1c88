"""The files of a release version: CSV (UTF-8), Parquet, JSON, GeoJSON, ``datapackage.json`` and a
data dictionary in Vietnamese and English, each with its size and SHA-256.

Layout: ``{data_dir}/releases/<dataset key>/<release id>/<version>/``::

    data.csv  data.parquet  data.json  [data.geojson]  datapackage.json  README.md  SHA256SUMS

The Frictionless Table Schema of ``data.csv`` comes from the contract: an output column that is a
contract field passed through keeps the field's type, Vietnamese and English labels and description;
a derived column (``count(*)``, ``date_trunc(...)``) gets a title and description from its lineage
(``hub.publish.columns``). Whole numbers are integers in every file (``normalize_types``).

Two steps: ``release_content`` prepares the rows and their description in memory and computes their
fingerprint (``ReleaseContent.sha256``) without writing anything; ``write_release_files`` writes the
files of a new version. A build whose fingerprint equals the latest version's stops between the two.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hub.errors import PublishError
from hub.publish.columns import FieldDoc, describe_fields
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
    if isinstance(v, decimal.Decimal):  # a whole number stays one (beyond 64 bits), the rest a float
        exponent = v.as_tuple().exponent
        return int(v) if isinstance(exponent, int) and exponent >= 0 else float(v)
    return v


def normalize_types(table: pa.Table) -> pa.Table:
    """Whole numbers as integers: DuckDB's ``sum`` of integers is a 128-bit integer, which Arrow holds
    as ``decimal128(38, 0)``; a decimal column of scale 0 becomes ``int64`` when its values fit, so
    that every format (CSV, Parquet, JSON, GeoJSON, the Table Schema) says ``125``, not ``125.0``."""
    out = table
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type) and f.type.scale == 0:
            try:
                out = out.set_column(
                    i, pa.field(f.name, pa.int64(), f.nullable), pc.cast(out.column(i), pa.int64())
                )
            except pa.ArrowInvalid:  # beyond 64 bits: stays a decimal, written as a whole number
                continue
    return out


@dataclass(frozen=True)
class ReleaseMeta:
    """What a version's files say about it besides its rows (part of the content fingerprint)."""

    name: str
    title: dict[str, str | None]
    license_id: str
    k: int
    geometry: str | None = None


@dataclass(frozen=True)
class ReleaseContent:
    """A release's rows and description, ready to write; ``sha256`` is its fingerprint.

    The fingerprint is the SHA-256 of the column names and Arrow types, of ``data.csv`` as it will be
    written, of the Table Schema fields (titles and descriptions) and of ``ReleaseMeta``: equal
    fingerprints mean equal files, apart from the build time and version number they carry."""

    table: pa.Table
    csv: bytes
    fields: list[dict[str, Any]]
    meta: ReleaseMeta
    sha256: str


def release_content(
    table: pa.Table,
    meta: ReleaseMeta,
    *,
    report: GateReport | None,
    docs: dict[str, FieldDoc],
    person_count: str | None = None,
) -> ReleaseContent:
    """Normalize ``table``, serialize its CSV and describe its columns, without writing any file."""
    if meta.geometry and meta.geometry not in table.column_names:
        raise PublishError(f"geometry column {meta.geometry!r} is not an output column of the release")
    table = normalize_types(table)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    csv = sink.getvalue().to_pybytes()
    fields = describe_fields(table.schema, report, docs, person_count)
    fingerprint = {
        "schema": [[f.name, str(f.type)] for f in table.schema],
        "csv": hashlib.sha256(csv).hexdigest(),
        "fields": fields,
        "meta": [meta.name, meta.title, meta.license_id, meta.k, meta.geometry],
    }
    digest = hashlib.sha256(json.dumps(fingerprint, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    return ReleaseContent(table, csv, fields, meta, digest)


def write_release_files(
    content: ReleaseContent, folder: Path, *, extra: dict[str, Any] | None = None
) -> list[WrittenFile]:
    """Write every file of a release version into ``folder`` (created) and return them with checksums."""
    table, meta, fields = content.table, content.meta, content.fields
    folder.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, str, bool]] = []
    csv_path = folder / "data.csv"
    csv_path.write_bytes(content.csv)
    written.append(("data.csv", "csv", True))
    pq.write_table(table, folder / "data.parquet", compression="zstd")
    written.append(("data.parquet", "parquet", True))
    rows = [{k2: _json_value(v) for k2, v in r.items()} for r in table.to_pylist()]
    (folder / "data.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    written.append(("data.json", "json", True))
    if meta.geometry:
        features = [
            {"type": "Feature", "geometry": wkt_geometry(r.pop(meta.geometry)), "properties": r} for r in rows
        ]
        (folder / "data.geojson").write_text(
            json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
            encoding="utf-8",
        )
        written.append(("data.geojson", "geojson", True))
    package = {
        "profile": "data-package",
        "name": meta.name,
        "title": " / ".join(t for t in (meta.title.get("vi"), meta.title.get("en")) if t),
        "licenses": [{"name": meta.license_id}],
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "resources": [
            {
                "name": "data",
                "path": "data.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "bytes": len(content.csv),
                "hash": "sha256:" + hashlib.sha256(content.csv).hexdigest(),
                "schema": {"fields": fields, "missingValues": [""]},
            }
        ],
        "hub": {"k_anonymity": meta.k, "content_sha256": content.sha256, **(extra or {})},
    }
    (folder / "datapackage.json").write_text(
        json.dumps(package, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    written.append(("datapackage.json", "datapackage", False))
    (folder / "README.md").write_text(_dictionary(package, fields, meta.k), encoding="utf-8")
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
