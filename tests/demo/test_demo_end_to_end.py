"""`make demo` without the final serve: generate, run the service, ingest every dataset; twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.demo.run import free_port, port_free, run_demo_outcome
from hub.settings import Settings
from hub.testing.live import live_server

DATASETS = {
    "civil_status.births",
    "civil_status.marriages",
    "civil_status.deaths",
    "land.parcels",
    "education.schools",
    "education.enrolment",
    "addresses.digital_addresses",
}


@pytest.mark.slow
def test_demo_ingests_every_dataset_and_is_safe_to_run_twice(settings: Settings) -> None:
    first = run_demo_outcome(settings, service_port=free_port(), serve_hub=False)
    assert first.generated
    status = {k: getattr(r, "status", r) for k, r in first.results.items()}
    assert status == dict.fromkeys(DATASETS, "succeeded")
    births = first.results["civil_status.births"]
    assert births.rows_read == births.rows_loaded + births.rows_quarantined
    # the messy share is caught by the contracts, and stays far below the 5 % threshold
    for key in ("civil_status.births", "land.parcels", "addresses.digital_addresses"):
        r = first.results[key]
        assert 0 < r.rows_quarantined < 0.05 * r.rows_read, key
    assert 0 < first.results["education.enrolment"].rows_quarantined < 0.05 * 556

    second = run_demo_outcome(settings, service_port=free_port(), serve_hub=False)
    assert not second.generated
    assert second.ok, {k: getattr(r, "error", r) for k, r in second.results.items()}

    with live_server(settings) as base:
        names = httpx.get(f"{base}/api/3/action/package_list", timeout=30).json()["result"]
    # the public sees the open datasets; the shared ones (dùng chung) are for granted agencies only
    assert {"education-schools", "education-enrolment", "addresses-digital_addresses"} <= set(names)
    assert "civil_status-births" not in names


def test_cli_generate_prints_what_it_made(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "generate", "--scale", "small", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Generated the small demo province" in result.output
    assert "parcels" in result.output
    assert (out / "land.db").exists()
    assert (out / "education" / "drop" / "giao-duc_2024-2025.xlsx").exists()


def test_cli_service_refuses_to_start_without_a_key(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("HUB_DEMO_CIVIL_STATUS_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["demo", "civil-status-service", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "--api-key" in result.output


def _portal_packages(base: str) -> set[str]:
    home = httpx.get(f"{base}/", timeout=30).text
    return set(re.findall(r'href="/dataset/([^"/?#.]+)"', home))


def _dcat_packages(base: str) -> set[str]:
    from rdflib import Graph, URIRef
    from rdflib.namespace import DCAT

    graph = Graph().parse(data=httpx.get(f"{base}/catalog.ttl", timeout=60).text, format="turtle")
    catalog = URIRef(f"{base}/catalog")
    return {str(d).rsplit("/dataset/", 1)[1] for d in graph.objects(catalog, DCAT.dataset)}


def _check_catalogue(base: str) -> None:
    """Every reader sees the same public packages; every release on the portal is a package the API
    lists, with resources that answer; no raw personal data is public."""
    import ckanapi

    ckan = ckanapi.RemoteCKAN(base, user_agent="ckanapi-test")
    listed = set(ckan.action.package_list())
    searched = ckan.action.package_search(rows=1000)
    assert searched["count"] == len(listed)
    with_resources = ckan.action.current_package_list_with_resources(limit=1000)
    readers = {
        "package_list": listed,
        "package_search": {p["name"] for p in searched["results"]},
        "current_package_list_with_resources": {p["name"] for p in with_resources},
        "catalog.ttl": _dcat_packages(base),
        "portal": _portal_packages(base),
    }
    assert all(names == listed for names in readers.values()), readers
    # the open releases of all four sectors are there; the raw shared data is not
    for name in (
        "civil_status-births-open",
        "land-parcels-open",
        "education-schools",
        "addresses-digital_addresses",
    ):
        assert name in listed, name
    for private in ("civil_status-births", "civil_status-deaths", "civil_status-marriages", "land-parcels"):
        assert private not in listed
        with pytest.raises(ckanapi.NotAuthorized):
            ckan.action.package_show(id=private)
    assert ckan.action.tag_list()
    assert ckan.action.group_list()
    births = ckan.action.package_show(id="civil_status-births-open")
    assert births["private"] is False
    assert dict((e["key"], e["value"]) for e in births["extras"])["hub_derived_from"] == "civil_status-births"
    portal_releases = set(
        re.findall(r"/release/([^/]+)/\d+/", httpx.get(f"{base}/dataset/civil_status-births-open").text)
    )
    assert portal_releases
    for pkg in with_resources:
        assert pkg["resources"], pkg["name"]
        for res in pkg["resources"]:
            with httpx.stream("GET", res["url"], timeout=60) as r:
                assert r.status_code == 200, (pkg["name"], res["url"])
                next(r.iter_bytes(), b"")
            if res.get("datastore_active"):
                found = ckan.action.datastore_search(resource_id=res["id"], limit=1)
                assert ckan.action.resource_show(id=found["resource_id"])["id"] == res["id"]
                dump = httpx.get(f"{base}/datastore/dump/{res['id']}", params={"limit": 3}, timeout=60)
                assert dump.status_code == 200
        release_names = {(r.get("hub_release")) for r in pkg["resources"] if r.get("hub_release")}
        if pkg["name"] == "civil_status-births-open":
            assert portal_releases <= release_names


@pytest.mark.slow
def test_hub_demo_run_serves_the_hub_and_stops_the_service_on_exit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What `make demo` does, as a user runs it: a process that serves until Ctrl-C, on free ports;
    then a CKAN client and a harvester find every open release of all four sectors, and the raw
    personal data of none."""
    port = free_port()
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "var"), "PORT": str(port)}
    env.pop("HUB_DEMO_CIVIL_STATUS_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli.main", "demo", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/api/3/action/package_list", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the hub did not come up"
            time.sleep(0.5)
        assert httpx.get(f"{base}/docs", timeout=5).status_code == 200
        _check_catalogue(base)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert f"{base}/api/3/action/package_list" in text
    assert f"{base}/docs" in text
    assert "civil_status.births" in text
    service = re.search(r"civil-status service \(Sở Tư pháp\) on http://127.0.0.1:(\d+)", text)
    assert service, text
    assert port_free(int(service.group(1))), "the civil-status service was stopped with the demo"


def test_a_service_that_cannot_start_stops_the_demo_with_its_own_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hub.demo.generate import generate
    from hub.demo.run import civil_status_service
    from hub.errors import ConfigError

    generate(tmp_path / "demo", "small")
    missing = tmp_path / "nowhere" / "missing.db"
    with (
        pytest.raises(ConfigError, match="did not start") as info,
        civil_status_service(missing, "k", free_port()),
    ):
        pass
    assert "missing.db" in info.value.message or "does not exist" in info.value.message


def test_the_service_stops_when_the_demo_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of the demo leaves no civil-status service behind on the port."""
    from hub.demo.generate import generate

    generate(tmp_path / "demo", "small")
    service_port = free_port()
    db = str(tmp_path / "demo" / "civil_status.db")
    script = (
        "import sys, time; from pathlib import Path; from hub.demo.run import civil_status_service\n"
        f"with civil_status_service(Path({db!r}), 'k', {service_port}):\n"
        "    print('up', flush=True); time.sleep(600)\n"
    )
    demo = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert demo.stdout is not None
        assert demo.stdout.readline().strip() == b"up"
        assert not port_free(service_port)
        demo.kill()
        demo.wait(timeout=10)
        deadline = time.monotonic() + 15
        while not port_free(service_port):
            assert time.monotonic() < deadline, "the service outlived the demo"
            time.sleep(0.2)
    finally:
        if demo.poll() is None:
            demo.kill()
        if demo.stdout:
            demo.stdout.close()
