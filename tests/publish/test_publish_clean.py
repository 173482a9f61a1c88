# ruff: noqa: E501  (SQL and fixture rows read best on one line)
"""Clean releases (issue 11, point 5): no new version for unchanged data, no version for an empty
release, derived columns described by their lineage, integers that stay integers in every format,
``?bom=1`` on release CSVs, and descriptions that open in the browser."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hub.contracts import load_contract
from hub.db import session_scope
from hub.publish.build import build_release, get_release
from hub.publish.freshness import after_ingest, is_stale, rebuild_due
from hub.publish.models import BUILT, EMPTY, UNCHANGED
from hub.runtime import Hub
from hub.settings import Settings, get_settings
from hub.warehouse.tables import Warehouse
from tests.publish.conftest import _write
from tests.publish.test_publish_api import _client_token, _live_settings

BIRTHS, BY_MONTH = "civil_status.births", "births-by-ward-month"
PARCELS, NO_OWNER = "land.parcels", "parcels-without-owner"


def _replace(settings: Settings, key: str, contract_ref: str, rows: list[dict[str, Any]]) -> None:
    """A new snapshot of ``key`` holding exactly ``rows`` (an ingest in full-refresh mode)."""
    schema = load_contract(contract_ref, settings.schemas_dir).arrow_schema
    Warehouse(settings).ensure_table(key, schema).overwrite(pa.Table.from_pylist(rows, schema=schema))


def _set_release(settings: Settings, dataset: str, name: str, **changes: Any) -> None:
    with session_scope(settings) as session:
        _, rel = get_release(session, dataset, name)
        rel.spec = {**rel.spec, **changes}


def _release_folders(settings: Settings, dataset: str, name: str) -> list[str]:
    folder = settings.data_dir / "releases" / dataset / name
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- unchanged data ----------------------------------------------------------------------------------


def test_a_rebuild_of_unchanged_data_makes_no_version_and_records_the_check(
    publish_hub: Hub, publish_settings: Settings, births_rows: list[dict[str, Any]]
) -> None:
    first = build_release(publish_hub, BIRTHS, BY_MONTH)
    assert first.outcome == BUILT
    assert first.current is not None
    assert first.current.version == 1
    again = build_release(publish_hub, BIRTHS, BY_MONTH)
    assert again.outcome == UNCHANGED
    assert again.current is not None
    assert again.current.version == 1
    assert again.message.startswith("unchanged, checked at ")
    assert again.message.endswith("; version 1 stays current")
    assert _release_folders(publish_settings, BIRTHS, BY_MONTH) == ["1"]  # no file written
    with session_scope(publish_settings) as session:
        _, rel = get_release(session, BIRTHS, BY_MONTH)
        assert len(rel.versions) == 1
        assert rel.last_outcome == UNCHANGED
        assert rel.last_built == first.checked_at
        assert rel.last_checked == again.checked_at >= first.checked_at
        assert rel.versions[0].content_sha256 == first.current.content_sha256

    # an ingest that brings the same rows again (a new snapshot) is checked, not published again
    _replace(publish_settings, BIRTHS, "civil_status/births.v1", births_rows)
    [(_, _, outcome)] = after_ingest(publish_settings, BIRTHS)
    assert outcome.startswith("unchanged, checked at "), outcome
    # other rows: a new version
    _replace(publish_settings, BIRTHS, "civil_status/births.v1", births_rows[:300])
    [(_, _, outcome)] = after_ingest(publish_settings, BIRTHS)
    assert outcome.startswith("version 2, built at "), outcome
    assert _release_folders(publish_settings, BIRTHS, BY_MONTH) == ["1", "2"]


def test_a_release_checked_unchanged_is_fresh_and_not_rebuilt_again_by_the_schedule(
    publish_hub: Hub, publish_settings: Settings
) -> None:
    import datetime as dt

    build_release(publish_hub, BIRTHS, BY_MONTH)
    build_release(publish_hub, PARCELS, NO_OWNER)
    with session_scope(publish_settings) as session:  # both were last built 40 days ago
        for dataset, name in ((BIRTHS, BY_MONTH), (PARCELS, NO_OWNER)):
            _, rel = get_release(session, dataset, name)
            rel.last_built = rel.last_checked = rel.last_built - dt.timedelta(days=40)  # type: ignore[operator]
    outcomes = {r: o for _, r, o in rebuild_due(publish_settings)}
    assert outcomes[BY_MONTH].startswith("unchanged, checked at "), outcomes
    assert outcomes[NO_OWNER].startswith("unchanged, checked at "), outcomes
    with session_scope(publish_settings) as session:
        _, rel = get_release(session, BIRTHS, BY_MONTH)
        assert not is_stale(rel)  # checked today: fresh for another month
        assert len(rel.versions) == 1
    assert rebuild_due(publish_settings) == []  # not rebuilt on every round of the schedule


def test_an_unordered_release_gives_the_same_files_whatever_order_the_engine_returns(
    publish_hub: Hub, publish_settings: Settings
) -> None:
    # no ORDER BY: the groups come back in the order of the engine's threads
    sql = "SELECT ward_code, child_sex, year(registration_date) AS year, count(*) AS births FROM civil_status.births GROUP BY ALL"
    _set_release(publish_settings, BIRTHS, BY_MONTH, sql=sql)
    assert build_release(publish_hub, BIRTHS, BY_MONTH).outcome == BUILT
    assert [build_release(publish_hub, BIRTHS, BY_MONTH).outcome for _ in range(3)] == [UNCHANGED] * 3


# -- empty releases ----------------------------------------------------------------------------------


def test_a_release_without_rows_is_not_published_and_the_ingest_hook_says_why(
    publish_hub: Hub, publish_settings: Settings, parcels_rows: list[dict[str, Any]]
) -> None:
    owned = [r for r in parcels_rows if r["owner_name"] is not None]
    _replace(publish_settings, PARCELS, "land/parcels.v1", owned)  # every parcel has an owner now
    result = build_release(publish_hub, PARCELS, NO_OWNER)
    assert result.outcome == EMPTY
    assert result.current is None
    assert result.message.startswith("not published: the release has no rows, checked at ")
    assert _release_folders(publish_settings, PARCELS, NO_OWNER) == []
    outcomes = {r: o for _, r, o in after_ingest(publish_settings, PARCELS)}  # no exception
    assert outcomes[NO_OWNER].startswith("not published: the release has no rows"), outcomes
    with session_scope(publish_settings) as session:
        _, rel = get_release(session, PARCELS, NO_OWNER)
        assert rel.versions == []
        assert rel.last_outcome == EMPTY
        assert rel.last_error is None
        assert not is_stale(rel)  # checked: not rebuilt again by the schedule
    assert NO_OWNER not in {r for _, r, _ in rebuild_due(publish_settings)}
    # parcels without an owner again: published
    _replace(publish_settings, PARCELS, "land/parcels.v1", parcels_rows)
    outcomes = {r: o for _, r, o in after_ingest(publish_settings, PARCELS)}
    assert outcomes[NO_OWNER].startswith("version 1, built at "), outcomes


# -- derived columns ---------------------------------------------------------------------------------


def _build_files(hub: Hub, dataset: str, name: str) -> Path:
    """Build a release; the folder of its newest version."""
    build_release(hub, dataset, name)
    versions = _release_folders(hub.settings, dataset, name)
    assert versions
    return hub.settings.data_dir / "releases" / dataset / name / max(versions, key=int)


def _fields(folder: Path) -> dict[str, dict[str, Any]]:
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    return {f["name"]: f for f in package["resources"][0]["schema"]["fields"]}


def test_a_count_of_persons_and_a_generalized_date_are_described_by_their_lineage(
    publish_hub: Hub, publish_settings: Settings
) -> None:
    folder = _build_files(publish_hub, BIRTHS, BY_MONTH)
    fields = _fields(folder)
    births = fields["births"]
    assert births["type"] == "integer"
    assert births["title"] == "Số người / Number of persons"
    assert "hằng số" not in births["description"].lower()
    assert "constant" not in births["description"].lower()
    assert "civil_status.births" in births["description"]
    month = fields["month"]
    assert month["title"] == "Tháng của ngày đăng ký / Month of registration date"
    assert "civil_status.births.registration_date" in month["description"]
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "| births | integer | Số người / Number of persons |" in readme
    assert "Hằng số" not in readme


def test_counts_of_records_sums_and_years_are_described_by_their_lineage(
    publish_hub: Hub, publish_settings: Settings
) -> None:
    sql = (
        "WITH p AS (SELECT ward_code, land_use_code, area_m2, map_sheet FROM land.parcels) "
        "SELECT ward_code, land_use_code, count(*) AS parcels, round(sum(area_m2), 1) AS area_m2, "
        "avg(map_sheet) AS mean_sheet, count(DISTINCT map_sheet) AS sheets, 'VN' AS country "
        "FROM p GROUP BY ALL ORDER BY ALL"
    )
    _set_release(publish_settings, PARCELS, NO_OWNER, sql=sql, geometry=None)
    fields = _fields(_build_files(publish_hub, PARCELS, NO_OWNER))
    # no person_count: a count is a number of records, not of persons
    assert fields["parcels"]["title"] == "Số bản ghi / Number of records"
    assert fields["parcels"]["type"] == "integer"
    assert "land.parcels" in fields["parcels"]["description"]
    assert fields["area_m2"]["title"] == "Tổng diện tích / Sum of area"
    assert fields["area_m2"]["type"] == "number"
    assert "land.parcels.area_m2" in fields["area_m2"]["description"]
    assert "m2" in fields["area_m2"]["description"]  # the contract's unit
    assert fields["mean_sheet"]["title"] == "Trung bình số tờ bản đồ / Average of map sheet number"
    assert fields["sheets"]["title"] == (
        "Số giá trị khác nhau của số tờ bản đồ / Number of distinct values of map sheet number"
    )
    assert fields["sheets"]["type"] == "integer"
    assert fields["country"]["title"] == "Hằng số / Constant"  # a literal really is one
    # a field passed through keeps the contract's labels
    assert fields["land_use_code"]["title"] == "Mục đích sử dụng đất (mã loại đất) / Land-use code"


def test_a_year_of_a_date_is_an_integer_titled_year_of_its_label(
    publish_hub: Hub, publish_settings: Settings
) -> None:
    sql = "SELECT year(registration_date) AS year, child_sex, count(*) AS births FROM civil_status.births GROUP BY ALL ORDER BY ALL"
    _set_release(publish_settings, BIRTHS, BY_MONTH, sql=sql)
    year = _fields(_build_files(publish_hub, BIRTHS, BY_MONTH))["year"]
    assert year["title"] == "Năm của ngày đăng ký / Year of registration date"
    assert year["type"] == "integer"


# -- integers ----------------------------------------------------------------------------------------


def test_integers_stay_integers_in_csv_json_geojson_and_parquet(
    publish_hub: Hub, publish_settings: Settings, parcels_rows: list[dict[str, Any]]
) -> None:
    # a sum of integers (DuckDB: a 128-bit integer) with a geometry, as schools-with-enrolment has
    sql = (
        "SELECT ward_code, sum(parcel_number) AS parcel_total, count(*) AS parcels, "
        "'POINT(105.7 10.0)' AS location FROM land.parcels GROUP BY ALL ORDER BY ALL"
    )
    _set_release(publish_settings, PARCELS, NO_OWNER, sql=sql, geometry="location")
    folder = _build_files(publish_hub, PARCELS, NO_OWNER)
    truth: dict[str, int] = {}
    for r in parcels_rows:
        truth[r["ward_code"]] = truth.get(r["ward_code"], 0) + r["parcel_number"]

    table = pq.read_table(folder / "data.parquet")
    assert table.schema.field("parcel_total").type == pa.int64()
    assert dict(zip(table["ward_code"].to_pylist(), table["parcel_total"].to_pylist(), strict=True)) == truth
    rows = list(csv.DictReader(io.StringIO((folder / "data.csv").read_text(encoding="utf-8"))))
    assert {r["ward_code"]: r["parcel_total"] for r in rows} == {w: str(n) for w, n in truth.items()}
    data = json.loads((folder / "data.json").read_text(encoding="utf-8"))
    assert all(type(r["parcel_total"]) is int and type(r["parcels"]) is int for r in data)
    geo = json.loads((folder / "data.geojson").read_text(encoding="utf-8"))
    props = [f["properties"] for f in geo["features"]]
    assert all(type(p["parcel_total"]) is int and type(p["parcels"]) is int for p in props)
    fields = _fields(folder)
    assert fields["parcel_total"]["type"] == "integer"
    assert fields["parcel_total"]["title"] == "Tổng số thửa / Sum of parcel number"


# -- the public route: ?bom=1, inline descriptions, the API and the CLI ----------------------------------


@pytest.mark.integration
def test_release_files_take_bom_and_descriptions_open_in_the_browser(publish_settings: Settings) -> None:
    from hub.testing.live import live_server

    settings, port = _live_settings(publish_settings)
    writer = _client_token(settings, "so-tu-phap", "catalog:read catalog:write")
    auth = {"Authorization": f"Bearer {writer}"}
    build = f"/api/v1/releases/{BIRTHS}/{BY_MONTH}/build"
    with live_server(settings, port=port) as base, httpx.Client(timeout=30) as client:
        built = client.post(base + build, headers=auth)
        assert built.status_code == 200, built.text
        assert built.json()["last_outcome"] == "built"
        again = client.post(base + build, headers=auth).json()
        assert again["last_outcome"] == "unchanged"
        assert again["last_check"].startswith("unchanged, checked at ")
        assert again["last_checked"] >= again["last_built"]
        assert [v["version"] for v in again["versions"]] == [1]
        shown = client.get(f"{base}/api/v1/releases/{BIRTHS}/{BY_MONTH}").json()
        assert shown["last_check"] == again["last_check"]
        files = {f["name"]: f for f in again["versions"][0]["files"]}

        plain = client.get(files["data.csv"]["url"])
        assert plain.headers["content-disposition"] == 'attachment; filename="data.csv"'
        assert not plain.content.startswith(b"\xef\xbb\xbf")
        excel = client.get(files["data.csv"]["url"], params={"bom": "1"})
        assert excel.status_code == 200
        assert excel.content == b"\xef\xbb\xbf" + plain.content
        assert excel.headers["content-type"] == "text/csv; charset=utf-8"
        assert excel.headers["content-disposition"].startswith("attachment")
        assert excel.headers["etag"] != plain.headers["etag"]
        assert client.get(files["data.csv"]["url"], params={"bom": "1"},
                          headers={"If-None-Match": excel.headers["etag"]}).status_code == 304  # fmt: skip

        readme = client.get(files["README.md"]["url"])
        assert readme.headers["content-type"] == "text/markdown; charset=utf-8"
        assert readme.headers["content-disposition"].startswith("inline")
        assert "Từ điển dữ liệu" in readme.text
        package = client.get(files["datapackage.json"]["url"])
        assert package.headers["content-type"] == "application/json; charset=utf-8"
        assert package.headers["content-disposition"].startswith("inline")
        for name in ("data.json", "data.parquet"):
            assert client.get(files[name]["url"]).headers["content-disposition"].startswith("attachment")


@pytest.fixture
def cli_env(publish_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("HUB_DATA_DIR", str(publish_settings.data_dir))
    monkeypatch.setenv("HUB_CATALOG_DIR", str(publish_settings.catalog_dir))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield publish_settings
    get_settings.cache_clear()


def test_cli_build_says_unchanged_and_not_published(
    cli_env: Settings, parcels_rows: list[dict[str, Any]]
) -> None:
    from hub.cli.main import app

    runner = CliRunner()
    first = runner.invoke(app, ["releases", "build", BIRTHS, BY_MONTH])
    assert first.exit_code == 0, first.output
    assert f"{BIRTHS}/{BY_MONTH}: version 1, built at " in first.output
    second = runner.invoke(app, ["releases", "build", BIRTHS, BY_MONTH])
    assert second.exit_code == 0, second.output
    assert f"{BIRTHS}/{BY_MONTH}: unchanged, checked at " in second.output
    _replace(cli_env, PARCELS, "land/parcels.v1", [r for r in parcels_rows if r["owner_name"]])
    empty = runner.invoke(app, ["releases", "build", PARCELS, NO_OWNER])
    assert empty.exit_code == 0, empty.output
    assert f"{PARCELS}/{NO_OWNER}: not published: the release has no rows" in empty.output
    listed = runner.invoke(app, ["releases", "list"])
    assert "(unchanged)" in listed.output
    assert "(empty)" in listed.output


def test_rows_written_just_before_a_build_are_in_its_new_version(
    publish_hub: Hub, publish_settings: Settings, births_rows: list[dict[str, Any]]
) -> None:
    """The build reads the current snapshot, not the one the runtime cached a moment ago (which would
    now be taken for unchanged data)."""
    build_release(publish_hub, BIRTHS, BY_MONTH)
    _write(publish_settings, BIRTHS, "civil_status/births.v1", births_rows[:20])  # 20 more births
    folder = _build_files(publish_hub, BIRTHS, BY_MONTH)
    assert folder.name == "2"
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    assert package["hub"]["sources"][BIRTHS] == Warehouse(publish_settings).current_snapshot_id(BIRTHS)
