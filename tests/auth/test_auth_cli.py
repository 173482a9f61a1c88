"""The ``hub users | orgs | clients | keys | tokens | grants | audit`` commands, as an operator uses them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.auth import tokens
from hub.auth.resolve import resolve_principal
from hub.cli.main import app
from hub.db import dispose_engines
from hub.errors import InvalidInputError
from hub.settings import Settings, get_settings


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HUB_CATALOG_DIR", str(tmp_path / "catalog"))
    monkeypatch.setenv("HUB_AUDIT_CHECKPOINT_EVERY", "4")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
    dispose_engines()


def _ok(runner: CliRunner, *args: str, stdin: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_operator_workflow(cli: CliRunner) -> None:
    _ok(cli, "orgs", "add", "so-tu-phap", "Sở Tư pháp", "--title-en", "Department of Justice")
    _ok(cli, "orgs", "add", "so-gddt", "Sở Giáo dục và Đào tạo")
    assert "so-gddt" in _ok(cli, "orgs", "list")
    _ok(
        cli,
        "users",
        "add",
        "lan",
        "--org",
        "so-tu-phap",
        "--role",
        "admin",
        "--password-stdin",
        stdin="mat-khau-rat-dai\n",
    )
    _ok(cli, "users", "set-role", "lan", "so-gddt", "member")
    out = _ok(cli, "users", "list")
    assert "so-tu-phap:admin" in out
    assert "so-gddt:member" in out

    out = _ok(
        cli,
        "clients",
        "add",
        "so-gddt",
        "EMIS",
        "--scope",
        "catalog:read datastore:read",
        "--client-id",
        "emis",
    )
    secret = next(line.split()[-1] for line in out.splitlines() if line.startswith("client_secret:"))
    assert len(secret) >= 40
    listing = _ok(cli, "clients", "list")
    assert "emis" in listing
    assert secret not in listing  # shown once, stored hashed

    token = _ok(cli, "tokens", "issue", "--client", "emis").strip()
    settings = get_settings()
    p = resolve_principal({"Authorization": f"Bearer {token}"}, None, settings, "v1")
    assert p.client_id == "emis"
    assert p.scopes == {"catalog:read", "datastore:read"}
    result = cli.invoke(app, ["tokens", "issue", "--client", "emis", "--scope", "admin"])
    assert result.exit_code != 0

    old_kid = tokens.unverified_header(token)["kid"]
    _ok(cli, "keys", "rotate")
    keys_out = _ok(cli, "keys", "list")
    assert "current" in keys_out
    assert "published" in keys_out
    assert resolve_principal({"Authorization": f"Bearer {token}"}, None, settings, "v1").client_id == "emis"
    assert tokens.unverified_header(_ok(cli, "tokens", "issue", "--user", "lan").strip())["kid"] != old_kid

    verify = _ok(cli, "audit", "verify")
    assert "chain intact" in verify
    assert "signed checkpoints" in verify
    found = [
        json.loads(line)["action"]
        for line in _ok(cli, "audit", "search", "--action", "admin.*", "--json").splitlines()
    ]
    assert "admin.client.create" in found
    assert "admin.org.create" in found
    assert "admin.keys.rotate" in found
    assert "admin" in _ok(cli, "audit", "search", "--action", "admin.*")


def test_grant_commands(cli: CliRunner, tmp_path: Path) -> None:
    from hub.catalog.models import Dataset
    from hub.db import session_scope

    _ok(cli, "orgs", "add", "so-tu-phap", "Sở Tư pháp")
    _ok(cli, "orgs", "add", "so-gddt", "Sở Giáo dục và Đào tạo")
    settings: Settings = get_settings()
    with session_scope(settings) as s:
        from hub.auth.users import get_org

        s.add(
            Dataset(
                key="civil_status.births",
                name="civil_status-births",
                title="Khai sinh",
                sharing="shared",
                owner_org_id=get_org(s, "so-tu-phap").id,
                spec={},
                state="active",
            )
        )
    result = cli.invoke(
        app,
        [
            "grants",
            "add",
            "civil_status.births",
            "so-gddt",
            "--purpose",
            "Tuyển sinh",
            "--legal-basis",
            "",
            "--expires",
            "2030-06-30",
        ],
    )
    assert isinstance(result.exception, InvalidInputError)  # hub's main() prints it and exits 2
    assert "legal_basis" in result.exception.errors
    out = _ok(
        cli,
        "grants",
        "add",
        "civil_status.births",
        "so-gddt",
        "--purpose",
        "Tuyển sinh lớp 1",
        "--legal-basis",
        "Nghị định 194/2025/NĐ-CP Điều 16",
        "--expires",
        "2030-06-30",
    )
    grant_id = out.split()[1]
    listing = _ok(cli, "grants", "list")
    assert "so-gddt" in listing
    assert "active" in listing
    _ok(cli, "grants", "revoke", grant_id, "--reason", "kết thúc năm học")
    assert "revoked" in _ok(cli, "grants", "list", "--all")
    export = tmp_path / "audit.jsonl"
    _ok(cli, "audit", "export", "--format", "jsonl", "--output", str(export))
    actions = [json.loads(line)["action"] for line in export.read_text(encoding="utf-8").splitlines()]
    assert actions[-2:] == ["grant.create", "grant.revoke"]
