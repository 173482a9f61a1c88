"""People's CKAN API tokens on the Action API: ``api_token_create``, ``api_token_list``,
``api_token_revoke`` (CKAN 2.9+), over ``hub.auth.api_tokens``."""

from __future__ import annotations

from typing import Any

from hub.api.ckan_registry import ActionContext, action, as_int
from hub.auth import api_tokens


def _text(data: dict[str, Any], *keys: str) -> str | None:
    """The first of ``keys`` given in ``data``, as text (a JSON number or list is not an id)."""
    for key in keys:
        value = data.get(key)
        if value not in (None, ""):
            return str(value)
    return None


@action("api_token_create", write=True)
def api_token_create(ctx: ActionContext, data: dict[str, Any]) -> dict[str, str]:
    """A new API token for the caller (or, for a sysadmin, another user): ``name``, ``expires_in``,
    ``unit``."""
    token = api_tokens.create(
        ctx.session,
        ctx.settings,
        ctx.principal,
        user=_text(data, "user", "user_id"),
        name=str(data.get("name") or ""),
        expires_in=as_int(data, "expires_in", None, minimum=1),
        unit=str(data.get("unit") or "day"),
    )
    return {"token": token}


@action("api_token_list")
def api_token_list(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The caller's API tokens (not their values)."""
    return api_tokens.list_tokens(ctx.session, ctx.principal, user=_text(data, "user_id", "user"))


@action("api_token_revoke", write=True)
def api_token_revoke(ctx: ActionContext, data: dict[str, Any]) -> None:
    """Revoke an API token by its value (``token``) or id (``jti``)."""
    api_tokens.revoke(ctx.session, ctx.principal, token=_text(data, "token"), jti=_text(data, "jti"))
