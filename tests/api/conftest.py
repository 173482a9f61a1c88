"""A live hub for the API tests: catalog, tables, users and tokens, served by a real uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.db import dispose_engines, session_scope
from hub.settings import Settings
from hub.testing.live import free_port, live_server
from tests.api.support import build_hub, hub_settings


@dataclass
class LiveHub:
    settings: Settings
    base: str
    editor_token: str  # editor of so-tai-nguyen-moi-truong
    member_token: str  # member of so-tu-phap (reads its internal births)
    outsider_token: str  # a user of no organization
    admin_token: str  # sysadmin

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": token}


def make_users(settings: Settings) -> dict[str, str]:
    from hub.auth.tokens import issue_api_token
    from hub.auth.users import add_user, set_role

    scope = "catalog:read catalog:write datastore:read warehouse:query"
    out = {}
    with session_scope(settings) as session:
        for name, org, role, sysadmin in (
            ("editor", "so-tai-nguyen-moi-truong", "editor", False),
            ("member", "so-tu-phap", "member", False),
            ("outsider", None, None, False),
            ("admin", None, None, True),
        ):
            user = add_user(session, name, None, sysadmin=sysadmin)
            if org:
                set_role(session, name, org, role)
            token_scope = f"{scope} admin" if sysadmin else scope
            out[name], _row = issue_api_token(session, settings, user, f"{name}-token", scope=token_scope)
    return out


def _start(tmp: Path) -> Iterator[LiveHub]:
    port = free_port()
    settings = hub_settings(tmp, port)
    build_hub(settings)
    tokens = make_users(settings)
    with live_server(settings, port=port) as base:
        yield LiveHub(settings, base, tokens["editor"], tokens["member"], tokens["outsider"], tokens["admin"])
    dispose_engines()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """One live hub per test module (building one takes a few seconds)."""
    yield from _start(tmp_path_factory.mktemp("hub"))
