"""Saved queries of the console: a title and SQL of one person, shared with one of their organizations
if they choose.

Who sees a saved query: its owner, and, when it is shared with an organization, the members of that
organization as long as the owner is a member too (a person who leaves the organization takes their
shared queries with them). To anyone else it does not exist (``NotFoundError``). Only the owner
changes or deletes it; another member who tries is refused (``AccessDeniedError``). Sharing is checked at
every read, against the memberships of that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from hub.auth.models import Membership, User
from hub.catalog.models import Organization
from hub.console.models import SavedQuery
from hub.db import utcnow
from hub.errors import AccessDeniedError, InvalidInputError, NotFoundError

TITLE_CHARS = 200


@dataclass(frozen=True)
class SavedView:
    """A saved query as the console shows it."""

    id: str
    title: str
    sql: str
    owner_name: str
    mine: bool
    org_id: str | None
    org_title: str | None
    org_title_en: str | None
    updated: datetime


def _visible(user_id: str) -> ColumnElement[bool]:
    viewer, owner = aliased(Membership), aliased(Membership)
    shared = and_(
        SavedQuery.org_id.is_not(None),
        exists().where(viewer.user_id == user_id, viewer.org_id == SavedQuery.org_id),
        exists().where(owner.user_id == SavedQuery.owner_id, owner.org_id == SavedQuery.org_id),
    )
    return or_(SavedQuery.owner_id == user_id, shared)


def _view(row: SavedQuery, owner_name: str, org: Organization | None, user_id: str) -> SavedView:
    return SavedView(
        row.id,
        row.title,
        row.sql,
        owner_name,
        row.owner_id == user_id,
        row.org_id,
        org.title if org else None,
        org.title_en if org else None,
        row.updated,
    )


def visible(session: Session, user_id: str) -> list[SavedView]:
    """The saved queries ``user_id`` sees: their own first, then those shared with them; newest first."""
    rows = session.execute(
        select(SavedQuery, User.name, Organization)
        .join(User, User.id == SavedQuery.owner_id)
        .outerjoin(Organization, Organization.id == SavedQuery.org_id)
        .where(_visible(user_id))
        .order_by((SavedQuery.owner_id != user_id), SavedQuery.updated.desc())
    ).all()
    return [_view(q, name, org, user_id) for q, name, org in rows]


def get(session: Session, query_id: str, user_id: str) -> SavedView:
    """The saved query ``query_id`` if ``user_id`` sees it, else ``NotFoundError``."""
    found = session.execute(
        select(SavedQuery, User.name, Organization)
        .join(User, User.id == SavedQuery.owner_id)
        .outerjoin(Organization, Organization.id == SavedQuery.org_id)
        .where(SavedQuery.id == query_id, _visible(user_id))
    ).first()
    if found is None:
        raise NotFoundError(f"no saved query {query_id}")
    q, name, org = found
    return _view(q, name, org, user_id)


def _checked(session: Session, user_id: str, title: str, sql: str, org_id: str | None, max_sql: int) -> str:
    title = " ".join(title.split())[:TITLE_CHARS]
    if not sql.strip():
        raise InvalidInputError("a saved query needs its SQL", {"sql": ["empty"]})
    if len(sql) > max_sql:
        raise InvalidInputError("the SQL is too long", {"sql": [f"at most {max_sql} characters"]})
    if org_id is not None:
        member = session.scalar(
            select(Membership.id).where(Membership.user_id == user_id, Membership.org_id == org_id)
        )
        if member is None:
            raise InvalidInputError(
                "a query can be shared only with an organization you belong to", {"org": [org_id]}
            )
    return title or " ".join(sql.split())[:60]


def create(
    session: Session, user_id: str, title: str, sql: str, org_id: str | None, *, max_sql: int
) -> SavedQuery:
    title = _checked(session, user_id, title, sql, org_id, max_sql)
    now = utcnow()
    row = SavedQuery(owner_id=user_id, org_id=org_id, title=title, sql=sql, created=now, updated=now)
    session.add(row)
    session.flush()
    return row


def _own(session: Session, query_id: str, user_id: str) -> SavedQuery:
    view = get(session, query_id, user_id)  # NotFoundError when not visible
    if not view.mine:
        raise AccessDeniedError("only the owner of a saved query changes or deletes it")
    row = session.get(SavedQuery, query_id)
    assert row is not None
    return row


def update(
    session: Session, query_id: str, user_id: str, title: str, sql: str, org_id: str | None, *, max_sql: int
) -> SavedQuery:
    row = _own(session, query_id, user_id)
    row.title = _checked(session, user_id, title, sql, org_id, max_sql)
    row.sql = sql
    row.org_id = org_id
    row.updated = utcnow()
    return row


def delete(session: Session, query_id: str, user_id: str) -> None:
    session.delete(_own(session, query_id, user_id))
