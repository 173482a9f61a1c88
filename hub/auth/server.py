"""The OAuth 2.0 authorization server, built on authlib's grants and endpoints (framework-neutral).

- client credentials (systems), authorization code with PKCE S256 only (people), refresh tokens with
  rotation and reuse detection (a used refresh token presented again revokes its whole family and the
  access tokens issued from it);
- introspection (RFC 7662) and revocation (RFC 7009);
- access tokens are RFC 9068 JWTs (authlib's ``JWTBearerTokenGenerator``) signed with the hub's key.

``hub.api.oauth`` turns HTTP requests into ``FormRequest``s, runs ``handle`` in a worker thread inside
a database session, and turns the ``(status, body, headers)`` result back into a response.
"""

from __future__ import annotations

import calendar
import contextvars
import logging
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Payload, OAuth2Request, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hub.auth import audit, keys, tokens
from hub.auth.models import AuthorizationCode, OAuthClient, RefreshToken, User
from hub.auth.oauth_models import (
    AccessTokenRecord,
    HubClient,
    HubCode,
    HubUser,
    RefreshTokenRecord,
    digest,
)
from hub.auth.principal import SCOPES, Principal
from hub.db import utcnow
from hub.settings import Settings

# authlib logs every issued token at DEBUG ("Issue token {...}"): tokens must never reach a log, so its
# loggers stop at INFO whatever the root level is.
logging.getLogger("authlib").setLevel(logging.INFO)

_session: contextvars.ContextVar[Session] = contextvars.ContextVar("hub_oauth_session")
CODE_TTL = 300
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def current_session() -> Session:
    return _session.get()


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, values: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for k, v in values:
            self._datalist[k].append(v)
        self._data = {k: v[0] for k, v in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class FormRequest(OAuth2Request):  # type: ignore[misc]
    """An HTTP request as authlib sees it: method, URL, headers, query and form values."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = FormPayload(query + form)
        self._args = dict(query)
        self._form = dict(form)
        self.client_ip: str | None = None

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class S256Challenge(CodeChallenge):  # type: ignore[misc]
    """PKCE, required, S256 only."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Unsupported 'code_challenge_method': only S256 is accepted")
        super().validate_code_challenge(grant, redirect_uri)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: FormRequest) -> None:
        data = request.payload.data
        current_session().execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at < utcnow()))
        current_session().add(
            AuthorizationCode(
                code_hash=digest(code),
                client_id=request.client.get_client_id(),
                user_id=request.user.get_user_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope or "",
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                expires_at=utcnow() + timedelta(seconds=CODE_TTL),
            )
        )

    def query_authorization_code(self, code: str, client: HubClient) -> HubCode | None:
        row = current_session().get(AuthorizationCode, digest(code))
        if row is None or row.client_id != client.get_client_id() or row.expires_at < utcnow():
            return None
        return HubCode(row)

    def delete_authorization_code(self, authorization_code: HubCode) -> None:
        current_session().delete(authorization_code.row)

    def authenticate_user(self, authorization_code: HubCode) -> HubUser | None:
        user = current_session().get(User, authorization_code.row.user_id)
        return HubUser(user) if user is not None and user.state == "active" else None


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshTokenRecord | None:
        session = current_session()
        row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token)))
        if row is None or row.revoked or row.expires_at < utcnow():
            return None
        if row.used_at is not None:
            revoke_family(session, row.family_id)
            audit.record(
                session,
                "auth.refresh_reuse",
                Principal(kind="client", subject=row.client_id, client_id=row.client_id),
                outcome="denied",
                reason="a rotated refresh token was used again: its family is revoked",
                details={"family": row.family_id},
            )
            return None
        return RefreshTokenRecord(row)

    def authenticate_user(self, refresh_token: RefreshTokenRecord) -> HubUser | None:
        user = current_session().get(User, refresh_token.row.user_id)
        return HubUser(user) if user is not None and user.state == "active" else None

    def revoke_old_credential(self, refresh_token: RefreshTokenRecord) -> None:
        refresh_token.row.used_at = utcnow()


def revoke_family(session: Session, family_id: str) -> None:
    for r in session.scalars(select(RefreshToken).where(RefreshToken.family_id == family_id)):
        if r.access_jti:
            tokens.revoke_jti(session, r.access_jti, None)
    session.execute(update(RefreshToken).where(RefreshToken.family_id == family_id).values(revoked=True))


