"""``/datastore/dump/{rid}`` as CKAN users reach it, against a live hub: CKAN's formats (csv, tsv, json,
xml) read by real parsers, ``bom``, the rows ``q``/``filters``/``fields``/``sort``/``distinct``/
``offset``/``limit`` select (the rows datastore_search returns for the same parameters), the same 409
errors, a large table streamed in constant memory, and the access rules as an attacker meets them."""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from hub.auth import grants
from hub.auth.models import AuditEntry, Grant
from hub.auth.principal import SYSTEM
from hub.catalog.ckan_models import datastore_resource_id
from hub.db import dispose_engines, session_scope
from hub.settings import Settings
from hub.testing.live import free_port, live_server
from tests.api.conftest import LiveHub, make_users
from tests.api.support import build_hub, hub_settings, make_table
from tests.auth.auth_matrix_world import MatrixWorld, build_matrix_world

pytestmark = pytest.mark.integration

BOM = b"\xef\xbb\xbf"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def dump(base: str, rid: str, token: str | None = None, **params: Any) -> httpx.Response:
    headers = {"Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = token
    return httpx.get(f"{base}/datastore/dump/{rid}", params=params, headers=headers, timeout=120)


def search(hub: LiveHub, token: str | None = None, **params: Any) -> dict[str, Any]:
    headers = {"Authorization": token} if token else {}
    r = httpx.get(f"{hub.base}/api/3/action/datastore_search", params=params, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()["result"]
    return result


def parcels_rid(hub: LiveHub) -> str:
    pkg = httpx.get(f"{hub.base}/api/3/action/package_show", params={"id": "land-parcels"}).json()["result"]
    return str(next(r["id"] for r in pkg["resources"] if r["datastore_active"]))


def same(text: str, value: Any) -> bool:
    """Whether a CSV/XML cell shows the JSON value datastore_search returns."""
    if value is None:
        return text == ""
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    if isinstance(value, float):
        return float(text) == value
    if isinstance(value, int):
        return int(text) == value
    return text == str(value)


def read_csv(body: bytes, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8")), delimiter=delimiter))


def read_xml(body: bytes) -> list[dict[str, Any]]:
    """The rows of CKAN's XML dump, each as {"_id": ..., field: text or None (xsi:nil)}."""
    root = ET.fromstring(body)
    assert root.tag == "data"
    out = []
    for row in root:
        assert row.tag == "row"
        rec: dict[str, Any] = {"_id": int(row.attrib["_id"])} if "_id" in row.attrib else {}
        for el in row:
            name = el.attrib["key"] if el.tag == "value" else el.tag
            rec[name] = None if el.attrib.get(XSI_NIL) == "true" else (el.text or "")
        out.append(rec)
    return out


# --- formats -----------------------------------------------------------------------------------------


def test_dump_is_ckans_csv_with_id_first(hub: LiveHub) -> None:
    rid = parcels_rid(hub)
    r = dump(hub.base, rid)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="land-parcels.csv"'
    rows = read_csv(r.content)
    assert rows[0] == ["_id", "parcel_id", "ward_code", "area_m2", "land_use", "owner_note", "geometry"]
    assert [int(x[0]) for x in rows[1:]] == list(range(1, 251))  # across the snapshot's three files
    whole = search(hub, resource_id=rid, limit=32000, records_format="lists")["records"]
    assert len(rows) == 251
    for cells, rec in zip(rows[1:], whole, strict=True):
        assert all(same(c, v) for c, v in zip(cells, rec, strict=True)), (cells, rec)
    again = dump(hub.base, rid)  # the second is served from the cache file, with a length
    assert again.content == r.content
    assert int(again.headers["content-length"]) == len(r.content)


@pytest.mark.parametrize(
    ("fmt", "media"),
    [
        ("csv", "text/csv; charset=utf-8"),
        ("tsv", "text/tab-separated-values; charset=utf-8"),
        ("json", "application/json; charset=utf-8"),
        ("xml", "text/xml; charset=utf-8"),
    ],
)
def test_each_ckan_format_parses_to_the_datastore_rows(hub: LiveHub, fmt: str, media: str) -> None:
    rid = parcels_rid(hub)
    found = search(hub, resource_id=rid, limit=32000, records_format="lists")
    names = [f["id"] for f in found["fields"]]
    records = found["records"]
    r = dump(hub.base, rid, format=fmt)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media
    assert r.headers["content-disposition"] == f'attachment; filename="land-parcels.{fmt}"'
    if fmt in ("csv", "tsv"):
        rows = read_csv(r.content, "\t" if fmt == "tsv" else ",")
        assert rows[0] == names
        assert len(rows) - 1 == len(records) == 250
        for cells, rec in zip(rows[1:], records, strict=True):
            assert all(same(c, v) for c, v in zip(cells, rec, strict=True)), (cells, rec)
    elif fmt == "json":
        body = json.loads(r.content)  # ONE object, not JSON lines
        assert set(body) == {"fields", "records"}
        assert body["fields"] == [{"id": f["id"], "type": f["type"]} for f in found["fields"]]
        assert body["records"] == records
    else:
        rows = read_xml(r.content)
        assert len(rows) == 250
        for got, rec in zip(rows, records, strict=True):
            assert list(got) == names
            assert all(
                same(got[n], v) if v is not None else got[n] is None for n, v in zip(names, rec, strict=True)
            )


def test_bom_for_csv_and_tsv_only(hub: LiveHub) -> None:
    rid = parcels_rid(hub)
    for fmt in ("csv", "tsv"):
        plain = dump(hub.base, rid, format=fmt).content
        with_bom = dump(hub.base, rid, format=fmt, bom="1").content
        assert with_bom == BOM + plain
        assert dump(hub.base, rid, format=fmt, bom="true", limit=2).content.startswith(BOM + b'"_id"')
    for fmt in ("json", "xml"):
        assert not dump(hub.base, rid, format=fmt, bom="1").content.startswith(BOM)


def test_download_route_json_is_ckans_object_and_jsonl_stays_lines(hub: LiveHub) -> None:
    res = httpx.get(f"{hub.base}/api/3/action/resource_show", params={"id": parcels_rid(hub)}).json()[
        "result"
    ]
    url = res["url"].replace(hub.settings.site_url, hub.base)
    assert url.endswith("/download/land-parcels.csv")
    obj = httpx.get(url.replace(".csv", ".json"))
    assert obj.headers["content-type"] == "application/json; charset=utf-8"
    body = json.loads(obj.content)
    assert [f["id"] for f in body["fields"]][:2] == ["parcel_id", "ward_code"]  # the file: no _id
    assert len(body["records"]) == 250
    assert body["records"][1][4] == "Nguyễn Văn Đạt"
    for ext in ("jsonl", "ndjson"):
        lines = httpx.get(url.replace(".csv", f".{ext}")).text.splitlines()
        assert len(lines) == 250
        assert json.loads(lines[1])["owner_note"] == "Nguyễn Văn Đạt"
    xml_rows = read_xml(httpx.get(url.replace(".csv", ".xml")).content)
    assert len(xml_rows) == 250
    assert "_id" not in xml_rows[0]


def test_resource_show_of_the_datastore_resource(hub: LiveHub) -> None:
    rid = parcels_rid(hub)
    r = httpx.get(f"{hub.base}/api/3/action/resource_show", params={"id": rid})
    assert r.status_code == 200
    res = r.json()["result"]
    assert res["id"] == rid
    assert res["datastore_active"] is True
    assert res["url_type"] == "datastore"
    assert (
        res["url"]
        == f"{hub.settings.site_url}/dataset/{res['package_id']}/resource/{rid}/download/land-parcels.csv"
    )
    by_url = read_csv(httpx.get(res["url"].replace(hub.settings.site_url, hub.base)).content)
    by_dump = read_csv(dump(hub.base, rid).content)
    assert [row[1:] for row in by_dump] == by_url  # the same rows; the dump adds CKAN's _id


def test_dump_of_what_is_not_a_datastore_resource_is_404(hub: LiveHub) -> None:
    r = dump(hub.base, "00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    link = httpx.post(
        f"{hub.base}/api/action/resource_create",
        headers={"Authorization": hub.editor_token},
        json={"package_id": "land-parcels", "url": "example.org/x.csv", "name": "Link"},
    ).json()["result"]
    assert dump(hub.base, link["id"]).status_code == 404
    assert dump(hub.base, parcels_rid(hub), format="xlsx").status_code == 404


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """A live hub whose marriages are three rows of odd types and names."""
    port = free_port()
    settings = hub_settings(tmp_path_factory.mktemp("odd"), port)
    build_hub(settings, tables=False)
    odd = pa.table(
        {
            "ma so": pa.array(["A", "B", None]),  # a space: no XML element name
            "ngày": pa.array([1, 2, None], pa.int32()).cast(pa.date32()),
            "đúng": pa.array([True, False, None]),
            "n": pa.array([2**40, -1, None], pa.int64()),
            "tags": pa.array([["x", "y"], [], None], pa.list_(pa.string())),
            "ghi_chu": pa.array(["a < b & c", "dòng 1\ndòng 2", "\x01\r"]),
        }
    )
    make_table(settings, "civil_status.marriages", odd)
    with live_server(settings, port=port) as base:
        yield LiveHub(settings, base, "", "", "", "")
    dispose_engines()


def test_types_nulls_and_names_xml_cannot_hold(odd: LiveHub) -> None:
    """Dates, integers, booleans, nulls, lists, text XML cannot carry and a column name that is no XML
    name, in CKAN's json and xml."""
    pkg = httpx.get(f"{odd.base}/api/3/action/package_show", params={"id": "civil_status-marriages"})
    rid = next(r["id"] for r in pkg.json()["result"]["resources"] if r["datastore_active"])
    body = json.loads(dump(odd.base, rid, format="json").content)
    assert body["fields"] == [
        {"id": "_id", "type": "int"},
        {"id": "ma so", "type": "text"},
        {"id": "ngày", "type": "date"},
        {"id": "đúng", "type": "bool"},
        {"id": "n", "type": "int8"},
        {"id": "tags", "type": "_text"},
        {"id": "ghi_chu", "type": "text"},
    ]
    assert body["records"] == [
        [1, "A", "1970-01-02", True, 2**40, ["x", "y"], "a < b & c"],
        [2, "B", "1970-01-03", False, -1, [], "dòng 1\ndòng 2"],
        [3, None, None, None, None, None, "\x01\r"],
    ]
    root = ET.fromstring(dump(odd.base, rid, format="xml").content)
    first, second, third = list(root)
    assert first.attrib == {"_id": "1"}
    assert [(el.tag, el.attrib.get("key")) for el in first] == [
        ("value", "ma so"),
        ("ngày", None),
        ("đúng", None),
        ("n", None),
        ("tags", None),
        ("ghi_chu", None),
    ]
    assert [el.text for el in first][:4] == ["A", "1970-01-02", "true", str(2**40)]
    assert [(v.attrib["key"], v.text) for v in first.find("tags")] == [("0", "x"), ("1", "y")]
    assert first.find("ghi_chu").text == "a < b & c"
    assert second.find("ghi_chu").text == "dòng 1\ndòng 2"
    assert all(el.attrib.get(XSI_NIL) == "true" for el in list(third)[:5])
    assert third.find("ghi_chu").text == "\ufffd\r"  # XML 1.0 cannot carry U+0001; CR as &#13;
    same_rows = search(odd, resource_id=rid, records_format="lists", filters=json.dumps({"n": -1}))
    filtered = json.loads(dump(odd.base, rid, format="json", filters=json.dumps({"n": -1})).content)
    assert filtered["records"] == same_rows["records"] == [body["records"][1]]


# --- rows selected by parameters ---------------------------------------------------------------------


QUERIES: list[dict[str, str]] = [
    {"filters": json.dumps({"land_use": "ODT", "ward_code": ["26734", "26735"]}), "sort": "area_m2 desc"},
    {"q": "nguyen van dat", "fields": "_id,parcel_id,owner_note"},
    {"offset": "20", "limit": "15"},
    {
        "filters": json.dumps({"area_m2": {"gte": 300, "lt": 310}}),
        "fields": "parcel_id",
        "sort": "parcel_id desc",
    },
    {"distinct": "true", "fields": "land_use", "sort": "land_use"},
    {"filters": json.dumps({"$or": [{"parcel_id": "P00001"}, {"parcel_id": "P00002"}]})},
    {"q": json.dumps({"owner_note": "đạt"}), "limit": "5", "offset": "3"},
    {"sort": "ward_code, parcel_id desc", "limit": "40", "fields": "ward_code,parcel_id"},
    {"filters": json.dumps({"owner_note": None}), "sort": "_id desc", "offset": "100"},
    {"limit": "0"},
    {"offset": "1000"},
]


@pytest.mark.parametrize("params", QUERIES, ids=[json.dumps(q, ensure_ascii=False)[:60] for q in QUERIES])
def test_parameters_select_what_datastore_search_returns(hub: LiveHub, params: dict[str, str]) -> None:
    rid = parcels_rid(hub)
    found = search(hub, resource_id=rid, records_format="lists", **{"limit": "32000", **params})
    # datastore_search echoes a ``fields`` parameter in place of its field list
    names = params["fields"].split(",") if "fields" in params else [f["id"] for f in found["fields"]]
    r = dump(hub.base, rid, format="json", **params)
    assert r.status_code == 200, r.text
    body = json.loads(r.content)
    assert [f["id"] for f in body["fields"]] == names
    assert body["records"] == found["records"]
    if "limit" not in params and "offset" not in params:
        assert 0 < len(body["records"]) < 250  # the parameters did select
    rows = read_csv(dump(hub.base, rid, **params).content)
    assert rows[0] == names
    assert len(rows) - 1 == len(found["records"])
    for cells, rec in zip(rows[1:], found["records"], strict=True):
        assert all(same(c, v) for c, v in zip(cells, rec, strict=True))
    assert len(read_xml(dump(hub.base, rid, format="xml", **params).content)) == len(found["records"])


def test_a_selection_has_its_etag_head_gzip_and_the_hubs_formats(hub: LiveHub) -> None:
    rid = parcels_rid(hub)
    params = {"filters": json.dumps({"land_use": "ODT"}), "limit": "7"}
    first = dump(hub.base, rid, **params)
    etag = first.headers["etag"]
    assert etag != dump(hub.base, rid, **{**params, "limit": "8"}).headers["etag"]
    assert etag != dump(hub.base, rid).headers["etag"]
    again = httpx.get(f"{hub.base}/datastore/dump/{rid}", params=params, headers={"If-None-Match": etag})
    assert again.status_code == 304
    head = httpx.head(f"{hub.base}/datastore/dump/{rid}", params=params)
    assert head.status_code == 200
    assert head.headers["content-type"] == "text/csv; charset=utf-8"
    assert head.content == b""
    with httpx.stream(
        "GET", f"{hub.base}/datastore/dump/{rid}", params=params, headers={"Accept-Encoding": "gzip"}
    ) as zipped:
        raw = b"".join(zipped.iter_raw())
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == first.content
    table = pq.read_table(io.BytesIO(dump(hub.base, rid, format="parquet", **params).content))
    assert table.column_names[:2] == ["_id", "parcel_id"]
    assert table.column("_id").to_pylist() == [1, 4, 7, 10, 13, 16, 19]
    lines = dump(hub.base, rid, format="jsonl", **params).text.splitlines()
    assert [json.loads(x)["_id"] for x in lines] == [1, 4, 7, 10, 13, 16, 19]


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"filters": json.dumps({"nope": 1})}, {"filters": ['invalid value "nope"']}),
        ({"fields": "parcel_id,nope"}, {"fields": ['invalid value "nope"']}),
        ({"sort": "nope desc"}, {"sort": ['invalid value "nope"']}),
        ({"sort": "parcel_id sideways"}, {"sort": ['invalid value "parcel_id sideways"']}),
        ({"q": json.dumps({"nope": "x"})}, {"q": ['invalid value "nope"']}),
        ({"filters": "[1"}, {"filters": ["Could not parse as valid JSON"]}),
        ({"filters": json.dumps({"land_use": {"like": "O%"}})}, {"filters": ['invalid operator "like"']}),
        ({"limit": "-1"}, {"limit": ["Must be a natural number"]}),
        ({"offset": "ten"}, {"offset": ["Invalid integer"]}),
        ({"distinct": "maybe"}, {"distinct": ["Value must be one of: true, false"]}),
    ],
)
def test_invalid_parameters_are_datastore_searchs_409(
    hub: LiveHub, params: dict[str, str], errors: dict[str, list[str]]
) -> None:
    rid = parcels_rid(hub)
    r = dump(hub.base, rid, **params)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"] == errors
    ckan = httpx.get(f"{hub.base}/api/3/action/datastore_search", params={"resource_id": rid, **params})
    assert ckan.status_code == 409
    assert {k: v for k, v in ckan.json()["error"].items() if k != "__type"} == errors


