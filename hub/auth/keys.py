"""The hub's signing keys: tokens and audit checkpoints are signed with the current one.

Keys are ES256 (or RS256, ``HUB_TOKEN_ALG``) JWKs stored in the metadata database, the private part
encrypted with Fernet under a key derived from ``HUB_SECRET_KEY`` (HKDF-SHA256), or, when no secret key
is set, under a random key kept in ``DATA_DIR/auth-key.secret`` with mode 0600. The first key is made on
first use. ``rotate`` adds a new current key and retires the old one, which stays published in the JWKS
until the tokens it signed have expired (access tokens: the token TTL; CKAN API tokens: their expiry).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.auth.models import ApiToken, SigningKey
from hub.db import session_scope, utcnow
from hub.errors import ConfigError
from hub.settings import Settings

ASYMMETRIC_ALGS = ("ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")


def _fernet(settings: Settings) -> Fernet:
    if settings.secret_key:
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"lien-thong-hub", info=b"signing-keys").derive(
            settings.secret_key.encode()
        )
        return Fernet(base64.urlsafe_b64encode(raw))
    path = Path(settings.data_dir) / "auth-key.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    return Fernet(path.read_bytes().strip())


def _generate(alg: str) -> ECKey | RSAKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256", {"alg": alg, "use": "sig"}, private=True, auto_kid=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, {"alg": alg, "use": "sig"}, private=True, auto_kid=True)
    raise ConfigError(f"unsupported token algorithm {alg!r}: use ES256 or RS256")


def create_key(session: Session, settings: Settings) -> SigningKey:
    """Add a new current signing key; retire the previous current one."""
    for old in session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        old.retired_at = utcnow()
    key = _generate(settings.token_alg)
    private = json.dumps(key.as_dict(private=True))
    row = SigningKey(
        kid=key.kid,
        alg=settings.token_alg,
        private_jwk=_fernet(settings).encrypt(private.encode()).decode(),
        public_jwk=key.as_dict(private=False),
        created=utcnow(),
    )
    session.add(row)
    session.flush()
    _cache.pop(settings.database_url, None)
    return row


def rotate(session: Session, settings: Settings) -> SigningKey:
    return create_key(session, settings)


def publish_until(session: Session, settings: Settings, row: SigningKey) -> datetime | None:
    """Until when a retired key stays in the JWKS (None: current key)."""
    if row.retired_at is None:
        return None
    until = row.retired_at + timedelta(seconds=settings.token_ttl_seconds + 60)
    api_exp = session.scalar(
        select(func.max(ApiToken.expires_at)).where(ApiToken.kid == row.kid, ApiToken.revoked_at.is_(None))
    )
    if api_exp and api_exp > until:
        until = api_exp
    return until


@dataclass
class KeyRing:
    """The keys as loaded from the database: the current private key and every published public key."""

    current: ECKey | RSAKey
    current_alg: str
    published: dict[str, ECKey | RSAKey]
    all_public: dict[str, ECKey | RSAKey]
    loaded_at: float

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.published.values()]}

    def signing_set(self) -> KeySet:
        return KeySet([self.current])


_cache: dict[str, KeyRing] = {}
_lock = threading.Lock()
CACHE_SECONDS = 30.0


def _load(session: Session, settings: Settings) -> KeyRing:
    rows = list(session.scalars(select(SigningKey).order_by(SigningKey.created)))
    current_rows = [r for r in rows if r.retired_at is None]
    if not current_rows:
        current_rows = [create_key(session, settings)]
        rows = list(session.scalars(select(SigningKey).order_by(SigningKey.created)))
    cur = current_rows[-1]
    try:
        private = json.loads(_fernet(settings).decrypt(cur.private_jwk.encode()))
    except InvalidToken as exc:
        raise ConfigError(
            "the signing key cannot be decrypted: HUB_SECRET_KEY (or DATA_DIR/auth-key.secret) changed"
        ) from exc
    current = _import(private)
    now = utcnow()
    published: dict[str, ECKey | RSAKey] = {}
    all_public: dict[str, ECKey | RSAKey] = {}
    for r in rows:
        pub = _import(r.public_jwk)
        all_public[r.kid] = pub
        until = publish_until(session, settings, r)
        if until is None or until > now:
            published[r.kid] = pub
    return KeyRing(current, cur.alg, published, all_public, time.monotonic())


def _import(data: dict[str, Any]) -> ECKey | RSAKey:
    if data.get("kty") == "EC":
        return ECKey.import_key(data)
    if data.get("kty") == "RSA":
        return RSAKey.import_key(data)
    raise ConfigError(f"unsupported key type {data.get('kty')!r}")


def opened_keys(settings: Settings, rows: list[SigningKey]) -> tuple[dict[str, ECKey | RSAKey], set[str]]:
    """The signing keys of ``rows`` that the hub's secret opens (kid -> key, their kid checked), and the
    kids of those it does not open: a key someone added to the database without the secret is not
    trusted (``hub audit verify``)."""
    fernet = _fernet(settings)
    trusted: dict[str, ECKey | RSAKey] = {}
    unopened: set[str] = set()
    for row in rows:
        try:
            key = _import(json.loads(fernet.decrypt(row.private_jwk.encode())))
        except (InvalidToken, JoseError, ConfigError, ValueError, KeyError, TypeError):
            unopened.add(row.kid)
            continue
        if key.kid == row.kid:
            trusted[row.kid] = key
        else:
            unopened.add(row.kid)
    return trusted, unopened


def keyring(settings: Settings, *, session: Session | None = None, refresh: bool = False) -> KeyRing:
    """The keys of this hub (cached for ``CACHE_SECONDS``; made on first use)."""
    url = settings.database_url
    ring = _cache.get(url)
    if ring is not None and not refresh and time.monotonic() - ring.loaded_at < CACHE_SECONDS:
        return ring
    with _lock:
        if session is not None:
            ring = _load(session, settings)
        else:
            with session_scope(settings) as s:
                ring = _load(s, settings)
        _cache[url] = ring
        return ring


def clear_cache() -> None:
    _cache.clear()
