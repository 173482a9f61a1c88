"""Real CKAN clients against a live hub: ckanapi (library and CLI), the harvester's paging, frictionless."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import requests
from ckanapi import NotAuthorized, NotFound, RemoteCKAN, ValidationError

from hub.catalog.models import Dataset, Organization
from hub.catalog.search import CatalogIndex
from hub.db import session_scope
from tests.api.conftest import LiveHub

pytestmark = pytest.mark.integration
CKANAPI = str(Path(sys.executable).parent / "ckanapi")


def test_remoteckan_reads_and_errors(hub: LiveHub) -> None:
    ckan = RemoteCKAN(hub.base, user_agent="hub-tests")
    assert "land-parcels" in ckan.action.package_list()
    pkg = ckan.action.package_show(id="land-parcels")
    assert pkg["organization"]["name"] == "so-tai-nguyen-moi-truong"
    assert pkg["resources"][0]["datastore_active"] is True
    found = ckan.action.package_search(q="dat dai", rows=5)
    assert [r["name"] for r in found["results"]] == ["land-parcels"]
    assert ckan.action.organization_list() == ["so-tai-nguyen-moi-truong", "so-tu-phap"]
    with pytest.raises(NotFound):
        ckan.action.package_show(id="no-such-dataset")
    with pytest.raises(NotAuthorized):
        ckan.action.package_show(id="civil_status-births")
    member = RemoteCKAN(hub.base, apikey=hub.member_token)
    assert member.action.package_show(id="civil_status-births")["private"] is True


def test_remoteckan_writes_with_upload(hub: LiveHub, tmp_path: Path) -> None:
    ckan = RemoteCKAN(hub.base, apikey=hub.editor_token)
    with pytest.raises(ValidationError) as err:
        ckan.action.package_create(name="thu-nghiem")
    assert err.value.error_dict["owner_org"] == ["An organization must be provided"]
    with pytest.raises(NotAuthorized):
        ckan.action.package_create(name="thu-nghiem", owner_org="so-tu-phap")
    pkg = ckan.action.package_create(
        name="thu-nghiem",
        owner_org="so-tai-nguyen-moi-truong",
        title="Thử nghiệm",
        tags=[{"name": "đất đai"}],
    )
    data = tmp_path / "bảng giá đất.csv"
    data.write_text("ma,gia\n1,100\n", encoding="utf-8")
    with data.open("rb") as f:
        res = ckan.action.resource_create(package_id=pkg["id"], name="Bảng giá", upload=f)
    assert res["url_type"] == "upload"
    assert res["url"].endswith("/download/bang-gia-dat.csv")
    assert res["size"] == data.stat().st_size
    assert res["format"] == "CSV"
    body = httpx.get(res["url"].replace(hub.settings.site_url, hub.base))
    assert body.content == data.read_bytes()


def _cli(hub: LiveHub, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(CKANAPI).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(
        [CKANAPI, *args, "-r", hub.base], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_ckanapi_cli_action_dump_and_search(hub: LiveHub) -> None:
    result = json.loads(_cli(hub, "action", "package_search", "q=hộ tịch", "rows:5"))
    assert [r["name"] for r in result["results"]] == ["civil_status-marriages"]
    dumped = [json.loads(line) for line in _cli(hub, "dump", "datasets", "--all", "-q").splitlines() if line]
    names = sorted(d["name"] for d in dumped)
    assert "land-parcels" in names
    assert "civil_status-births" not in names  # private datasets are never listed
    searched = [json.loads(line) for line in _cli(hub, "search", "datasets", 'q=tags:"kết hôn"').splitlines()]
    assert [d["name"] for d in searched] == ["civil_status-marriages"]


def test_harvester_paging(hub: LiveHub) -> None:
    """ckanext-harvest's gather: rows=100, sort=id asc, fq range on metadata_modified, until an empty page."""
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    with session_scope(hub.settings) as session:
        org = Organization(name="harvest-org", title="Harvest", extras={})
        session.add(org)
        session.flush()
        for i in range(230):
            session.add(
                Dataset(
                    key=f"h.d{i}",
                    name=f"harvest-{i:03d}",
                    title=f"H {i}",
                    owner_org_id=org.id,
                    sharing="open",
                    spec={},
                    state="active",
                )
            )
    time.sleep(CatalogIndex.CHECK_SECONDS)  # changes made outside the server show up within this time
    fq = f"metadata_modified:[{since.isoformat()}Z TO *] organization:harvest-org"
    ids: list[str] = []
    previous = None
    start = 0
    while True:
        r = requests.get(
            f"{hub.base}/api/3/action/package_search",
            params={"fq": fq, "rows": 100, "start": start, "sort": "id asc"},
            timeout=30,
        )
        assert r.status_code == 200
        assert r.content != previous, "two identical pages: paging does not work"
        previous = r.content
        page = r.json()["result"]["results"]
        if not page:
            break
        assert all("resources" in p and "organization" in p for p in page)
        ids.extend(p["id"] for p in page)
        start += 100
    assert len(ids) == 230 == len(set(ids))
    assert ids == sorted(ids)
    later = requests.get(
        f"{hub.base}/api/3/action/package_search",
        timeout=30,
        params={"fq": f"metadata_modified:[{(since + timedelta(hours=2)).isoformat()}Z TO *]", "rows": 100},
    )
    assert later.json()["result"]["count"] == 0


def test_frictionless_reads_a_package(hub: LiveHub) -> None:
    from frictionless import Package

    package = Package(f"{hub.base}/dataset/civil_status-marriages")
    assert package.title == "Đăng ký kết hôn"
    assert package.licenses[0]["name"] == "odc-by"
    assert "hộ tịch" in package.keywords
    resource = package.resources[0]
    assert resource.path.endswith("/download/civil_status-marriages.csv")
