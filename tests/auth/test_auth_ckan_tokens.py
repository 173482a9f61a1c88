"""People's CKAN API tokens through the CKAN Action API of a live hub: create, list, use, revoke.
As in CKAN, an invalid token on a CKAN route means anonymous; on /api/v1 it is a 401."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hub.testing.live import live_server
from tests.auth.conftest import World

pytestmark = pytest.mark.integration


@pytest.fixture
def live(world: World) -> Iterator[tuple[World, str]]:
    with live_server(world.settings) as base:
        yield world, base


def _action(base: str, action: str, token: str | None = None, **data: object) -> httpx.Response:
    headers = {"Authorization": token} if token else {}
    return httpx.post(f"{base}/api/3/action/{action}", json=data, headers=headers)


def test_api_token_lifecycle(live: tuple[World, str]) -> None:
    world, base = live
    login = world.user_token("chi-member")
    r = _action(base, "api_token_create", login, user="chi-member", name="ckanapi script")
    assert r.status_code == 200, r.text
    token = r.json()["result"]["token"]

    # the new token reads the organization's internal dataset (raw token in Authorization, as ckanapi sends)
    r = _action(base, "package_show", token, id=world.datasets["internal"])
    assert r.status_code == 200, r.text
    r = httpx.get(
        f"{base}/api/3/action/package_show",
        params={"id": world.datasets["internal"]},
        headers={"X-CKAN-API-Key": token},
    )
    assert r.status_code == 200

    listed = _action(base, "api_token_list", login, user_id="chi-member").json()["result"]
    names = {t["name"] for t in listed}
    assert "ckanapi script" in names
    jti = next(t["id"] for t in listed if t["name"] == "ckanapi script")

    # another person may not list or revoke them
    r = _action(base, "api_token_list", world.user_token("em-other"), user_id="chi-member")
    assert r.status_code == 403

    r = _action(base, "api_token_revoke", login, jti=jti)
    assert r.status_code == 200, r.text

    # revoked: anonymous on CKAN routes (the internal dataset is then 403), 401 on /api/v1
    r = _action(base, "package_show", token, id=world.datasets["internal"])
    assert r.status_code == 403
    r = httpx.get(f"{base}/api/v1/grants", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_anonymous_cannot_create_tokens(live: tuple[World, str]) -> None:
    _world, base = live
    r = _action(base, "api_token_create", None, user="chi-member", name="x")
    assert r.status_code == 403
    assert r.json()["success"] is False
