"""The province of the access matrix: three agencies; the owner (Sở Tư pháp) has one dataset of each
sharing class, each with a warehouse table, quarantined rows and a run; the consumer (Sở GD&ĐT) holds
a grant on the shared one; the third agency (Sở Xây dựng) holds nothing. Callers: every role and token
kind, each with a token of the hub's issuer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import yaml

from hub.auth import grants, tokens, users
from hub.auth.principal import SYSTEM
from hub.catalog.ckan import sync_ckan
from hub.catalog.loader import sync_catalog
from hub.catalog.models import Dataset, Run
from hub.db import session_scope, utcnow
from hub.settings import Settings
from tests.auth.fake_idp import FakeIdP

OWNER, CONSUMER, OTHER = "so-tu-phap", "so-gddt", "so-xd"
SHARING = {
    "open": "civil_status.marriages",
    "shared": "civil_status.births",
    "internal": "civil_status.deaths",
}
CLIENT_SCOPE = "catalog:read datastore:read warehouse:query"


@dataclass
class MatrixWorld:
    settings: Settings
    dataset_ids: dict[str, str] = field(default_factory=dict)  # sharing -> id
    dataset_names: dict[str, str] = field(default_factory=dict)  # sharing -> CKAN name
    tokens: dict[str, str | None] = field(default_factory=dict)  # caller -> token


def _write_catalog(settings: Settings) -> None:
    folder = settings.catalog_dir
    for org, vi in ((OWNER, "Sở Tư pháp"), (CONSUMER, "Sở Giáo dục và Đào tạo"), (OTHER, "Sở Xây dựng")):
        (folder / org).mkdir(parents=True, exist_ok=True)
        (folder / org / "organization.yaml").write_text(
            yaml.safe_dump({"name": org, "title": {"vi": vi, "en": org}}, allow_unicode=True),
            encoding="utf-8",
        )
    for sharing, key in SHARING.items():
        domain, name = key.split(".")
        spec = {
            "id": key,
            "title": {"vi": f"Dữ liệu {name}", "en": name},
            "sharing": sharing,
            # an open dataset's contract may hold no direct or sensitive personal data (issue 11)
            "contract": "addresses/digital_addresses.v1" if sharing == "open" else f"{domain}/{name}.v1",
        }
        (folder / OWNER / f"{name}.yaml").write_text(
            yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8"
        )


def _commit(settings: Settings, key: str, table: pa.Table, *, quarantine: bool = False) -> int:
    from hub.warehouse.tables import Warehouse
    from hub.warehouse.writer import FileSink

    wh = Warehouse(settings)
    t = wh.ensure_table(key, table.schema, quarantine=quarantine)
    sink = FileSink(t, wh.data_dir(t), f"matrix-{key}-{quarantine}")
    sink.write(table)
    return wh.commit(t, add=sink.close())


def _rows(n: int) -> pa.Table:
    return pa.table(
        {
            "registration_number": pa.array([f"REG-{i:05d}" for i in range(n)]),
            "ward_code": pa.array([f"{26734 + i % 3:05d}" for i in range(n)]),
            "full_name": pa.array([f"Nguyễn Văn {i}" for i in range(n)]),
        }
    )


def _quarantine_rows(n: int) -> pa.Table:
    from hub.warehouse.quarantine import ERROR_TYPE, QUARANTINE_TABLE_SCHEMA

    return pa.table(
        {
            "run_id": pa.array(["run-1"] * n),
            "quarantined_at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
            "_hub_row": pa.array(list(range(n)), pa.int64()),
            "_hub_source": pa.array(["nguon.csv"] * n),
            "record": pa.array(['{"full_name": "Trần Thị B", "cccd": "001099012345"}'] * n),
            "errors": pa.array(
                [[{"path": "/cccd", "keyword": "pattern", "message": "bad"}]] * n, pa.list_(ERROR_TYPE)
            ),
        },
        schema=QUARANTINE_TABLE_SCHEMA,
    )


def build_matrix_world(settings: Settings, idp: FakeIdP | None = None) -> MatrixWorld:
    _write_catalog(settings)
    w = MatrixWorld(settings)
    with session_scope(settings) as s:
        sync_catalog(s, settings)
        sync_ckan(s, settings)
    for sharing, key in SHARING.items():
        snap = _commit(settings, key, _rows(12))
        _commit(settings, key, _quarantine_rows(3), quarantine=True)
        with session_scope(settings) as s:
            ds = s.query(Dataset).filter_by(key=key).one()
            w.dataset_ids[sharing] = ds.id
            w.dataset_names[sharing] = ds.name
            s.add(
                Run(
                    dataset_id=ds.id,
                    status="succeeded",
                    started_at=utcnow(),
                    finished_at=utcnow(),
                    rows_read=15,
                    rows_loaded=12,
                    rows_quarantined=3,
                    bytes_read=0,
                    snapshot_id=snap,
                )
            )
    with session_scope(settings) as s:
        grants.create(
            s,
            SYSTEM,
            dataset=SHARING["shared"],
            consumer_org=CONSUMER,
            purpose="Tuyển sinh đầu cấp",
            legal_basis="Nghị định 194/2025/NĐ-CP Điều 16",
        )
        people = {
            "sysadmin": (None, None, True),
            "owner-admin": (OWNER, "admin", False),
            "owner-editor": (OWNER, "editor", False),
            "owner-member": (OWNER, "member", False),
            "consumer-member": (CONSUMER, "member", False),
            "other-member": (OTHER, "member", False),
            "no-org-user": (None, None, False),
        }
        for name, (org, role, sysadmin) in people.items():
            user = users.add_user(s, name, "mat-khau-du-dai", sysadmin=sysadmin)
            if org:
                users.set_role(s, name, org, role)
            scope = " ".join(sorted(users.user_scopes(user, users.org_roles(s, user.id))))
            w.tokens[name], _ = tokens.issue_api_token(s, settings, user, "matrix", scope=scope)
        for name, org, scope in (
            ("owner-client", OWNER, CLIENT_SCOPE + " audit:read"),
            ("owner-client-catalog-only", OWNER, "catalog:read"),
            ("consumer-client", CONSUMER, CLIENT_SCOPE),
            ("other-client", OTHER, CLIENT_SCOPE),
        ):
            client, _secret = users.add_client(s, org, name, scope=scope, client_id=name)
            w.tokens[name], _ = tokens.issue_access_token(
                settings, subject=name, client_id=name, scope=scope, org_id=client.org_id, session=s
            )
        # a person's OAuth access token (authorization code flow) through the owner's portal client
        portal, _ = users.add_client(
            s,
            OWNER,
            "portal",
            scope=CLIENT_SCOPE,
            grant_types=("authorization_code",),
            redirect_uris=("http://127.0.0.1:9/cb",),
            public=True,
            client_id="owner-portal",
        )
        member = users.get_user(s, "owner-member")
        w.tokens["owner-member-oauth"], _ = tokens.issue_access_token(
            settings,
            subject=member.id,
            client_id="owner-portal",
            scope=CLIENT_SCOPE,
            org_id=portal.org_id,
            session=s,
        )
        if idp is not None:
            # people of the provincial SSO: one linked to a hub account of the consumer agency, one not
            users.add_user(s, "sso-consumer", None, external_id=f"{idp.issuer}#linked-1")
            users.set_role(s, "sso-consumer", CONSUMER, "member")
            w.tokens["sso-linked-consumer"] = idp.token(sub="linked-1", exp=int(time.time()) + 3600)
            w.tokens["sso-unlinked"] = idp.token(sub="stranger-2", exp=int(time.time()) + 3600)
    w.tokens["anonymous"] = None
    w.tokens["invalid-token"] = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0."
    return w
