"""Write actions: who may write, CKAN's replace/patch semantics, and what readers see afterwards."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveHub

pytestmark = pytest.mark.integration


def post(hub: LiveHub, action: str, token: str | None, **data: Any) -> httpx.Response:
    headers = {"Authorization": token} if token else {}
    return httpx.post(f"{hub.base}/api/action/{action}", json=data, headers=headers, timeout=30)


def result(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()["result"]


def test_create_update_patch_delete(hub: LiveHub) -> None:
    assert (
        post(hub, "package_create", None, name="moi", owner_org="so-tai-nguyen-moi-truong").status_code == 403
    )
    r = post(hub, "package_create", hub.editor_token, name="Bad Name", owner_org="so-tai-nguyen-moi-truong")
    assert r.status_code == 409
    assert "name" in r.json()["error"]
    r = post(
        hub, "package_create", hub.editor_token, name="land-parcels", owner_org="so-tai-nguyen-moi-truong"
    )
    assert r.json()["error"]["name"] == ["That URL is already in use."]
    r = post(hub, "package_create", hub.editor_token, name="x-y", owner_org="khong-co")
    assert r.json()["error"]["owner_org"] == ["Organization does not exist"]
    r = post(
        hub,
        "package_create",
        hub.editor_token,
        name="x-y",
        owner_org="so-tai-nguyen-moi-truong",
        extras=[{"key": "title", "value": "x"}],
    )
    assert r.status_code == 409
    pkg = result(
        post(
            hub,
            "package_create",
            hub.editor_token,
            name="quy-hoach",
            owner_org="so-tai-nguyen-moi-truong",
            title="Quy hoạch sử dụng đất",
            notes="Bản đồ quy hoạch",
            tag_string="quy hoạch,đất đai",
            extras=[{"key": "frequency", "value": "yearly"}],
            groups=[{"name": "dat-dai"}],
            license_id="cc-by",
            resources=[{"url": "https://example.org/qh.pdf", "name": "Quyết định"}],
            spatial_code="26734",
        )
    )
    assert pkg["num_tags"] == 2
    assert pkg["private"] is False
    assert pkg["spatial_code"] == "26734"  # custom fields are echoed
    assert pkg["resources"][0]["format"] == "PDF"
    assert pkg["creator_user_id"] is not None
    found = result(post(hub, "package_search", None, q="quy hoach su dung dat"))
    assert [p["name"] for p in found["results"]] == ["quy-hoach"]
    same = post(hub, "package_update", hub.editor_token, **{k: v for k, v in pkg.items() if k != "resources"})
    assert "changed_entities" not in same.json()
    assert result(same)["metadata_modified"] == pkg["metadata_modified"]  # a no-op update changes nothing
    patched = post(hub, "package_patch", hub.editor_token, id="quy-hoach", notes="Đã sửa")
    assert patched.json()["changed_entities"] == {"packages": [pkg["id"]]}
    after = result(patched)
    assert after["notes"] == "Đã sửa"
    assert after["title"] == "Quy hoạch sử dụng đất"
    assert after["metadata_modified"] > pkg["metadata_modified"]
    assert [r["id"] for r in after["resources"]] == [r["id"] for r in pkg["resources"]]
    replaced = result(
        post(
            hub,
            "package_update",
            hub.editor_token,
            id=pkg["id"],
            name="quy-hoach",
            owner_org="so-tai-nguyen-moi-truong",
            private=True,
        )
    )
    assert replaced["notes"] == ""
    assert replaced["tags"] == []
    assert replaced["private"] is True
    assert len(replaced["resources"]) == 1  # CKAN 2.12: a missing resources key keeps them
    assert post(hub, "package_show", None, id="quy-hoach").status_code == 403
    assert post(hub, "package_delete", hub.outsider_token, id="quy-hoach").status_code == 403
    assert result(post(hub, "package_delete", hub.editor_token, id="quy-hoach")) is None
    assert post(hub, "package_show", hub.editor_token, id="quy-hoach").status_code == 404
    assert (
        result(post(hub, "package_search", hub.editor_token, q="quy hoach", include_private=True))["count"]
        == 0
    )


def test_catalog_dataset_sharing_is_the_catalogs(hub: LiveHub) -> None:
    r = post(hub, "package_patch", hub.editor_token, id="land-parcels", private=True)
    assert r.status_code == 409
    assert r.json()["error"]["private"][0].startswith("The sharing class of a catalog dataset")
    ok = result(post(hub, "package_patch", hub.editor_token, id="land-parcels", version="2025"))
    assert ok["version"] == "2025"
    assert ok["resources"][0]["datastore_active"] is True
    ds_res = ok["resources"][0]["id"]
    r = post(hub, "resource_delete", hub.editor_token, id=ds_res)
    assert r.status_code == 409
    member = post(hub, "package_patch", hub.member_token, id="land-parcels", version="x")
    assert member.status_code == 403


def test_resources(hub: LiveHub) -> None:
    res = result(
        post(
            hub,
            "resource_create",
            hub.editor_token,
            package_id="land-parcels",
            url="https://example.org/a.csv",
            name="A",
            description="mô tả",
            extra_key="giữ",
        )
    )
    assert res["extra_key"] == "giữ"
    assert res["format"] == "CSV"
    assert res["url_type"] is None
    patched = result(post(hub, "resource_patch", hub.editor_token, id=res["id"], name="B"))
    assert patched["name"] == "B"
    assert patched["description"] == "mô tả"
    assert patched["extra_key"] == "giữ"
    updated = result(
        post(hub, "resource_update", hub.editor_token, id=res["id"], url="https://example.org/b.json")
    )
    assert updated["name"] is None  # resource_update replaces
    assert updated["format"] == "JSON"
    assert "extra_key" not in updated
    assert post(hub, "resource_update", hub.member_token, id=res["id"], url="x").status_code == 403
    assert result(post(hub, "resource_delete", hub.editor_token, id=res["id"])) is None
    assert post(hub, "resource_show", None, id=res["id"]).status_code == 404


def test_organizations(hub: LiveHub) -> None:
    r = post(hub, "organization_create", hub.editor_token, name="so-y-te")
    assert r.status_code == 403
    org = result(
        post(
            hub,
            "organization_create",
            hub.admin_token,
            name="so-y-te",
            title="Sở Y tế",
            extras=[{"key": "ma", "value": "SYT"}],
        )
    )
    assert org["title"] == "Sở Y tế"
    assert org["extras"] == [{"key": "ma", "value": "SYT"}]
    assert post(hub, "organization_create", hub.admin_token, name="so-y-te").status_code == 409
    upd = result(post(hub, "organization_update", hub.admin_token, id="so-y-te", title="Sở Y tế tỉnh"))
    assert upd["title"] == "Sở Y tế tỉnh"
    assert post(hub, "organization_update", hub.editor_token, id="so-y-te", title="x").status_code == 403
    assert "so-y-te" in result(post(hub, "organization_list", None))