def test_a_value_of_the_wrong_type_is_a_409_query_error(hub: LiveHub) -> None:
    rid = parcels_rid(hub)
    params = {"filters": json.dumps({"area_m2": "abc"})}
    r = dump(hub.base, rid, **params)
    assert r.status_code == 409, r.text
    assert list(r.json()["errors"]) == ["query"]
    ckan = httpx.get(f"{hub.base}/api/3/action/datastore_search", params={"resource_id": rid, **params})
    assert ckan.status_code == 409
    assert "query" in ckan.json()["error"]


# --- a large table -----------------------------------------------------------------------------------

BIG_ROWS = 1_200_000


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """A live hub whose land.parcels has 1.2 million rows (about 90 MB of CSV)."""
    port = free_port()
    settings = hub_settings(tmp_path_factory.mktemp("big"), port)
    build_hub(settings, tables=False)
    n = BIG_ROWS
    table = pa.table(
        {
            "parcel_id": pa.array([f"P{i:08d}" for i in range(n)]),
            "ward_code": pa.array([f"{26734 + i % 5:05d}" for i in range(n)]),
            "area_m2": pa.array([100.0 + i % 997 for i in range(n)], pa.float64()),
            "land_use": pa.array(["ODT" if i % 3 == 0 else "LUC" for i in range(n)]),
            "owner_note": pa.array(["Nguyễn Văn Đạt" if i % 2 else None for i in range(n)]),
            "geometry": pa.array([f"POINT(105.{i % 1000} 21.{i % 777})" for i in range(n)]),
        }
    )
    # written as an ingest run writes: batches of 65,536 rows (row groups), files of 300,000 rows
    table = pa.Table.from_batches(table.to_batches(max_chunksize=65_536))
    make_table(settings, "land.parcels", table, target_rows=300_000)
    del table
    tokens = make_users(settings)
    with live_server(settings, port=port) as base:
        yield LiveHub(settings, base, tokens["editor"], tokens["member"], tokens["outsider"], tokens["admin"])
    dispose_engines()


