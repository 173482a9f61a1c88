# ruff: noqa: E501  (SQL and fixture rows read best on one line)
"""The PII scan on the demo province: generate, ingest, build every release of the demo catalog, then
fetch every published file and portal page through a live server and look for every personal id,
name and exact address of the demo sources. None may appear."""

from __future__ import annotations

import re

import httpx
import pytest
from rdflib import Graph
from sqlalchemy import select

from hub.publish.freshness import rebuild_due
from hub.settings import Settings
from hub.testing.live import free_port, live_server
from tests.publish.test_publish_api import _crawl
from tests.publish.test_publish_dcat import _violations

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERSONAL = {
    "civil_status.births": ["child_personal_id", "child_full_name", "father_full_name", "father_personal_id",
                            "mother_full_name", "mother_personal_id", "birth_place"],
    "civil_status.deaths": ["deceased_personal_id", "deceased_full_name", "declarant_full_name", "death_place"],
    "civil_status.marriages": ["husband_full_name", "husband_personal_id", "wife_full_name", "wife_personal_id"],
    "land.parcels": ["owner_name", "owner_personal_id", "address"],
}  # fmt: skip


NO_ROWS = "not published: the release has no rows"
_EDGE = rb"[\"',<>\t\r\n\[\]{}:;]"


def _holds(body: bytes, value: str) -> bool:
    """Whether ``body`` holds ``value`` as a whole value (a CSV cell, a JSON string, an HTML text), not
    inside a longer one: a person called "Lê Hồng" is not leaked by the street "Lê Hồng Phong" of the
    open address register."""
    needle = re.escape(value.encode())
    return re.search(rb"(?:^|" + _EDGE + rb")" + needle + rb"(?:$|" + _EDGE + rb")", body) is not None


def _versions(settings: Settings) -> dict[tuple[str, str], int]:
    """How many versions each release has; none has two with the same data."""
    from hub.catalog.models import Dataset
    from hub.db import session_scope
    from hub.publish.models import Release

    out: dict[tuple[str, str], int] = {}
    with session_scope(settings) as session:
        for rel in session.scalars(select(Release)):
            ds = session.get(Dataset, rel.dataset_id)
            assert ds is not None
            data = [f.sha256 for v in rel.versions for f in v.files if f.name == "data.csv"]
            assert len(data) == len(set(data)), (ds.key, rel.name, data)
            assert all(v.rows > 0 for v in rel.versions), (ds.key, rel.name)
            if rel.versions:
                out[(ds.key, rel.name)] = len(rel.versions)
    return out


def _personal_values(settings: Settings) -> set[str]:
    from hub.warehouse.query import run_sql
    from hub.warehouse.tables import Warehouse

    values: set[str] = set()
    for key, columns in PERSONAL.items():
        table = run_sql(Warehouse(settings), f"SELECT {', '.join(columns)} FROM {key}")
        for col in table.columns:
            values.update(v for v in col.to_pylist() if isinstance(v, str) and len(v) >= 6)
    return values


def test_nothing_published_from_the_demo_contains_personal_data(settings: Settings) -> None:
    from hub.demo.run import run_demo_outcome

    port = free_port()
    settings = settings.model_copy(update={"site_url": f"http://127.0.0.1:{port}"})
    outcome = run_demo_outcome(settings, service_port=free_port(), serve_hub=False)
    assert outcome.ok, outcome.results
    # every release is rebuilt after a successful ingest of its sources; none is left to do. A release
    # with no rows (the demo's parcels all have owners) is not published, and says so
    built = [r for result in outcome.results.values() for r in result.releases]
    assert built
    assert rebuild_due(settings) == []
    assert all(o.startswith(("version", NO_ROWS)) for _, _, o in built), built
    assert ("land.parcels", "parcels-without-owner") in {(d, r) for d, r, o in built if o.startswith(NO_ROWS)}
    # the demo again: the same data, checked, and no new version of any release
    again = run_demo_outcome(settings, service_port=free_port(), serve_hub=False)
    assert again.ok, again.results
    rebuilt = [r for result in again.results.values() for r in result.releases]
    assert rebuilt
    assert all(o.startswith(("unchanged, checked at", NO_ROWS)) for _, _, o in rebuilt), rebuilt
    assert _versions(settings) == {(d, r): 1 for d, r, o in built if o.startswith("version")}
    secrets = _personal_values(settings)
    assert len(secrets) > 1000
    with live_server(settings, port=port) as base, httpx.Client(timeout=60) as client:
        published = _crawl(base, client)
        catalog = client.get(f"{base}/catalog.ttl").text
    release_files = [u for u in published if "/release/" in u]
    assert len(release_files) >= 20
    leaks = sorted({(url, s) for url, body in published.items() for s in secrets if _holds(body, s)})
    assert not leaks, leaks[:10]
    # the scan can see personal data: the warehouse's own rows hold it
    assert any(s in _births_csv(settings) for s in list(secrets)[:50])
    # and the demo's whole DCAT catalogue validates against DCAT-AP 3.0
    graph = Graph().parse(data=catalog, format="turtle")
    conforms, text = _violations(graph)
    assert conforms, text


def _births_csv(settings: Settings) -> str:
    from hub.warehouse.query import run_sql
    from hub.warehouse.tables import Warehouse

    table = run_sql(
        Warehouse(settings),
        "SELECT * FROM civil_status.births UNION ALL BY NAME "
        "SELECT * FROM civil_status.deaths UNION ALL BY NAME SELECT * FROM civil_status.marriages "
        "UNION ALL BY NAME SELECT * FROM land.parcels",
    )
    return str(table.to_pylist())
