"""Abuse: rate limits per client and per anonymous IP (429 with Retry-After), login brute-force
lockout, and no secret or token in the logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from html import unescape

import httpx
import pytest

from hub.auth import users
from hub.auth.models import AuditEntry
from hub.auth.ratelimit import RateLimiter
from hub.db import session_scope
from hub.settings import Settings
from hub.testing.live import live_server
from tests.auth.conftest import PASSWORD, World

pytestmark = pytest.mark.integration
REDIRECT = "http://127.0.0.1:9/cb"


def test_token_bucket_refills_at_the_configured_rate() -> None:
    limiter = RateLimiter()
    assert [limiter.take("ip:1", 60, now=100.0) for _ in range(60)] == [0.0] * 60
    wait = limiter.take("ip:1", 60, now=100.0)
    assert wait == pytest.approx(1.0)
    assert limiter.take("ip:1", 60, now=101.0) == 0.0  # one token back after one second
    assert limiter.take("ip:2", 60, now=100.0) == 0.0  # buckets are separate


@pytest.fixture
def limited(world: World) -> Iterator[tuple[World, str]]:
    world.settings = Settings(
        data_dir=world.settings.data_dir,
        site_url=world.settings.site_url,
        rate_limit_anonymous_per_minute=5,
        rate_limit_client_per_minute=8,
        login_max_failures=3,
    )
    with live_server(world.settings) as base:
        yield world, base


def test_anonymous_callers_are_limited_per_ip_with_retry_after(limited: tuple[World, str]) -> None:
    _world, base = limited
    codes = [httpx.get(f"{base}/.well-known/jwks.json").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    r = httpx.get(f"{base}/api/v1/grants")
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["content-type"] == "application/problem+json"
    r = httpx.get(f"{base}/api/3/action/package_list")
    assert r.status_code == 429
    assert r.json()["success"] is False


def test_clients_have_their_own_budget(limited: tuple[World, str]) -> None:
    world, base = limited
    gddt = {"Authorization": f"Bearer {world.client_token('so-gddt')}"}
    xd = {"Authorization": f"Bearer {world.client_token('so-xd')}"}
    codes = [httpx.get(f"{base}/api/v1/grants", headers=gddt).status_code for _ in range(9)]
    assert codes == [200] * 8 + [429]
    # another client, and anonymous callers from the same IP, are not affected
    assert httpx.get(f"{base}/api/v1/grants", headers=xd).status_code == 200
    assert httpx.get(f"{base}/.well-known/jwks.json").status_code == 200
    # an invalid token does not get a client budget: it counts against the IP
    bad = {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJjbGllbnRfaWQiOiJzby14ZC1zeXN0ZW0ifQ."}
    codes = [httpx.get(f"{base}/.well-known/jwks.json", headers=bad).status_code for _ in range(5)]
    assert 429 in codes


def _login_form(base: str, client_id: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "catalog:read",
        "state": "s1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    page = httpx.get(f"{base}/oauth/authorize", params=params, headers={"X-Forwarded-For": "x"})
    assert page.status_code == 200, page.text
    return {
        unescape(k): unescape(v)
        for k, v in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
    }


def test_login_lockout_after_repeated_failures(world: World) -> None:
    world.settings = Settings(
        data_dir=world.settings.data_dir, site_url=world.settings.site_url, login_max_failures=3
    )
    with session_scope(world.settings) as s:
        users.add_client(
            s,
            "so-gddt",
            "portal",
            scope="catalog:read",
            grant_types=("authorization_code",),
            redirect_uris=(REDIRECT,),
            public=True,
            client_id="portal",
        )
    with live_server(world.settings) as base:
        form = _login_form(base, "portal")
        for _ in range(3):
            r = httpx.post(
                f"{base}/oauth/authorize", data={**form, "username": "dung-consumer", "password": "sai"}
            )
            assert r.status_code == 401
        # now even the right password is refused, with a message in both languages
        r = httpx.post(
            f"{base}/oauth/authorize", data={**form, "username": "dung-consumer", "password": PASSWORD}
        )
        assert r.status_code == 429
        assert "tạm thời bị khóa" in r.text
        assert "Too many failed sign-ins" in r.text
    with session_scope(world.settings) as s:
        reasons = [e.reason for e in s.query(AuditEntry).filter_by(action="auth.login", outcome="denied")]
    assert reasons.count("bad credentials") == 3
    assert "locked out" in reasons
    # after the lockout window the right password works again
    with session_scope(world.settings) as s:
        from sqlalchemy import update

        from hub.auth.models import LoginAttempt
        from hub.db import utcnow

        s.execute(update(LoginAttempt).values(ts=utcnow().replace(year=2020)))
        assert users.authenticate(s, world.settings, "dung-consumer", PASSWORD, "127.0.0.1") is not None


def test_secrets_and_tokens_never_reach_the_logs(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cid, secret = world.clients["so-gddt"]
    with live_server(world.settings) as base:
        r = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
        token = r.json()["access_token"]
        httpx.get(f"{base}/api/v1/grants", headers={"Authorization": f"Bearer {token}"})
        httpx.get(f"{base}/api/v1/grants", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
        httpx.get(f"{base}/api/3/action/package_list", headers={"Authorization": token + "x"})
        httpx.post(f"{base}/oauth/introspect", data={"token": token}, auth=(cid, secret))
        httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret + "!"))
    text = caplog.text
    assert "token rejected" in text  # the reason is logged ...
    for secret_value in (secret, token, token[:-4], token.split(".")[2]):
        assert secret_value not in text  # ... never the credential
    with session_scope(world.settings) as s:
        for e in s.query(AuditEntry):
            blob = repr(e.details) + (e.reason or "")
            assert secret not in blob
            assert token not in blob