def _streamed(base: str, rid: str, **params: Any) -> tuple[int, int, int]:
    """Stream one dump: its lines, bytes, and how far this process's memory (the server's) grew."""
    peak = before = _rss()
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    lines = size = 0
    try:
        with httpx.stream(
            "GET",
            f"{base}/datastore/dump/{rid}",
            params=params,
            headers={"Accept-Encoding": "identity"},
            timeout=300,
        ) as r:
            assert r.status_code == 200, r.read()
            for chunk in r.iter_raw(1 << 16):
                lines += chunk.count(b"\n")
                size += len(chunk)
    finally:
        done.set()
        watcher.join()
    return lines, size, peak - before


@pytest.mark.slow
def test_a_large_table_streams_in_constant_memory(big: LiveHub) -> None:
    pkg = httpx.get(f"{big.base}/api/3/action/package_show", params={"id": "land-parcels"}).json()["result"]
    rid = next(r["id"] for r in pkg["resources"] if r["datastore_active"])
    assert dump(big.base, rid, limit=3).status_code == 200  # modules loaded, query workers up
    assert dump(big.base, rid, format="json", limit=3).status_code == 200
    lines, size, grew = _streamed(big.base, rid)  # the whole snapshot, from its files
    assert lines == BIG_ROWS + 1
    assert size > 60 << 20
    assert grew < 48 << 20, f"the server grew {grew >> 20} MB for {size >> 20} MB of CSV"
    selected = sum(1 for i in range(BIG_ROWS) if i % 3 != 0 and i % 5 != 4)
    lines, size, grew = _streamed(
        big.base,
        rid,
        filters=json.dumps({"land_use": "LUC", "ward_code": ["26734", "26735", "26736", "26737"]}),
        sort="area_m2 desc",
    )
    assert lines == selected + 1  # through a query worker
    assert grew < 48 << 20, f"the server grew {grew >> 20} MB for {size >> 20} MB of CSV"
    lines, size, grew = _streamed(big.base, rid, format="json", q="nguyen", fields="_id,parcel_id,owner_note")
    assert lines == BIG_ROWS // 2 + 3  # two head lines, one line per record, the tail
    assert grew < 48 << 20, f"the server grew {grew >> 20} MB for {size >> 20} MB of JSON"


