"""Sessions of the SQL console: a person signs in through the hub's own OAuth authorization code flow
with PKCE, and the browser keeps only a cookie.

::

    GET /query/login     begin(): a pending session (state, PKCE verifier), a new cookie,
                         and a redirect to /oauth/authorize (the hub's login page)
    GET /query/callback  finish(): the state checked against the cookie's session, the code
                         exchanged (with the verifier) at the token endpoint, a new session and
                         a new cookie (the pending one is gone: no fixation)
    every request        load(): the session of the cookie, its access token refreshed (rotated)
                         when it is about to expire, the person as a ``Principal``
    POST /query/logout   end(): the refresh token's family revoked (and with it the access
                         token), the session deleted

The token endpoint and the revocation endpoint are the hub's own authorization server
(``hub.auth.server``), called in process with the requests a client would send: the console is a
public client (``hub-console``, PKCE S256, no secret) registered on first use
(``HUB_CONSOLE_ORG``). The tokens never reach the browser: they are kept in the session's row,
sealed with a key derived from the cookie's secret (``seal``), so the database alone opens no
session. Two requests that find the access token near its end refresh it once: the refresh runs
after a write to the session's row, which holds the row (PostgreSQL) or the database (SQLite) until
it commits, and the second finds the new token (a rotated refresh token presented twice would revoke
the family).

Errors::

    HubError
    ├── AuthenticationError
    │   └── SignInFailedError        the callback does not match a sign-in of this browser, the person
    │                           denied, or the code was refused
    └── ConfigError
        └── ConsoleUnavailableError  no organization to own the console's client, or the client is disabled
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hub.auth import audit, tokens, users
from hub.auth.models import OAuthClient, RefreshToken, User
from hub.auth.oauth_models import digest
from hub.auth.principal import SYSTEM, Principal
from hub.auth.resolve import principal_from_token
from hub.auth.server import FormRequest, HubAuthorizationServer, revoke_family
from hub.catalog.models import Organization
from hub.console.labels import Labels
from hub.console.models import ConsoleSession
from hub.db import transaction, utcnow
from hub.errors import AuthenticationError, ConfigError, ConflictError
from hub.settings import Settings

log = logging.getLogger("hub.console")

COOKIE = "hub_console"
CLIENT_ID = "hub-console"
CLIENT_NAME = "Bảng truy vấn SQL / SQL console"
SCOPE = "catalog:read datastore:read warehouse:query"
SIGN_IN_SECONDS = 600
"""A sign-in under way (the login page open) lasts this long."""
REFRESH_MARGIN = 60
"""Refresh the access token when it expires within this many seconds."""
SEEN_EVERY = timedelta(seconds=60)
"""How often a session's last use is written (not at every request)."""


class SignInFailedError(AuthenticationError):
    code = "sign_in_failed"


class ConsoleUnavailableError(ConfigError):
    code = "console_unavailable"
    http_status = 503


@dataclass(frozen=True)
class Signed:
    """A signed-in session: the person, their principal (from the session's access token), and the
    synchronizer token of the session."""

    session_id: str
    user_id: str
    user_name: str
    csrf: str
    principal: Principal


# --- the seal and the cookie's secret -----------------------------------------------------------


def session_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _fernet(secret: str) -> Fernet:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"hub-console", info=b"session-seal").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(raw))


def seal(secret: str, data: dict[str, Any]) -> str:
    """``data`` encrypted and authenticated under a key derived from the cookie's ``secret``."""
    return _fernet(secret).encrypt(json.dumps(data).encode()).decode()


