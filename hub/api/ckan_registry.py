"""The registry of CKAN actions and what every action receives.

An action is ``fn(ctx: ActionContext, data: dict) -> result``, registered with ``@action(name)``
(``write=True`` for actions that need POST). Actions run in a worker thread with their own session;
they raise ``hub.errors`` exceptions, which ``hub.api.errors`` turns into CKAN's envelope.

A read action may also have an in-memory variant (``@in_memory(name)``): it answers from what the
runtime already holds (no database, no file, a bounded amount of work) or returns None. The dispatcher
calls it on the event loop for requests without a token, before sending the action to a thread: a
thread hop per request, with the threads' wait for the interpreter lock, costs more than such an
answer (datastore_search's equality lookups).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.api.errors import json_too_deep
from hub.auth import access, audit
from hub.auth.authorize import authorize_read
from hub.auth.principal import Principal
from hub.catalog.ckan import StateLookup, TableState, package_dicts
from hub.catalog.models import Dataset, Organization
from hub.errors import AccessDeniedError, InvalidInputError, NotFoundError
from hub.runtime import Hub
from hub.settings import Settings

ActionFn = Callable[["ActionContext", dict[str, Any]], Any]


@dataclass(frozen=True)
class Action:
    name: str
    fn: ActionFn
    write: bool = False
    in_memory: ActionFn | None = None
    """``fn``'s answer from memory alone, or None when it needs more (see the module docstring)."""

    @property
    def side_effect_free(self) -> bool:
        return not self.write


ACTIONS: dict[str, Action] = {}


def action(name: str, *, write: bool = False) -> Callable[[ActionFn], ActionFn]:
    """Register ``fn`` as the CKAN action ``name``."""

    def register(fn: ActionFn) -> ActionFn:
        ACTIONS[name] = Action(name, fn, write)
        return fn

    return register


def in_memory(name: str) -> Callable[[ActionFn], ActionFn]:
    """Register ``fn`` as the in-memory variant of the read action ``name`` (registered before)."""

    def register(fn: ActionFn) -> ActionFn:
        act = ACTIONS[name]
        assert not act.write, "only read actions answer from memory"
        ACTIONS[name] = Action(act.name, act.fn, act.write, fn)
        return fn

    return register


def no_session() -> Session:
    """The session factory of an in-memory call: it must not reach the database."""
    raise RuntimeError("an in-memory action asked for a database session")


@dataclass
class ActionContext:
    hub: Hub
    settings: Settings
    session_factory: Callable[[], Session]
    principal: Principal
    method: str
    path: str
    query_string: str
    envelope: dict[str, Any] = field(default_factory=dict)
    """Extra top-level keys of the success envelope (``changed_entities``)."""
    opened: Session | None = None
    """The session, once an action used one (a search of open data needs none)."""

    @property
    def session(self) -> Session:
        """The metadata-database session of this request, opened on first use."""
        if self.opened is None:
            self.opened = self.session_factory()
        return self.opened

    @property
    def user_name(self) -> str:
        return self.principal.name or self.principal.subject or ""

    def states(self, *, fresh: bool = False) -> StateLookup:
        """The warehouse state of a dataset (its DataStore table), for package dicts."""
        datastore = self.hub.datastore

        def lookup(ds: Dataset) -> TableState | None:
            if not ds.contract or ds.key.count(".") != 1:
                return None
            info = datastore.table_info(ds.key, max_age=0.0 if fresh else 2.0)
            if info is None:
                return None
            return TableState(info.snapshot_id, info.committed, info.rows)

        return lookup

    def package(self, ds: Dataset) -> dict[str, Any]:
        return package_dicts(self.session, self.settings, [ds], self.states())[0]


# --- parameter helpers -----------------------------------------------------------------------------

MAX_NESTING: int = Settings.model_fields["query_max_nesting"].default
"""Nesting of JSON parameters when the caller passes no limit (pass ``ctx.settings.query_max_nesting``)."""