@pytest.mark.slow
def test_a_client_that_leaves_frees_the_query_worker(big: LiveHub) -> None:
    pkg = httpx.get(f"{big.base}/api/3/action/package_show", params={"id": "land-parcels"}).json()["result"]
    rid = next(r["id"] for r in pkg["resources"] if r["datastore_active"])
    for _ in range(big.settings.query_workers + 2):
        with httpx.stream("GET", f"{big.base}/datastore/dump/{rid}", params={"sort": "parcel_id desc"}) as r:
            assert r.status_code == 200
            next(r.iter_raw(1 << 16))
    # every worker was handed back: a query still runs at once
    started = time.monotonic()
    last = dump(big.base, rid, limit=1, sort="parcel_id desc", fields="parcel_id")
    assert time.monotonic() - started < 10
    assert read_csv(last.content) == [["parcel_id"], [f"P{BIG_ROWS - 1:08d}"]]


# --- access, as an attacker meets it -----------------------------------------------------------------

SECRET_MARKERS = ("Nguyễn Văn", "REG-0")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MatrixWorld, str]]:
    """Three datasets of Sở Tư pháp (open, shared with Sở GD&ĐT, internal) and a caller of each kind."""
    tmp = tmp_path_factory.mktemp("dumpsec")
    port = free_port()
    settings = Settings(
        data_dir=tmp / "data",
        catalog_dir=tmp / "catalog",
        site_url=f"http://127.0.0.1:{port}",
        rate_limit_anonymous_per_minute=0,
        rate_limit_client_per_minute=0,
    )
    settings.ensure_dirs()
    w = build_matrix_world(settings)
    with live_server(settings, port=port) as base:
        yield w, base
    dispose_engines()