class HubIntrospection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return query_token(self.server.settings, token_string, token_type_hint)

    def check_permission(self, token: Any, client: HubClient, request: FormRequest) -> bool:
        if token.check_client(client) or "admin" in client.row.scope.split():
            return True
        org = token.claims.get("org") if isinstance(token, AccessTokenRecord) else None
        return bool(org and org == client.row.org_id)

    def introspect_token(self, token: Any) -> dict[str, Any]:
        if isinstance(token, AccessTokenRecord):
            c = token.claims
            keep = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "org")
            return {"active": True, "token_type": "Bearer", **{k: c[k] for k in keep if k in c}}
        row = token.row
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": row.scope,
            "client_id": row.client_id,
            "sub": row.user_id or row.client_id,
            "exp": calendar.timegm(row.expires_at.timetuple()),
        }


class HubRevocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return query_token(self.server.settings, token_string, token_type_hint)

    def revoke_token(self, token: Any, request: FormRequest) -> None:
        session = current_session()
        if isinstance(token, AccessTokenRecord):
            tokens.revoke_jti(session, token.claims["jti"], token.claims.get("exp"))
        else:
            revoke_family(session, token.row.family_id)
        cid = request.client.get_client_id()
        audit.record(
            session,
            "auth.revoke",
            Principal(kind="client", subject=cid, client_id=cid, ip=request.client_ip),
            details={
                "token_type": "access_token" if isinstance(token, AccessTokenRecord) else "refresh_token"
            },
        )


def query_token(settings: Settings, token_string: str, hint: str | None) -> Any:
    session = current_session()
    if hint != "refresh_token" and token_string.count(".") == 2:
        try:
            claims = tokens.verify_hub_token(session, settings, token_string)
            return AccessTokenRecord(claims)
        except tokens.InvalidTokenError:
            return None
    row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(token_string)))
    return RefreshTokenRecord(row) if row is not None else None


class HubTokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            issuer=tokens.issuer(settings),
            alg=settings.token_alg,
            refresh_token_generator=lambda **kw: secrets.token_urlsafe(48),
            expires_generator=settings.token_ttl_seconds,
        )
        self.settings = settings

    def access_token_generator(
        self, client: HubClient, grant_type: str, user: HubUser | None, scope: str
    ) -> str:
        # the header's alg must be the current key's, which may differ from HUB_TOKEN_ALG after a change
        self.alg = keys.keyring(self.settings, session=current_session()).current_alg
        token: str = super().access_token_generator(client, grant_type, user, scope)
        return token

    def get_jwks(self) -> Any:
        return keys.keyring(self.settings, session=current_session()).signing_set()

    def get_audiences(self, client: HubClient, user: HubUser | None, scope: str) -> str:
        return tokens.audience(self.settings)

    def get_extra_claims(
        self, client: HubClient, grant_type: str, user: HubUser | None, scope: str
    ) -> dict[str, Any]:
        return {"org": client.row.org_id, "nbf": int(time.time())}


class HubAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.settings = settings
        self.register_token_generator("default", HubTokenGenerator(settings))
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(AuthorizationCodeGrant, [S256Challenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(HubIntrospection)
        self.register_endpoint(HubRevocation)

    def query_client(self, client_id: str) -> HubClient | None:
        row = current_session().scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
        return HubClient(row) if row is not None and row.state == "active" else None

    def save_token(self, token: dict[str, Any], request: FormRequest) -> None:
        session = current_session()
        claims = tokens.unverified_claims(token["access_token"])
        client = request.client
        user = request.user
        principal = Principal(
            kind="user" if user else "client",
            subject=user.get_user_id() if user else client.get_client_id(),
            client_id=client.get_client_id(),
            org_id=client.row.org_id,
            ip=request.client_ip,
        )
        if "refresh_token" in token:
            session.execute(delete(RefreshToken).where(RefreshToken.expires_at < utcnow()))
            family = request.refresh_token.row.family_id if request.refresh_token else str(uuid.uuid4())
            session.add(
                RefreshToken(
                    token_hash=digest(token["refresh_token"]),
                    family_id=family,
                    client_id=client.get_client_id(),
                    user_id=user.get_user_id() if user else None,
                    scope=token.get("scope") or claims.get("scope") or "",
                    access_jti=claims.get("jti"),
                    expires_at=utcnow() + timedelta(seconds=self.settings.refresh_ttl_seconds),
                    revoked=False,
                )
            )
        audit.record(
            session,
            "auth.token",
            principal,
            details={
                "grant_type": request.payload.grant_type,
                "scope": claims.get("scope"),
                "jti": claims.get("jti"),
            },
        )

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: Any) -> FormRequest:
        assert isinstance(request, FormRequest)
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, list(headers or [])

    def run(self, session: Session, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` with ``session`` as the current session."""
        token = _session.set(session)
        try:
            return fn(*args, **kwargs)
        finally:
            _session.reset(token)
