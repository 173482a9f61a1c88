"""Dependencies shared by every router, as annotated aliases.

- ``SettingsDep``: the app's one ``Settings`` object.
- ``HubDep``: the app's runtime (query engine, caches, pools; ``hub.runtime.Hub``).
- ``SessionDep``: a metadata-database session for the request; committed when the endpoint returns
  without error, rolled back otherwise.
- ``PrincipalDep``: the caller on CKAN routes (a missing or invalid token means anonymous, as in CKAN).
- ``V1PrincipalDep``: the caller on ``/api/v1`` (an invalid token is a 401 ``AuthenticationError``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from hub.auth.principal import Principal
from hub.auth.resolve import resolve_principal
from hub.db import transaction
from hub.runtime import Hub
from hub.settings import Settings


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_hub(request: Request) -> Hub:
    """The runtime the app was created with (``hub.runtime.Hub``)."""
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


def app_session_factory(request: Request) -> sessionmaker[Session]:
    """The app's session factory (the runtime's; the engine is migrated on first use)."""
    return get_hub(request).session_factory


def get_session(request: Request) -> Iterator[Session]:
    """One session per request: commit on success, roll back on error, always close."""
    with transaction(app_session_factory(request)) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def get_principal(request: Request, settings: SettingsDep) -> Principal:
    """The caller on CKAN routes: an unknown token is anonymous, never a 401."""
    return resolve_principal(request.headers, _client_ip(request), settings, "ckan")


def get_v1_principal(request: Request, settings: SettingsDep) -> Principal:
    """The caller on ``/api/v1`` routes: an invalid token raises ``AuthenticationError`` (401)."""
    return resolve_principal(request.headers, _client_ip(request), settings, "v1")


PrincipalDep = Annotated[Principal, Depends(get_principal)]
V1PrincipalDep = Annotated[Principal, Depends(get_v1_principal)]