def unseal(secret: str, sealed: str) -> dict[str, Any] | None:
    try:
        data = json.loads(_fernet(secret).decrypt(sealed.encode()))
    except (InvalidToken, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pkce_challenge(verifier: str) -> str:
    """RFC 7636's S256: base64url(SHA-256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def safe_next(path: str | None) -> str:
    """A path of the console to return to after signing in (never another site)."""
    if not path or not path.startswith("/query") or "//" in path or "\\" in path:
        return "/query"
    return path[:500]


class Console:
    """The console's sessions and its OAuth client, for one hub (``hub.runtime.Hub.console``)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self._sessions = sessions
        self.server = HubAuthorizationServer(settings)
        self.labels = Labels()
        """Field labels of contracts and releases (the console's list of tables)."""
        self._swept = 0.0
        self._lock = threading.Lock()

    @property
    def redirect_uri(self) -> str:
        return f"{tokens.issuer(self.settings)}/query/callback"

    @property
    def secure_cookie(self) -> bool:
        return self.settings.site_url.lower().startswith("https://")

    # --- the client -------------------------------------------------------------------------------
    def ensure_client(self, s: Session) -> OAuthClient:
        """The console's public client, made on first use (or given this site's redirect URI)."""
        client = users.get_client(s, CLIENT_ID)
        if client is None:
            org = self.settings.console_org or s.scalar(select(Organization.name).order_by(Organization.name))
            if not org:
                raise ConsoleUnavailableError(
                    "The SQL console needs an organization to own its OAuth client; none exists yet."
                )
            try:
                with s.begin_nested():
                    client, _ = users.add_client(
                        s,
                        org,
                        CLIENT_NAME,
                        scope=SCOPE,
                        grant_types=("authorization_code", "refresh_token"),
                        redirect_uris=(self.redirect_uri,),
                        public=True,
                        client_id=CLIENT_ID,
                    )
            except (IntegrityError, ConflictError):  # another process made it first
                client = users.get_client(s, CLIENT_ID)
                assert client is not None
        elif self.redirect_uri not in client.redirect_uris:
            client.redirect_uris = [*client.redirect_uris, self.redirect_uri]
            audit.record(
                s,
                "admin.client.update",
                SYSTEM,
                details={"client_id": CLIENT_ID, "redirect_uri": self.redirect_uri},
            )
        if client.state != "active":
            raise ConsoleUnavailableError(
                f"The SQL console is switched off: its OAuth client {CLIENT_ID} is disabled (hub clients)."
            )
        return client

    # --- signing in ------------------------------------------------------------------------------
    def begin(self, next_path: str | None, old_secret: str | None = None) -> tuple[str, str]:
        """A sign-in under way: (the cookie's new secret, the URL of the hub's login page)."""
        self.sweep()
        secret = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        state = secrets.token_urlsafe(24)
        now = utcnow()
        with transaction(self._sessions) as s:
            self.ensure_client(s)
            old = s.get(ConsoleSession, session_id(old_secret)) if old_secret else None
            if old is not None:  # this browser's earlier session (expired) or sign-in (abandoned)
                self._drop(s, old)
            s.add(
                ConsoleSession(
                    id=session_id(secret),
                    user_id=None,
                    state=state,
                    sealed=seal(secret, {"verifier": verifier}),
                    csrf=secrets.token_urlsafe(32),
                    next_path=safe_next(next_path),
                    created=now,
                    last_seen=now,
                    expires=now + timedelta(seconds=SIGN_IN_SECONDS),
                )
            )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": self.redirect_uri,
                "scope": SCOPE,
                "state": state,
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        return secret, f"{tokens.issuer(self.settings)}/oauth/authorize?{query}"

    def finish(
        self, secret: str | None, code: str | None, state: str | None, error: str | None, ip: str | None
    ) -> tuple[str, str]:
        """The end of a sign-in: (the cookie's new secret, the path to go to)."""
        with transaction(self._sessions) as s:
            row = s.get(ConsoleSession, session_id(secret)) if secret else None
            pending = (
                row is not None
                and row.user_id is None
                and row.state is not None
                and row.expires > utcnow()
                and hmac.compare_digest(row.state, state or "")
            )
            sealed = unseal(secret, row.sealed) if pending and row is not None and secret else None
            if row is not None:  # one attempt per sign-in
                s.execute(delete(ConsoleSession).where(ConsoleSession.id == row.id))
        if row is None or sealed is None or not pending:
            raise SignInFailedError(
                "This sign-in does not match one started in this browser (or it took more than "
                f"{SIGN_IN_SECONDS // 60} minutes): sign in again."
            )
        if error:
            raise SignInFailedError(f"The sign-in was not completed ({error[:100]}).")
        new_secret = secrets.token_urlsafe(32)
        with transaction(self._sessions) as s:
            status, body = self._token(
                s,
                [
                    ("grant_type", "authorization_code"),
                    ("code", code or ""),
                    ("redirect_uri", self.redirect_uri),
                    ("client_id", CLIENT_ID),
                    ("code_verifier", str(sealed.get("verifier", ""))),
                ],
                ip,
            )
            if status != 200:
                raise SignInFailedError(
                    f"The hub refused the sign-in: {body.get('error_description') or body.get('error')}"
                )
            principal = principal_from_token(s, self.settings, body["access_token"], ip)
            now = utcnow()
            lifetime = min(self.settings.console_session_hours * 3600, self.settings.refresh_ttl_seconds)
            s.add(
                ConsoleSession(
                    id=session_id(new_secret),
                    user_id=principal.subject,
                    state=None,
                    sealed=seal(new_secret, _tokens_of(body)),
                    csrf=secrets.token_urlsafe(32),
                    next_path=row.next_path,
                    family_id=self._family(s, body),
                    access_expires=now + timedelta(seconds=int(body.get("expires_in") or 0)),
                    created=now,
                    last_seen=now,
                    expires=now + timedelta(seconds=lifetime),
                )
            )
        return new_secret, row.next_path

    # --- every request ---------------------------------------------------------------------------
    def load(self, secret: str | None, ip: str | None) -> Signed | None:
        """The signed-in session of the cookie's ``secret`` (refreshed when due), or None."""
        if not secret:
            return None
        sid = session_id(secret)
        with transaction(self._sessions) as s:
            row = s.get(ConsoleSession, sid)
            if row is None or row.user_id is None or not self._alive(row):
                return None
            if _due(row):
                row = self._refresh(s, secret, sid, ip)
                if row is None:
                    return None
            elif utcnow() - row.last_seen > SEEN_EVERY:
                row.last_seen = utcnow()
            sealed = unseal(secret, row.sealed)
            if sealed is None:
                return None
            try:
                principal = principal_from_token(s, self.settings, str(sealed.get("access_token")), ip)
            except tokens.InvalidTokenError as exc:  # revoked, the person disabled, the key retired
                log.info("a console session's token was refused: %s", exc)
                self._drop(s, row)
                return None
            user = s.get(User, row.user_id)
            if user is None:
                return None
            return Signed(sid, user.id, user.name, row.csrf, principal)

    def _alive(self, row: ConsoleSession) -> bool:
        now = utcnow()
        idle = timedelta(minutes=self.settings.console_idle_minutes)
        return row.expires > now and now - row.last_seen <= idle

    def _refresh(self, s: Session, secret: str, sid: str, ip: str | None) -> ConsoleSession | None:
        """Refresh the session's tokens once, however many requests ask at the same time."""
        s.rollback()  # end the read; the write below starts the transaction that holds the row
        s.execute(update(ConsoleSession).where(ConsoleSession.id == sid).values(last_seen=utcnow()))
        row = s.get(ConsoleSession, sid, populate_existing=True)
        if row is None or not _due(row):
            return row
        sealed = unseal(secret, row.sealed)
        if sealed is None:
            return None
        status, body = self._token(
            s,
            [
                ("grant_type", "refresh_token"),
                ("refresh_token", str(sealed.get("refresh_token", ""))),
                ("client_id", CLIENT_ID),
            ],
            ip,
        )
        if status != 200:
            log.info("a console session's refresh was refused: %s", body.get("error"))
            self._drop(s, row)
            return None
        row.sealed = seal(secret, _tokens_of(body))
        row.access_expires = utcnow() + timedelta(seconds=int(body.get("expires_in") or 0))
        row.family_id = self._family(s, body) or row.family_id
        return row

    # --- signing out -----------------------------------------------------------------------------
    def end(self, secret: str | None, ip: str | None) -> None:
        """Sign out: revoke the session's refresh token (its family, and so its access tokens) at the
        revocation endpoint, and delete the session."""
        if not secret:
            return
        with transaction(self._sessions) as s:
            row = s.get(ConsoleSession, session_id(secret))
            if row is None:
                return
            sealed = unseal(secret, row.sealed) or {}
            if sealed.get("refresh_token"):
                request = self._request(
                    "/oauth/revoke",
                    [
                        ("token", str(sealed["refresh_token"])),
                        ("token_type_hint", "refresh_token"),
                        ("client_id", CLIENT_ID),
                    ],
                    ip,
                )
                self.server.run(s, self.server.create_endpoint_response, "revocation", request)
            self._drop(s, row)

    def _drop(self, s: Session, row: ConsoleSession) -> None:
        """Revoke the session's tokens and delete it (a statement, not the ORM's delete: another request
        may have deleted it first)."""
        if row.family_id:
            revoke_family(s, row.family_id)
        s.execute(delete(ConsoleSession).where(ConsoleSession.id == row.id))
        s.expunge(row)

    def sweep(self, *, every: float = 60.0) -> int:
        """Delete sessions that expired or idled out (revoking their tokens); at most once ``every``
        seconds. How many went."""
        with self._lock:
            if time.monotonic() - self._swept < every:
                return 0
            self._swept = time.monotonic()
        now = utcnow()
        idle = now - timedelta(minutes=self.settings.console_idle_minutes)
        with transaction(self._sessions) as s:
            gone = list(
                s.scalars(
                    select(ConsoleSession).where(
                        or_(ConsoleSession.expires <= now, ConsoleSession.last_seen < idle)
                    )
                )
            )
            for row in gone:
                self._drop(s, row)
        return len(gone)

    # --- the authorization server, in process -------------------------------------------------------
    def _request(self, path: str, form: list[tuple[str, str]], ip: str | None) -> FormRequest:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        request = FormRequest("POST", f"{tokens.issuer(self.settings)}{path}", headers, [], form)
        request.client_ip = ip
        return request

    def _token(self, s: Session, form: list[tuple[str, str]], ip: str | None) -> tuple[int, dict[str, Any]]:
        """What ``POST /oauth/token`` answers to ``form``."""
        request = self._request("/oauth/token", form, ip)
        status, body, _headers = self.server.run(s, self.server.create_token_response, request)
        return int(status), body if isinstance(body, dict) else {}

    @staticmethod
    def _family(s: Session, body: dict[str, Any]) -> str | None:
        refresh = body.get("refresh_token")
        if not isinstance(refresh, str):
            return None
        s.flush()
        return s.scalar(select(RefreshToken.family_id).where(RefreshToken.token_hash == digest(refresh)))


def _tokens_of(body: dict[str, Any]) -> dict[str, Any]:
    return {"access_token": body.get("access_token"), "refresh_token": body.get("refresh_token")}


def _due(row: ConsoleSession) -> bool:
    expires: datetime | None = row.access_expires
    return expires is None or expires - utcnow() < timedelta(seconds=REFRESH_MARGIN)
