# ruff: noqa: E501  (SQL and fixture rows read best on one line)
"""The de-identification gate: what may reach an open release, with messages naming column and source."""

from __future__ import annotations

import pytest

from hub.errors import CatalogError, PublishError
from hub.publish.build import check_release
from hub.publish.gate import SourceField, check_sql
from hub.publish.spec import parse_releases

F = SourceField
BIRTHS = {
    "registration_number": F(), "registration_date": F(kind="date"), "ward_code": F("quasi", "coarse"),
    "child_personal_id": F("direct"), "child_full_name": F("direct"), "child_sex": F("quasi", "coarse"),
    "child_birth_date": F("quasi", "date"), "birth_place": F("quasi"), "ethnicity": F("sensitive"),
    "birth_weight_grams": F("sensitive"), "mother_full_name": F("direct"),
}  # fmt: skip
PARCELS = {"ward_code": F(), "parcel_number": F(), "geometry": F("quasi", "geometry"), "owner_name": F("direct"),
           "owner_personal_id": F("direct"), "address": F("quasi")}  # fmt: skip
CATALOG = {"civil_status.births": BIRTHS, "land.parcels": PARCELS}


@pytest.mark.parametrize(
    ("sql", "column", "source"),
    [
        ("SELECT child_personal_id FROM civil_status.births", "child_personal_id", "child_personal_id"),
        ("SELECT ward_code, child_full_name AS n FROM civil_status.births", "n", "child_full_name"),
        ("SELECT ward_code, ethnicity, count(*) AS n FROM civil_status.births GROUP BY ALL", "ethnicity", "ethnicity"),
        ("SELECT child_birth_date AS d, count(*) AS n FROM civil_status.births GROUP BY 1", "d", "child_birth_date"),
        ("SELECT ward_code, max(mother_full_name) AS m FROM civil_status.births GROUP BY 1", "m", "mother_full_name"),
        ("SELECT date_trunc('day', child_birth_date) AS d FROM civil_status.births", "d", "child_birth_date"),
        ("WITH x AS (SELECT upper(child_full_name) AS u FROM civil_status.births) SELECT u AS v FROM x", "v",
         "child_full_name"),
        ("SELECT ward_code FROM civil_status.births UNION ALL SELECT child_personal_id FROM civil_status.births",
         "ward_code", "child_personal_id"),
        ("SELECT s.w FROM (SELECT birth_place AS w FROM civil_status.births) AS s", "w", "birth_place"),
        ("SELECT geometry FROM land.parcels", "geometry", "geometry"),
        ("SELECT string_agg(owner_personal_id, ',') AS ids FROM land.parcels", "ids", "owner_personal_id"),
    ],
)  # fmt: skip
def test_personal_data_reaching_the_output_is_refused_naming_column_and_source(
    sql: str, column: str, source: str
) -> None:
    with pytest.raises(PublishError) as info:
        check_sql(sql, CATALOG)
    assert f"output column {column!r}" in info.value.message
    assert f".{source} " in info.value.message


def test_select_star_over_personal_data_is_refused() -> None:
    with pytest.raises(PublishError, match=r"SELECT \*"):
        check_sql("SELECT * FROM civil_status.births", CATALOG)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT ward_code, date_trunc('month', registration_date) AS month, child_sex, count(*) AS births "
        "FROM civil_status.births GROUP BY ALL",
        "SELECT ward_code, year(child_birth_date) AS y, count(DISTINCT child_personal_id) AS n, "
        "avg(birth_weight_grams) AS w FROM civil_status.births GROUP BY ALL",
        "SELECT ward_code, strftime(child_birth_date, '%Y-%m') AS m, count(*) AS n FROM civil_status.births GROUP BY ALL",
        "SELECT ward_code, count(*) FILTER (WHERE child_personal_id IS NULL) AS no_id FROM civil_status.births GROUP BY 1",
        "SELECT parcel_number, hub_centroid(geometry) AS c FROM land.parcels WHERE owner_name IS NULL",
        "SELECT ward_code, count(*) AS n FROM civil_status.births b JOIN land.parcels p USING (ward_code) GROUP BY 1",
    ],
)  # fmt: skip
def test_aggregated_and_generalized_releases_pass(sql: str) -> None:
    report = check_sql(sql, CATALOG)
    assert report.columns


def test_lineage_and_quasi_columns() -> None:
    report = check_sql(
        "WITH b AS (SELECT ward_code AS w, child_birth_date AS d, child_personal_id AS p FROM civil_status.births) "
        "SELECT w, year(d) AS y, count(p) AS n FROM b GROUP BY ALL",
        CATALOG,
    )
    by_name = {c.name: c for c in report.columns}
    assert by_name["y"].lineage[0].source == "civil_status.births.child_birth_date"
    assert by_name["y"].lineage[0].treatment == "generalized"
    assert by_name["n"].lineage[0].treatment == "counted"
    assert report.quasi_columns == ["w", "y"]
    assert report.aggregated


def test_unknown_dataset_or_column_and_non_select_are_refused() -> None:
    with pytest.raises(PublishError, match="unknown"):
        check_sql("SELECT nope FROM civil_status.births", CATALOG)
    with pytest.raises(PublishError, match="not a warehouse dataset"):
        check_sql("SELECT x FROM other.table_x", CATALOG)
    with pytest.raises(PublishError, match=r"may not call read_parquet\(\)"):
        check_sql("SELECT * FROM read_parquet('warehouse/civil_status/births/data/x.parquet')", CATALOG)
    with pytest.raises(PublishError, match=r"may not call getenv\(\)"):
        check_sql("SELECT getenv('HUB_SECRET_KEY') AS k", CATALOG)
    with pytest.raises(PublishError, match="one SELECT"):
        check_sql("DELETE FROM civil_status.births", CATALOG)


def test_release_definitions_are_validated_with_file_and_pointer(publish_settings) -> None:  # type: ignore[no-untyped-def]
    from hub.catalog.spec import DatasetSpec

    spec = DatasetSpec.model_validate({"id": "a.b", "title": {"vi": "x"}, "contract": "a/b.v1",
                                       "releases": [{"id": "ok-one", "title": {"vi": "x"}},
                                                    {"id": "bad", "title": {"vi": "x"}, "frequency": "hourly"}]})  # fmt: skip
    with pytest.raises(CatalogError) as info:
        parse_releases(spec, "catalog/x/b.yaml")
    assert "catalog/x/b.yaml#/releases/1/frequency" in info.value.message


def test_a_catalog_release_selecting_a_personal_id_is_refused_at_build(publish_settings) -> None:  # type: ignore[no-untyped-def]
    from hub.catalog.loader import get_dataset
    from hub.db import session_scope
    from hub.publish.spec import ReleaseSpec

    rel = ReleaseSpec.model_validate({"id": "ids", "title": {"vi": "x"},
                                      "sql": "SELECT mother_personal_id FROM civil_status.births"})  # fmt: skip
    with session_scope(publish_settings) as session:
        ds = get_dataset(session, "civil_status.births")
        with pytest.raises(PublishError, match=r"civil_status\.births\.mother_personal_id"):
            check_release(publish_settings, session, ds, rel)


def test_a_dataset_without_personal_data_may_be_released_whole() -> None:
    schools = {"education.schools": {"school_code": F(), "school_name": F(), "ward_code": F()}}
    report = check_sql("SELECT * FROM education.schools", schools)
    assert [c.name for c in report.columns] == ["school_code", "school_name", "ward_code"]
    assert report.quasi_columns == []
    assert not report.aggregated
