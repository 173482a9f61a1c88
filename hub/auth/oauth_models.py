"""authlib's model protocols over the hub's tables: clients, users, codes, and tokens for
introspection and revocation. Used by ``hub.auth.server``."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list

from hub.auth.models import AuthorizationCode, OAuthClient, RefreshToken, User
from hub.auth.users import check_secret
from hub.db import utcnow


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class HubClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.client_id = row.client_id

    @property
    def public(self) -> bool:
        return self.row.secret_hash is None

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.row.redirect_uris[0] if self.row.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        allowed = scope_to_list(self.row.scope) or []
        if not scope:
            return str(list_to_scope(allowed))
        wanted = scope_to_list(scope) or []
        if any(s not in allowed for s in wanted):
            return None
        return str(list_to_scope(wanted))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in (self.row.redirect_uris or [])

    def check_client_secret(self, client_secret: str) -> bool:
        return check_secret(self.row.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


class HubUser:
    def __init__(self, row: User) -> None:
        self.row = row

    def get_user_id(self) -> str:
        return self.row.id


class HubCode(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str | None:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def is_expired(self) -> bool:
        return self.row.expires_at < utcnow()


@dataclass
class AccessTokenRecord(TokenMixin):  # type: ignore[misc]
    """A verified JWT access token (for introspection and revocation)."""

    claims: dict[str, Any]
    revoked: bool = False

    def check_client(self, client: HubClient) -> bool:
        return bool(self.claims.get("client_id") == client.get_client_id())

    def get_scope(self) -> str:
        return str(self.claims.get("scope", ""))

    def get_expires_in(self) -> int:
        return int(self.claims["exp"]) - int(self.claims["iat"])

    def is_expired(self) -> bool:
        return bool(time.time() > self.claims["exp"])

    def is_revoked(self) -> bool:
        return self.revoked


@dataclass
class RefreshTokenRecord(TokenMixin):  # type: ignore[misc]
    row: RefreshToken

    def check_client(self, client: HubClient) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return int((self.row.expires_at - self.row.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return self.row.expires_at < utcnow()

    def is_revoked(self) -> bool:
        return self.row.revoked or self.row.used_at is not None

    def get_user(self) -> str | None:
        return self.row.user_id