def _entries(settings: Settings, dataset_id: str, after: int) -> list[AuditEntry]:
    with session_scope(settings) as s:
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.seq > after, AuditEntry.dataset_id == dataset_id)
                .order_by(AuditEntry.seq)
            ).all()
        )


def _last_seq(settings: Settings) -> int:
    with session_scope(settings) as s:
        return int(s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0)


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 403, r.text[:300]
    assert r.headers["content-type"] == "application/problem+json"
    for marker in SECRET_MARKERS:
        assert marker not in r.text


@pytest.mark.parametrize("sharing", ["shared", "internal"])
@pytest.mark.parametrize(
    "caller", ["anonymous", "invalid-token", "other-client", "other-member", "no-org-user"]
)
def test_others_are_refused_and_audited(world: tuple[MatrixWorld, str], sharing: str, caller: str) -> None:
    w, base = world
    rid = datastore_resource_id(w.dataset_ids[sharing])
    token = w.tokens[caller]
    since = _last_seq(w.settings)
    for params in (
        {},
        {"format": "json"},
        {"format": "xml", "limit": "1"},
        {"filters": json.dumps({"full_name": "Nguyễn Văn 1"})},
        # a column that does not exist is refused like one that does: nothing about the table leaks
        {"filters": json.dumps({"nope": 1})},
        {"q": "Nguyễn", "fields": "full_name"},
    ):
        _refused(dump(base, rid, token, **params))
    entries = _entries(w.settings, w.dataset_ids[sharing], since)
    assert [(e.action, e.outcome) for e in entries] == [("download", "denied")] * 6
    assert entries[3].details == {"resource_id": rid, "dump": {"filters": {"full_name": "Nguyễn Văn 1"}}}


