"""The ckan connector harvesting a live hub's CKAN API (the hub is a CKAN-compatible portal)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from ckanapi import RemoteCKAN

from connectors.ckan.connector import CkanConnector
from hub.db import dispose_engines
from hub.ingest.connector import ConnectorContext
from hub.settings import Settings
from hub.testing.conformance import ConformanceCase, ConnectorConformance
from hub.testing.live import free_port, live_server

pytestmark = pytest.mark.integration


@dataclass
class Portal:
    settings: Settings
    url: str
    editor_token: str


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    from tests.api.conftest import make_users
    from tests.api.support import build_hub, hub_settings

    port = free_port()
    settings = hub_settings(tmp_path_factory.mktemp("portal"), port)
    build_hub(settings)
    tokens = make_users(settings)
    with live_server(settings, port=port) as url:
        yield Portal(settings, url, tokens["editor"])
    dispose_engines()


def read(connector: CkanConnector, stream: str, state: dict[str, object] | None = None) -> pa.Table:
    batches = list(connector.read(stream, state))
    return pa.Table.from_batches(batches) if batches else pa.table({})


def test_harvests_every_public_dataset_page_by_page(portal: Portal) -> None:
    c = CkanConnector.from_dict({"url": portal.url, "rows": 1})
    table = read(c, "datasets")
    expected = RemoteCKAN(portal.url).action.package_search(rows=1000)
    assert sorted(table.column("name").to_pylist()) == sorted(p["name"] for p in expected["results"])
    assert table.num_rows == expected["count"] >= 2
    modified = table.column("metadata_modified").to_pylist()
    assert modified == sorted(modified)
    parcels = table.filter(pa.compute.equal(table.column("name"), "land-parcels")).to_pylist()[0]
    assert parcels["organization"] == "so-tai-nguyen-moi-truong"
    assert "đất đai" in parcels["tags"]
    resources = read(c, "resources")
    assert "land-parcels" in resources.column("package_name").to_pylist()


def test_incremental_by_metadata_modified(portal: Portal) -> None:
    c = CkanConnector.from_dict({"url": portal.url, "rows": 2})
    first = read(c, "datasets")
    top = max(first.column("metadata_modified").to_pylist())
    state = c.next_state("datasets", None, top)
    assert read(c, "datasets", state).num_rows == 0
    editor = RemoteCKAN(portal.url, apikey=portal.editor_token)
    editor.action.package_create(name="harvest-moi", owner_org="so-tai-nguyen-moi-truong", title="Mới")
    newer = read(c, "datasets", state)
    assert newer.column("name").to_pylist() == ["harvest-moi"]


def test_check_reports(portal: Portal) -> None:
    assert CkanConnector.from_dict({"url": portal.url}).check().ok
    closed = f"http://127.0.0.1:{free_port()}"
    bad = CkanConnector.from_dict({"url": closed, "max_attempts": 1}).check()
    assert not bad.ok
    assert "cannot connect" in bad.message


class TestCkanConformance(ConnectorConformance):
    @pytest.fixture
    def case(self, portal: Portal, tmp_path: Path) -> ConformanceCase:
        counter = iter(range(1000))

        def add_rows() -> None:
            RemoteCKAN(portal.url, apikey=portal.editor_token).action.package_create(
                name=f"conformance-{next(counter)}-{tmp_path.name[-6:].lower()}",
                owner_org="so-tai-nguyen-moi-truong",
            )

        return ConformanceCase(
            CkanConnector,
            config={"url": portal.url, "rows": 3},
            context=ConnectorContext(base_dir=str(tmp_path)),
            unreachable_config={
                "url": f"http://127.0.0.1:{free_port()}",
                "max_attempts": 2,
                "backoff_seconds": 0,
            },
            add_rows=add_rows,
            stream="datasets",
        )
