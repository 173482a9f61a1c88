"""Turns a request's credentials into a ``Principal``.

Route families differ as in CKAN: on CKAN routes (``/api/3/action``) a missing or invalid token means
anonymous; on the hub's own routes (``/api/v1``) an invalid token is a 401 (``AuthenticationError``).

FOUNDATION STUB: every caller is anonymous until the OAuth work (issue 5) replaces this function's
body with token validation. Its signature is the contract the web layer relies on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from hub.auth.principal import ANONYMOUS, Principal
from hub.settings import Settings

RouteKind = Literal["ckan", "v1", "public"]


def resolve_principal(
    headers: Mapping[str, str], client_ip: str | None, settings: Settings, route_kind: RouteKind
) -> Principal:
    """The principal of a request with these (case-insensitive) ``headers``."""
    return ANONYMOUS