def test_a_granted_agency_reads_and_each_dump_is_audited_with_its_rows(
    world: tuple[MatrixWorld, str],
) -> None:
    w, base = world
    ds_id = w.dataset_ids["shared"]
    rid = datastore_resource_id(ds_id)
    consumer = w.tokens["consumer-client"]
    since = _last_seq(w.settings)
    whole = dump(base, rid, consumer)
    assert whole.status_code == 200
    assert whole.headers["cache-control"].startswith("private")
    assert len(read_csv(whole.content)) == 13
    some = json.loads(
        dump(base, rid, consumer, format="json", filters=json.dumps({"ward_code": "26734"})).content
    )
    assert len(some["records"]) == 4
    page = read_xml(dump(base, rid, consumer, format="xml", sort="_id desc", limit="3").content)
    assert [row["_id"] for row in page] == [12, 11, 10]
    entries = _entries(w.settings, ds_id, since)
    assert [(e.action, e.outcome, e.rows, e.client_id) for e in entries] == [
        ("download", "allowed", 12, "consumer-client"),
        ("download", "allowed", 4, "consumer-client"),
        ("download", "allowed", 3, "consumer-client"),
    ]
    assert entries[1].grant_id is not None
    assert entries[1].details == {
        "resource_id": rid,
        "dump": {"filters": {"ward_code": "26734"}},
        "complete": True,
    }
    assert entries[2].details["dump"] == {"sort": ["_id desc"], "limit": 3}