def get_or_bust(data: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` present in ``data``; CKAN's ``{"id": ["Missing value"]}`` otherwise."""
    for key in keys:
        value = data.get(key)
        if value not in (None, ""):
            return value
    raise InvalidInputError("Missing value", {keys[0]: ["Missing value"]})


def as_bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on", "t", "y"):
        return True
    if text in ("false", "0", "no", "off", "f", "n", "none"):
        return False
    raise InvalidInputError("invalid boolean", {key: ["Value must be one of: true, false"]})


INT_MAX = 2**31 - 1
"""The largest integer parameter accepted by default (Solr's and PostgreSQL's ``int``): paging past it
means nothing, and a larger value must not reach SQLite, DuckDB or date arithmetic (their 64-bit
integers overflow)."""


def as_int(
    data: dict[str, Any], key: str, default: int | None, *, minimum: int = 0, maximum: int = INT_MAX
) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, int):  # bool included: True is 1
        number = int(value)
    else:
        text = value.strip() if isinstance(value, str) else ""
        digits = text[1:] if text[:1] in ("+", "-") else text
        if not digits.isdecimal():  # int() would also take "1_000"
            raise InvalidInputError("invalid integer", {key: ["Invalid integer"]})
        # past 30 digits the value is out of range anyway (and int() refuses 4,300 digits)
        number = int(text) if len(digits) <= 30 else (minimum - 1 if text[0] == "-" else maximum + 1)
    if number < minimum:
        raise InvalidInputError("not a natural number", {key: ["Must be a natural number"]})
    if number > maximum:
        raise InvalidInputError("too large", {key: [f"Must be at most {maximum}"]})
    return number


def as_list(
    data: dict[str, Any], key: str, *, comma: bool = False, max_nesting: int = MAX_NESTING
) -> list[Any] | None:
    """A list parameter: a list, a JSON array string, or (with ``comma``) a comma-separated string."""
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = _json_param(key, text, max_nesting)
            if isinstance(parsed, list):
                return parsed
        if comma:
            return [p.strip() for p in text.split(",") if p.strip()]
        raise InvalidInputError("invalid JSON", {key: ["Could not parse as valid JSON"]})
    raise InvalidInputError("not a list", {key: ["Not a list"]})


def as_json(data: dict[str, Any], key: str, *, max_nesting: int = MAX_NESTING) -> Any:
    """A value that GET requests send as a JSON string (DataStore ``filters``, dict ``q``)."""
    value = data.get(key)
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        return _json_param(key, value, max_nesting)
    return value


def _json_param(key: str, text: str, max_nesting: int) -> Any:
    """``text`` parsed as JSON, nested at most ``max_nesting`` deep (checked before parsing)."""
    if json_too_deep(text, max_nesting):
        raise InvalidInputError("too deep", {key: [f"JSON nested deeper than {max_nesting} levels"]})
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInputError("invalid JSON", {key: ["Could not parse as valid JSON"]}) from exc


# --- lookups and access ----------------------------------------------------------------------------


def find_dataset(ctx: ActionContext, id_or_name: str) -> Dataset:
    ds = ctx.session.scalar(select(Dataset).where(Dataset.id == id_or_name)) or ctx.session.scalar(
        select(Dataset).where(Dataset.name == id_or_name)
    )
    if ds is None or (ds.state == "deleted" and not ctx.principal.sysadmin):
        raise NotFoundError("Not found")
    return ds


def find_organization(ctx: ActionContext, id_or_name: str) -> Organization:
    org = ctx.session.scalar(select(Organization).where(Organization.id == id_or_name)) or ctx.session.scalar(
        select(Organization).where(Organization.name == id_or_name)
    )
    if org is None or org.state == "deleted":
        raise NotFoundError("Not found")
    return org


def require_read(
    ctx: ActionContext, ds: Dataset, what: str = "dataset.read", scope: str | None = None
) -> None:
    """Raise CKAN's 403 unless the caller may read ``ds``; non-open reads and refusals are audited
    (``hub.auth.authorize.authorize_read``, the one door for reading protected data)."""
    authorize_read(ctx.session, ctx.principal, ds, what, scope=scope)


def require_write(ctx: ActionContext, org_id: str | None, what: str, target: str) -> None:
    decision = access.can_write(ctx.session, ctx.principal, org_id)
    if not decision.allowed:
        deny(ctx, what, f"User {ctx.user_name} not authorized to edit {target}", reason=decision.reason)


def deny(ctx: ActionContext, what: str, message: str, **details: Any) -> None:
    """Record the refusal (committed now: the request's session is rolled back on error) and raise."""
    audit.record(ctx.session, what, ctx.principal, outcome="denied", **details)
    ctx.session.commit()
    raise AccessDeniedError(message)


def can_see(ctx: ActionContext, ds: Dataset) -> bool:
    """Whether a private dataset may appear in lists for this caller (no audit entry: metadata only)."""
    if ds.sharing == "open":
        return True
    return bool(access.can_read(ctx.session, ctx.principal, ds))
