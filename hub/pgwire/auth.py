"""Who connects: the user name and password of a PostgreSQL connection as a hub principal.

The user name is an OAuth client id or a person's account name; the password is one of

- an access token of the hub (client credentials, or a person's token through the portal), or of a
  configured OpenID Connect issuer: verified by ``hub.auth.resolve.principal_from_token``, and its
  principal must be the one the user name names;
- a person's CKAN API token (a JWT of the hub's issuer): the same way;
- an OAuth client's secret: exchanged for an access token by the hub's own authorization server
  (client credentials grant, audited as ``auth.token`` like a request to ``/oauth/token``); the
  connection keeps the secret in memory to exchange it again when that token expires.

Every login is audited (``auth.login``, ``details.door = "postgresql"``); a refusal says why in the
audit log only: the client is told ``28P01 password authentication failed`` whatever the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from hub.auth import audit, tokens
from hub.auth.principal import Principal
from hub.auth.resolve import principal_from_token
from hub.auth.server import FormRequest, HubAuthorizationServer
from hub.auth.tokens import InvalidTokenError
from hub.errors import AuthenticationError
from hub.runtime import Hub

DOOR = "postgresql"


class LoginFailedError(AuthenticationError):
    """The credentials were refused; ``str(exc)`` is the reason for the audit log (never the token)."""


@dataclass
class Login:
    """A principal and until when its credentials hold."""

    principal: Principal
    expires: float | None
    user: str
    secret: str | None = None

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (now or time.time()) > self.expires + tokens.LEEWAY_SECONDS


def _names(principal: Principal) -> set[str]:
    names = {n for n in (principal.name, principal.subject) if n}
    if principal.kind == "client" and principal.client_id:
        names.add(principal.client_id)
    return names


def _exchange(hub: Hub, server: HubAuthorizationServer, user: str, secret: str, ip: str | None) -> str:
    """An access token for the client ``user`` with ``secret`` (the client credentials grant)."""
    form = [("grant_type", "client_credentials"), ("client_id", user), ("client_secret", secret)]
    uri = tokens.issuer(hub.settings) + "/oauth/token"
    request = FormRequest("POST", uri, {"Content-Type": "application/x-www-form-urlencoded"}, [], form)
    request.client_ip = ip
    with hub.session_factory() as session:
        status, body, _headers = server.run(session, server.create_token_response, request)
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            session.rollback()
            error = body.get("error") if isinstance(body, dict) else None
            raise LoginFailedError(f"not a token, and not the secret of client {user!r} ({error or status})")
        session.commit()
    return str(body["access_token"])


def _from_token(hub: Hub, user: str, token: str, ip: str | None) -> tuple[Principal, float | None]:
    with hub.session_factory() as session:
        try:
            principal = principal_from_token(session, hub.settings, token, ip)
        except InvalidTokenError as exc:
            raise LoginFailedError(f"invalid token: {exc}") from None
    if user not in _names(principal):
        raise LoginFailedError(f"the token is not {user!r}'s")
    exp: Any = tokens.unverified_claims(token).get("exp")
    return principal, float(exp) if isinstance(exp, int | float) else None


def authenticate(hub: Hub, server: HubAuthorizationServer, user: str, password: str, ip: str | None) -> Login:
    """The login of ``user`` with ``password``, audited; ``LoginFailedError`` (audited) when refused."""
    try:
        if not user or not password:
            raise LoginFailedError("no user name or no password")
        secret: str | None = None
        token = password
        if password.count(".") != 2:
            secret, token = password, _exchange(hub, server, user, password, ip)
        principal, expires = _from_token(hub, user, token, ip)
    except LoginFailedError as exc:
        _audit(hub, Principal(name=user, ip=ip), "denied", str(exc))
        raise
    _audit(hub, principal, "allowed", None)
    return Login(principal, expires, user, secret)


def renew(hub: Hub, server: HubAuthorizationServer, login: Login, ip: str | None) -> Login:
    """``login`` again when its token expired: a new token for a client's secret, else
    ``LoginFailedError``."""
    if login.secret is None:
        _audit(hub, login.principal, "denied", "the token expired during the session")
        raise LoginFailedError("the token expired")
    return authenticate(hub, server, login.user, login.secret, ip)


def _audit(hub: Hub, principal: Principal, outcome: str, reason: str | None) -> None:
    """One ``auth.login`` entry (a failure to write it fails the login: no unlogged connection)."""
    with hub.session_factory() as session:
        audit.record(session, "auth.login", principal, outcome=outcome, reason=reason, details={"door": DOOR})
        session.commit()