def test_a_revoked_grant_closes_the_dump(world: tuple[MatrixWorld, str]) -> None:
    w, base = world
    ds_id = w.dataset_ids["shared"]
    rid = datastore_resource_id(ds_id)
    consumer = w.tokens["consumer-client"]
    assert dump(base, rid, consumer, limit="1").status_code == 200
    with session_scope(w.settings) as s:
        g = s.scalar(select(Grant).where(Grant.dataset_id == ds_id, Grant.revoked_at.is_(None)))
        assert g is not None
        grants.revoke(s, SYSTEM, g.id, reason="test")
    since = _last_seq(w.settings)
    try:
        _refused(dump(base, rid, consumer))
        _refused(dump(base, rid, consumer, format="json", limit="1"))
        entries = _entries(w.settings, ds_id, since)
        assert [(e.action, e.outcome, e.client_id) for e in entries] == [
            ("download", "denied", "consumer-client")
        ] * 2
    finally:
        with session_scope(w.settings) as s:
            grants.create(
                s,
                SYSTEM,
                dataset="civil_status.births",
                consumer_org="so-gddt",
                purpose="Tuyển sinh đầu cấp",
                legal_basis="Nghị định 194/2025/NĐ-CP Điều 16",
            )


def test_an_invalid_query_of_an_allowed_reader_is_audited_as_an_error(world: tuple[MatrixWorld, str]) -> None:
    w, base = world
    ds_id = w.dataset_ids["internal"]
    rid = datastore_resource_id(ds_id)
    owner = w.tokens["owner-member"]
    since = _last_seq(w.settings)
    r = dump(base, rid, owner, filters=json.dumps({"nope": 1}))
    assert r.status_code == 409
    assert r.json()["errors"] == {"filters": ['invalid value "nope"']}
    entries = _entries(w.settings, ds_id, since)
    assert [(e.action, e.outcome, e.reason) for e in entries] == [("download", "error", "invalid field")]


def test_open_data_is_public_and_not_audited(world: tuple[MatrixWorld, str]) -> None:
    w, base = world
    ds_id = w.dataset_ids["open"]
    since = _last_seq(w.settings)
    r = dump(base, datastore_resource_id(ds_id), format="json", limit="2")
    assert r.status_code == 200
    assert r.headers["cache-control"].startswith("public")
    assert len(json.loads(r.content)["records"]) == 2
    assert _entries(w.settings, ds_id, since) == []
