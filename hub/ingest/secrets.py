"""Connector secrets, encrypted at rest.

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived with HKDF-SHA256 from
``HUB_SECRET_KEY``. Without that setting the hub refuses to store secrets. Values are decrypted only
when a connector runs (``resolver``); they are never returned by the API nor logged.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.errors import ConfigError, NotFoundError
from hub.ingest.models import ConnectorSecret
from hub.settings import Settings

_SALT = b"lien-thong-hub/connector-secrets"
_INFO = b"fernet-v1"


def _fernet(settings: Settings) -> Fernet:
    if not settings.secret_key:
        raise ConfigError(
            "HUB_SECRET_KEY is not set: the hub refuses to store or read connector secrets without it; "
            "set it to a long random value, e.g. the output of "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"`'
        )
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(
        settings.secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(settings: Settings, value: str) -> str:
    return _fernet(settings).encrypt(value.encode()).decode()


def decrypt(settings: Settings, token: str, name: str = "") -> str:
    try:
        return _fernet(settings).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ConfigError(
            f"secret {name!r} cannot be decrypted: HUB_SECRET_KEY is not the key it was stored with"
        ) from exc


def store(session: Session, settings: Settings, instance_id: str, name: str, value: str) -> None:
    """Store (or replace) the secret ``name`` of a connector instance."""
    token = encrypt(settings, value)
    row = session.scalar(select(ConnectorSecret).where(ConnectorSecret.name == name))
    if row is None:
        session.add(ConnectorSecret(name=name, instance_id=instance_id, ciphertext=token))
    else:
        row.ciphertext = token
    session.flush()


def names(session: Session, instance_id: str) -> list[str]:
    return list(
        session.scalars(
            select(ConnectorSecret.name)
            .where(ConnectorSecret.instance_id == instance_id)
            .order_by(ConnectorSecret.name)
        )
    )


def remove_all(session: Session, instance_id: str) -> None:
    session.execute(delete(ConnectorSecret).where(ConnectorSecret.instance_id == instance_id))


def reveal(session: Session, settings: Settings, name: str) -> str:
    row = session.scalar(select(ConnectorSecret).where(ConnectorSecret.name == name))
    if row is None:
        raise NotFoundError(f"no stored secret {name!r} (register it with `hub connectors add ... --secret`)")
    return decrypt(settings, row.ciphertext, name)


def resolver(settings: Settings, session: Session | None = None) -> Callable[[str], str]:
    """The ``ConnectorContext.secret_resolver`` of stored secrets (called by the connector registry).

    It reads with a session of its own at the moment a connector needs the value: the caller's
    ``session`` may be closed by then, or belong to another thread."""

    def resolve(name: str) -> str:
        from hub.db import session_scope

        with session_scope(settings) as own:
            return reveal(own, settings, name)

    return resolve
