"""Downloads of DataStore resources and uploads: formats, BOM, gzip, ETag, Range, access."""

from __future__ import annotations

import gzip
import io
import json

import httpx
import pyarrow.parquet as pq
import pytest

from tests.api.conftest import LiveHub

pytestmark = pytest.mark.integration


def resource(hub: LiveHub, name: str, token: str | None = None) -> dict:
    headers = {"Authorization": token} if token else {}
    pkg = httpx.get(f"{hub.base}/api/3/action/package_show", params={"id": name}, headers=headers).json()[
        "result"
    ]
    return next(r for r in pkg["resources"] if r["datastore_active"])


def local(hub: LiveHub, url: str) -> str:
    return url.replace(hub.settings.site_url, hub.base)


def test_csv_stream_then_cached_with_range_and_etag(hub: LiveHub) -> None:
    url = local(hub, resource(hub, "land-parcels")["url"])
    first = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/csv; charset=utf-8"
    assert first.headers["content-disposition"] == 'attachment; filename="land-parcels.csv"'
    lines = first.text.splitlines()
    assert lines[0] == '"parcel_id","ward_code","area_m2","land_use","owner_note","geometry"'
    assert len(lines) == 251
    assert "Nguyễn Văn Đạt" in lines[2]
    etag = first.headers["etag"]
    again = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert again.content == first.content
    assert int(again.headers["content-length"]) == len(first.content)
    assert again.headers["etag"] == etag
    part = httpx.get(url, headers={"Accept-Encoding": "identity", "Range": "bytes=0-10"})
    assert part.status_code == 206
    assert part.content == first.content[:11]
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    zipped = httpx.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == first.content  # httpx decodes gzip
    raw = httpx.get(url, headers={"Accept-Encoding": "gzip"}).read()
    assert raw == first.content


def test_bom_formats_and_geojson(hub: LiveHub) -> None:
    res = resource(hub, "land-parcels")
    url = local(hub, res["url"])
    bom = httpx.get(url, params={"bom": 1}, headers={"Accept-Encoding": "identity"})
    assert bom.content.startswith(b'\xef\xbb\xbf"parcel_id"')
    pq_url = url.replace(".csv", ".parquet")
    table = pq.read_table(io.BytesIO(httpx.get(pq_url).content))
    assert table.num_rows == 250
    assert table.column("parcel_id")[249].as_py() == "P00249"
    jl = httpx.get(url.replace(".csv", ".jsonl")).text.splitlines()
    assert json.loads(jl[1])["owner_note"] == "Nguyễn Văn Đạt"
    geo = httpx.get(url.replace(".csv", ".geojson"))
    assert geo.headers["content-type"] == "application/geo+json"
    fc = geo.json()
    assert fc["type"] == "FeatureCollection"
    assert len(fc["features"]) == 250
    assert fc["features"][0]["geometry"]["type"] == "Polygon"
    assert fc["features"][0]["geometry"]["coordinates"][0][0] == [105.0, 21.0]
    assert "geometry" not in fc["features"][0]["properties"]
    points = httpx.get(local(hub, resource(hub, "civil_status-marriages")["url"]).replace(".csv", ".geojson"))
    assert points.json()["features"][0]["geometry"] == {"type": "Point", "coordinates": [106.0, 10.0]}
    dump = httpx.get(f"{hub.base}/datastore/dump/{res['id']}", params={"format": "tsv"})
    assert dump.text.splitlines()[0].startswith('"_id"\t"parcel_id"\t')  # CKAN's dump has _id first


def test_private_download_needs_access(hub: LiveHub) -> None:
    res = resource(hub, "civil_status-births", hub.member_token)
    url = local(hub, res["url"])
    assert httpx.get(url).status_code == 403
    assert httpx.get(url, headers={"Authorization": hub.outsider_token}).status_code == 403
    ok = httpx.get(url, headers={"Authorization": hub.member_token})
    assert ok.status_code == 200
    assert len(ok.text.splitlines()) == 41
    wrong = url.replace(res["package_id"], "land-parcels")
    assert httpx.get(wrong, headers={"Authorization": hub.member_token}).status_code == 404


def test_upload_download_and_link_redirect(hub: LiveHub) -> None:
    auth = {"Authorization": hub.editor_token}
    content = "mã,giá\n1,100\n".encode() * 1000
    r = httpx.post(
        f"{hub.base}/api/action/resource_create",
        headers=auth,
        data={"package_id": "land-parcels", "name": "Giá đất", "schema": '{"fields": []}'},
        files={"upload": ("giá đất.csv", content, "text/csv")},
    )
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert res["schema"] == '{"fields": []}'  # unknown keys are kept and echoed
    assert res["size"] == len(content)
    import hashlib

    assert res["hash"] == hashlib.sha256(content).hexdigest()
    got = httpx.get(local(hub, res["url"]))
    assert got.content == content
    assert got.headers["content-type"].startswith("text/csv")
    part = httpx.get(local(hub, res["url"]), headers={"Range": "bytes=5-9"})
    assert part.status_code == 206
    assert part.content == content[5:10]
    link = httpx.post(
        f"{hub.base}/api/action/resource_create",
        headers=auth,
        json={"package_id": "land-parcels", "url": "example.org/file.xlsx", "name": "Link"},
    ).json()
    assert link["result"]["format"] == "XLSX"
    moved = httpx.get(
        local(hub, f"{hub.settings.site_url}/dataset/land-parcels/resource/{link['result']['id']}/download")
    )
    assert moved.status_code == 302
    assert moved.headers["location"] == "http://example.org/file.xlsx"
    too_big = httpx.post(
        f"{hub.base}/api/action/resource_create",
        headers=auth,
        data={"package_id": "land-parcels"},
        files={"upload": ("x.bin", b"0" * 10)},
    )
    assert too_big.status_code == 200
    hub.settings.upload_max_bytes = 5
    try:
        refused = httpx.post(
            f"{hub.base}/api/action/resource_create",
            headers=auth,
            data={"package_id": "land-parcels"},
            files={"upload": ("x.bin", b"0" * 10)},
        )
    finally:
        hub.settings.upload_max_bytes = 100 * 1024 * 1024
    assert refused.status_code == 409
    assert refused.json()["error"]["upload"] == ["File upload too large"]


def test_gzip_body_is_valid_gzip(hub: LiveHub) -> None:
    url = local(hub, resource(hub, "civil_status-marriages")["url"]).replace(".csv", ".jsonl")
    with httpx.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
    assert r.headers["content-encoding"] == "gzip"
    assert len(gzip.decompress(raw).splitlines()) == 30
