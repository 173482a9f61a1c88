"""Releases under their owner's rights: a release reads only what the organization owning its dataset
may read, and another organization's shared data only under a grant that allows publication. The check
runs at definition and again at every build (a revoked grant stops the next version); every decision
is in the audit log."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from hub.auth import grants
from hub.auth.models import AuditEntry
from hub.auth.principal import SYSTEM
from hub.db import session_scope
from hub.errors import PublishError
from hub.publish.build import build_release
from hub.publish.models import Release
from hub.runtime import Hub
from hub.settings import Settings
from hub.testing.live import live_server
from tests.publish.test_publish_api import _client_token, _live_settings

pytestmark = pytest.mark.integration

# an editor of the land department publishes, from its own parcels, the registration numbers of births
# (the leak: another agency's dataset named in a release's SQL)
LEAK = {
    "dataset": "land.parcels",
    "id": "borrowed-births",
    "title": {"vi": "Mượn dữ liệu khai sinh"},
    "sql": "SELECT b.ward_code, count(*) AS births FROM civil_status.births AS b GROUP BY 1",
    "person_count": "births",
}


def _audit(settings: Settings, action: str, outcome: str) -> list[AuditEntry]:
    with session_scope(settings) as s:
        rows = s.scalars(
            select(AuditEntry).where(AuditEntry.action == action, AuditEntry.outcome == outcome)
        ).all()
        s.expunge_all()
        return list(rows)


def _grant(settings: Settings, *, publication: bool) -> str:
    with session_scope(settings) as s:
        g = grants.create(
            s,
            SYSTEM,
            dataset="civil_status.births",
            consumer_org="so-nong-nghiep-moi-truong",
            purpose="Thống kê dân số theo thửa đất / population statistics",
            legal_basis="Nghị định 194/2025/NĐ-CP Điều 16",
            allow_publication=publication,
        )
        return g.id


def test_a_release_may_read_another_agencys_data_only_under_a_publication_grant(
    publish_settings: Settings,
) -> None:
    settings, port = _live_settings(publish_settings)
    land_editor = _client_token(settings, "so-nong-nghiep-moi-truong", "catalog:read catalog:write")
    auth = {"Authorization": f"Bearer {land_editor}"}
    with live_server(settings, port=port) as base, httpx.Client(timeout=60) as client:
        refused = client.post(f"{base}/api/v1/releases", json=LEAK, headers=auth)
        assert refused.status_code == 422, refused.text
        assert "may not read civil_status.births" in refused.json()["detail"]
        assert "no active grant" in refused.json()["detail"]
        denied = _audit(settings, "release.read", "denied")
        assert len(denied) == 1
        assert denied[0].subject == "release:land.parcels/borrowed-births"

        _grant(settings, publication=False)  # a grant to read is not a grant to publish
        again = client.post(f"{base}/api/v1/releases", json=LEAK, headers=auth)
        assert again.status_code == 422
        assert "allows publication" in again.json()["detail"]

        grant_id = _grant(settings, publication=True)
        created = client.post(f"{base}/api/v1/releases", json=LEAK, headers=auth)
        assert created.status_code == 201, created.text
        built = client.post(f"{base}/api/v1/releases/land.parcels/borrowed-births/build", headers=auth)
        assert built.status_code == 200, built.text
        assert built.json()["versions"][0]["version"] == 1
        allowed = _audit(settings, "release.read", "allowed")
        assert any(e.grant_id == grant_id and e.rows is not None for e in allowed)

    # the grant is revoked: the next build reads nothing and says why
    with session_scope(settings) as s:
        grants.revoke(s, SYSTEM, grant_id, reason="hết mục đích / purpose ended")
    with Hub(settings) as hub, pytest.raises(PublishError, match=r"may not read civil_status\.births"):
        build_release(hub, "land.parcels", "borrowed-births", triggered_by="test")
    with session_scope(settings) as s:
        rel = s.scalar(select(Release).where(Release.name == "borrowed-births"))
        assert rel is not None
        assert "may not read civil_status.births" in (rel.last_error or "")
        assert len(rel.versions) == 1
    assert len(_audit(settings, "release.read", "denied")) == 3


def test_a_release_reads_its_own_agencys_data_and_open_data(publish_hub: Hub) -> None:
    settings = publish_hub.settings
    result = build_release(publish_hub, "civil_status.births", "births-by-ward-month", triggered_by="test")
    version = result.current
    assert version is not None
    assert version.rows > 0
    assert set(version.sources) == {"civil_status.births"}
    # the audit says which snapshot the release read, and how many rows came out
    entries = _audit(settings, "release.read", "allowed")
    assert entries
    assert entries[-1].snapshot_id == version.sources["civil_status.births"]


def test_sql_doors_read_releases_and_tables_as_of_a_snapshot(publish_hub: Hub) -> None:
    """``releases."<id>"`` reads an open release's latest version (anyone); ``AT (VERSION => id)`` and
    ``AT (TIMESTAMP => '...')`` read a table as it was."""
    import pyarrow as pa

    from hub.auth.principal import ANONYMOUS, SYSTEM
    from hub.errors import QueryError
    from hub.sql import door
    from hub.warehouse.tables import Warehouse

    settings = publish_hub.settings
    build_release(publish_hub, "civil_status.births", "births-by-ward-month", triggered_by="test")
    wh = Warehouse(settings)
    first = wh.current_snapshot_id("civil_status.births")
    first_rows = wh.table("civil_status.births").scan().to_arrow().num_rows
    table = wh.table("civil_status.births")
    table.append(table.scan(limit=3).to_arrow().cast(table.schema().as_arrow()))
    publish_hub.datastore.forget()
    with session_scope(settings) as s:
        rel, _, prepared = door.run(
            publish_hub, s, ANONYMOUS, 'SELECT sum(births) AS n FROM releases."births-by-ward-month"',
            door.API_QUERY,
        )  # fmt: skip
        assert rel.column("n").to_pylist()[0] > 0
        assert list(prepared.snapshots) == ["civil_status.births/births-by-ward-month"]
        same, _, _ = door.run(
            publish_hub, s, ANONYMOUS,
            'SELECT count(*) AS n FROM releases."civil_status.births/births-by-ward-month"', door.API_QUERY,
        )  # fmt: skip
        assert same.num_rows == 1
        now, _, _ = door.run(
            publish_hub, s, SYSTEM,
            f"SELECT (SELECT count(*) FROM civil_status.births) AS now, "
            f"(SELECT count(*) FROM civil_status.births AT (VERSION => {first})) AS then",
            door.API_QUERY,
        )  # fmt: skip
        assert now.to_pylist() == [{"now": first_rows + 3, "then": first_rows}]
        with pytest.raises(QueryError, match="does not exist or is not readable"):
            door.run(publish_hub, s, ANONYMOUS, "SELECT count(*) FROM civil_status.births", door.API_QUERY)
        with pytest.raises(QueryError, match="time travel is AT"):
            door.run(
                publish_hub, s, SYSTEM, "SELECT 1 FROM civil_status.births AT (STREAM => 1)", door.API_QUERY
            )
    assert isinstance(rel, pa.Table)
