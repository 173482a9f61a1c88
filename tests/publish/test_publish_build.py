# ruff: noqa: E501  (SQL and fixture rows read best on one line)
"""Building releases on our own warehouse: files, checksums, datapackage (frictionless), versions,
re-identification check, freshness and the stale flag."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pyarrow.parquet as pq
import pytest

from hub.db import session_scope
from hub.errors import PublishError
from hub.publish.build import build_release, get_release
from hub.publish.files import validate_datapackage
from hub.publish.freshness import after_ingest, is_stale, rebuild_due
from hub.publish.suppress import reidentification_groups
from hub.runtime import Hub
from hub.settings import Settings
from tests.publish.conftest import _write


def test_release_files_have_checksums_and_a_valid_datapackage_from_the_contract(
    publish_hub: Hub,
    publish_settings: Settings,
) -> None:
    v = build_release(publish_hub, "civil_status.births", "births-by-ward-month").current
    assert v is not None
    folder = publish_settings.data_dir / v.path
    names = {p.name for p in folder.iterdir()}
    assert {"data.csv", "data.parquet", "data.json", "datapackage.json", "README.md", "SHA256SUMS"} <= names
    sums = dict(reversed(line.split("  ")) for line in (folder / "SHA256SUMS").read_text().splitlines())
    for name, digest in sums.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert validate_datapackage(folder / "datapackage.json") == []
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    fields = {f["name"]: f for f in package["resources"][0]["schema"]["fields"]}
    assert fields["ward_code"]["title"] == "Mã xã/phường nơi đăng ký / Ward of registration"
    assert "civil_status.births.registration_date" in fields["month"]["description"]
    assert fields["births"]["type"] == "integer"
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "Từ điển dữ liệu / Data dictionary" in readme
    assert "Groups of fewer than 5 persons are suppressed" in readme
    assert (folder / "data.csv").read_bytes().decode("utf-8").startswith('"ward_code","month"')


def test_release_rows_match_no_quasi_identifier_combination_below_k(
    publish_hub: Hub, publish_settings: Settings, births_rows: list[dict[str, Any]]
) -> None:
    v = build_release(publish_hub, "civil_status.births", "births-by-ward-month").current
    assert v is not None
    table = pq.read_table(publish_settings.data_dir / v.path / "data.parquet")
    assert v.suppressed > 0  # the two small wards have small cells
    assert reidentification_groups(table, ["ward_code", "month", "child_sex"], "births", 5) == []
    published = [r for r in table.to_pylist() if not r["suppressed"]]
    assert all(r["births"] >= 5 for r in published)
    # published cells are true counts of the source rows
    first = published[0]
    truth = sum(
        1 for b in births_rows
        if b["ward_code"] == first["ward_code"] and b["child_sex"] == first["child_sex"]
        and b["registration_date"].replace(day=1) == first["month"]
    )  # fmt: skip
    assert truth == first["births"]


def test_parcels_release_has_geojson_of_centroids(publish_hub: Hub, publish_settings: Settings) -> None:
    v = build_release(publish_hub, "land.parcels", "parcels-without-owner").current
    assert v is not None
    geo = json.loads((publish_settings.data_dir / v.path / "data.geojson").read_text(encoding="utf-8"))
    assert geo["features"]
    assert all(f["geometry"]["type"] == "Point" for f in geo["features"])
    assert "owner_name" not in geo["features"][0]["properties"]


def test_versions_accumulate_and_a_refused_release_keeps_its_error(
    publish_hub: Hub, publish_settings: Settings, births_rows: list[dict[str, Any]]
) -> None:
    build_release(publish_hub, "civil_status.births", "births-by-ward-month")
    _write(publish_settings, "civil_status.births", "civil_status/births.v1", births_rows[:10])  # new data
    v2 = build_release(publish_hub, "civil_status.births", "births-by-ward-month").current
    assert v2 is not None
    assert v2.version == 2
    assert (publish_settings.data_dir / v2.path.replace("/2", "/1") / "data.csv").exists()
    with session_scope(publish_settings) as session:
        _, rel = get_release(session, "civil_status.births", "births-by-ward-month")
        rel.spec = {**rel.spec, "sql": "SELECT ward_code, child_full_name FROM civil_status.births"}
    with pytest.raises(PublishError, match="child_full_name"):
        build_release(publish_hub, "civil_status.births", "births-by-ward-month")
    with session_scope(publish_settings) as session:
        _, rel = get_release(session, "civil_status.births", "births-by-ward-month")
        assert "child_full_name" in (rel.last_error or "")
        assert len(rel.versions) == 2


def test_row_level_release_with_unique_quasi_identifiers_is_refused(
    publish_hub: Hub, publish_settings: Settings
) -> None:
    with session_scope(publish_settings) as session:
        _, rel = get_release(session, "civil_status.births", "births-by-ward-month")
        rel.spec = {**rel.spec, "sql": "SELECT ward_code, child_sex, date_trunc('month', child_birth_date) AS m FROM civil_status.births",
                    "person_count": None}  # fmt: skip
    with pytest.raises(PublishError, match="fewer than 5 persons"):
        build_release(publish_hub, "civil_status.births", "births-by-ward-month")


def test_freshness_rebuilds_after_ingest_and_flags_stale(publish_settings: Settings) -> None:
    built = [r[2] for r in after_ingest(publish_settings, "civil_status.births")]
    assert [o.split(",")[0] for o in built] == ["version 1"]
    assert after_ingest(publish_settings, "education.schools") == []
    with session_scope(publish_settings) as session:
        _, rel = get_release(session, "civil_status.births", "births-by-ward-month")
        assert not is_stale(rel)
        assert is_stale(rel, rel.last_built + dt.timedelta(days=40))
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=40)
    outcomes = {(d, r): o.split(",")[0] for d, r, o in rebuild_due(publish_settings, later)}
    # the births are what they were: checked again, no new version
    assert outcomes[("civil_status.births", "births-by-ward-month")] == "unchanged"
    assert outcomes[("land.parcels", "parcels-without-owner")] == "version 1"  # never built: stale
    from hub.catalog.ckan_models import PackageInfo, Resource
    from hub.publish.companion import companion_of
    from hub.publish.freshness import mark_stale

    assert mark_stale(publish_settings, later + dt.timedelta(days=40)) == 2
    with session_scope(publish_settings) as session:
        births = get_release(session, "civil_status.births", "births-by-ward-month")[0]
        companion = companion_of(session, births)  # the shared dataset's releases are published there
        assert companion is not None
        assert session.get(PackageInfo, companion.id).extras["hub_releases_stale"] == "true"
        flags = {r.extras["hub_stale"] for r in session.query(Resource).filter(Resource.kind == "release")}
        assert flags == {True}
