"""The privacy guard on a live hub: uploads to open datasets are scanned (personal ids, names of people
the warehouse holds) and refused with the row and column, in the audit log; a dataset whose contract has
personal data cannot be made open through CKAN or ``POST /api/v1/datasets``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pytest
import requests
import yaml
from sqlalchemy import select

from hub.auth.models import AuditEntry
from hub.catalog.loader import sync_catalog
from hub.db import dispose_engines, session_scope
from hub.settings import Settings
from hub.testing.live import free_port, live_server
from tests.api.support import hub_settings, make_table

CHILD = "Nguyễn Thị Hồng Nhung"  # a child of the births table
ID = "079203001234"  # a personal id: province 079, century/sex 2, born 2003
CATALOG: dict[str, dict[str, Any]] = {
    "so-tu-phap": {
        "births": {"id": "civil_status.births", "sharing": "shared", "contract": "civil_status/births.v1"},
    },
    "so-gddt": {
        "schools": {"id": "education.schools", "sharing": "open", "contract": "education/schools.v1"},
        "enrolment": {"id": "education.enrolment", "sharing": "shared", "contract": "education/enrolment.v1"},
    },
}


@dataclass
class Live:
    settings: Settings
    base: str
    editor: str  # editor of so-gddt
    admin: str  # sysadmin, with connectors:manage

    def action(self, name: str, token: str, **kwargs: Any) -> requests.Response:
        return requests.post(f"{self.base}/api/3/action/{name}", headers={"Authorization": token}, **kwargs)

    def audit(self, action: str) -> list[AuditEntry]:
        with session_scope(self.settings) as s:
            return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _build(settings: Settings) -> tuple[str, str]:
    from hub.auth.tokens import issue_api_token
    from hub.auth.users import add_user, set_role

    for org, datasets in CATALOG.items():
        (settings.catalog_dir / org).mkdir(parents=True, exist_ok=True)
        (settings.catalog_dir / org / "organization.yaml").write_text(
            yaml.safe_dump({"name": org, "title": {"vi": org}}), encoding="utf-8"
        )
        for name, spec in datasets.items():
            spec = {**spec, "title": {"vi": name}}
            (settings.catalog_dir / org / f"{name}.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    with session_scope(settings) as s:
        sync_catalog(s, settings)
    names = [CHILD, "Trần Văn Bình", "Lê Na"]
    make_table(
        settings,
        "civil_status.births",
        pa.table({"registration_number": [f"KS-{i}" for i in range(3)], "child_full_name": names}),
    )
    scope = "catalog:read catalog:write"
    with session_scope(settings) as s:
        editor = add_user(s, "editor", None)
        set_role(s, "editor", "so-gddt", "editor")
        admin = add_user(s, "admin", None, sysadmin=True)
        editor_token, _ = issue_api_token(s, settings, editor, "t", scope=scope)
        admin_token, _ = issue_api_token(s, settings, admin, "t", scope=f"{scope} connectors:manage admin")
    return editor_token, admin_token


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    port = free_port()
    settings = hub_settings(tmp_path_factory.mktemp("scan"), port)
    editor, admin = _build(settings)
    with live_server(settings, port=port) as base:
        yield Live(settings, base, editor, admin)
    dispose_engines()


def _csv(rows: list[list[str]]) -> bytes:
    return "\n".join(",".join(r) for r in rows).encode("utf-8")


def _upload(live: Live, package: str, filename: str, content: bytes) -> requests.Response:
    return live.action(
        "resource_create",
        live.editor,
        data={"package_id": package, "name": filename},
        files={"upload": (filename, content)},
    )


def _resources(live: Live, package: str) -> list[str]:
    r = requests.get(f"{live.base}/api/3/action/package_show", params={"id": package})
    return [res["name"] for res in r.json()["result"]["resources"]]


def test_personal_id_refused_with_row_and_column(live: Live) -> None:
    before = len(live.audit("resource.upload"))
    content = _csv([["ma_truong", "ghi_chu", "cccd"], ["T01", "tốt", ""], ["T02", "", f"số {ID}"]])
    r = _upload(live, "education-schools", "hoc-sinh.csv", content)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["__type"] == "Validation Error"
    message = error["upload"][0]
    assert "row 3, column cccd: a 12-digit personal id" in message
    assert ID not in message
    assert "hoc-sinh.csv" not in _resources(live, "education-schools")
    entries = live.audit("resource.upload")
    assert len(entries) == before + 1  # committed although the request failed
    entry = entries[-1]
    assert entry.outcome == "denied"
    assert entry.dataset_id is not None
    assert entry.details is not None
    assert entry.details["hits"] == [{"kind": "personal_id", "row": 3, "column": "cccd"}]
    assert not list((live.settings.data_dir / "uploads").rglob("*.part"))


def test_warehouse_name_refused_in_a_workbook(live: Live) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Lớp 1"
    ws.append(["STT", "Học sinh", "Ghi chú"])
    ws.append([1, "Phạm Minh", "chuyển trường"])
    ws.append([2, "NGUYEN THI HONG NHUNG", ""])  # no accents, upper case: still the child's name
    buf = io.BytesIO()
    wb.save(buf)
    r = _upload(live, "education-schools", "lop-1.xlsx", buf.getvalue())
    assert r.status_code == 409, r.text
    message = r.json()["error"]["upload"][0]
    assert (
        "sheet Lớp 1, row 3, column Học sinh, cell B3: the name of a person held in the warehouse" in message
    )
    assert live.audit("resource.upload")[-1].details["hits"][0]["kind"] == "name"  # type: ignore[index]


def test_clean_upload_accepted(live: Live) -> None:
    content = _csv(
        [["ma_truong", "dia_chi", "so_hoc_sinh"], ["T01", "12 đường Lê Lợi", "450"], ["T02", "Nhung", "9"]]
    )
    r = _upload(live, "education-schools", "truong.csv", content)
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert res["url_type"] == "upload"
    assert requests.get(res["url"]).content == content
    entry = live.audit("resource.upload")[-1]
    assert (entry.outcome, entry.details) == (
        "allowed",
        {"file": "truong.csv", "sha256": res["hash"], "size": len(content), "scanned": True},
    )


def test_upload_to_a_shared_dataset_is_not_scanned(live: Live) -> None:
    content = _csv([["ho_ten", "cccd"], [CHILD, ID]])
    r = _upload(live, "education-enrolment", "noi-bo.csv", content)
    assert r.status_code == 200, r.text
    entry = live.audit("resource.upload")[-1]
    assert entry.outcome == "allowed"
    assert entry.details is not None
    assert (entry.details["file"], entry.details["scanned"]) == ("noi-bo.csv", False)


def test_package_made_public_with_a_held_upload_refused(live: Live) -> None:
    r = live.action(
        "package_create", live.editor, json={"name": "ds-rieng", "owner_org": "so-gddt", "private": True}
    )
    assert r.status_code == 200, r.text
    assert _upload(live, "ds-rieng", "rieng.csv", _csv([["cccd"], [ID]])).status_code == 200
    r = live.action("package_patch", live.editor, json={"id": "ds-rieng", "private": False})
    assert r.status_code == 409, r.text
    assert "rieng.csv holds personal data" in r.json()["error"]["upload"][0]
    assert (
        requests.get(f"{live.base}/api/3/action/package_show", params={"id": "ds-rieng"}).status_code == 403
    )


def test_package_patch_refuses_to_open_births(live: Live) -> None:
    before = len(live.audit("dataset.update"))
    r = live.action("package_patch", live.admin, json={"id": "civil_status-births", "private": False})
    assert r.status_code == 409, r.text
    message = r.json()["error"]["private"][0]
    assert message.startswith("civil_status.births cannot be open")
    for field in ("child_full_name", "child_personal_id", "ethnicity"):
        assert field in message
    denied = [e for e in live.audit("dataset.update")[before:] if e.outcome == "denied"]
    assert len(denied) == 1


def test_package_create_refuses_a_public_package_of_births(live: Live) -> None:
    body = {
        "name": "khai-sinh-mo",
        "owner_org": "so-gddt",
        "extras": [{"key": "contract", "value": "civil_status/births.v1"}],
    }
    r = live.action("package_create", live.editor, json=body)
    assert r.status_code == 409, r.text
    assert "mother_full_name" in r.json()["error"]["private"][0]
    r = live.action("package_create", live.editor, json={**body, "private": True})
    assert r.status_code == 200, r.text  # private, it may hold them


def test_v1_datasets_refuses_an_open_dataset_of_births(live: Live) -> None:
    body = {
        "id": "civil_status.births_open",
        "organization": "so-tu-phap",
        "title": {"vi": "Khai sinh"},
        "sharing": "open",
        "contract": "civil_status/births.v1",
    }
    r = requests.post(f"{live.base}/api/v1/datasets", json=body, headers={"Authorization": live.admin})
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert "civil_status.births_open cannot be open" in problem["detail"]
    assert "father_personal_id" in problem["errors"]["sharing"][0]
    r = requests.post(
        f"{live.base}/api/v1/datasets",
        json={**body, "sharing": "shared"},
        headers={"Authorization": live.admin},
    )
    assert r.status_code == 201, r.text


def test_scan_of_a_large_upload_is_quick(tmp_path: Path) -> None:
    """30 MB of text and numbers with a name of the warehouse on the last line: seconds, not minutes."""
    import time

    from hub.catalog.privacy import NameSet, name_key
    from hub.catalog.privacy_scan import scan_file

    path = tmp_path / "big.csv"
    line = "12345,đường Lê Lợi phường Bến Nghé,26734,1234.50,ghi chú số 4 của Trần Hưng Đạo\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,dia_chi,ma_xa,so_tien,ghi_chu\n")
        f.write(line * (30_000_000 // len(line.encode())))
        f.write(f"9,x,1,2,{CHILD}\n")
    names = NameSet.of(k for k in (name_key(f"Nguyễn Văn {i}") for i in range(50_000)) if k)
    names = NameSet.of([*names.names.to_pylist(), "nguyen thi hong nhung"])
    start = time.monotonic()
    hits = scan_file(path, "big.csv", names)
    assert time.monotonic() - start < 60
    assert [(h.kind, h.column) for h in hits] == [("name", "ghi_chu")]
