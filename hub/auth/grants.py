"""Data-sharing grants: the owning organization lets a consumer organization (or one of its clients)
read a shared (dùng chung) dataset, with a purpose, a legal basis and an expiry. Deny by default.

A grant is checked on every request (no caching), so a revocation takes effect on the next request.
Every change is an audit entry (``grant.create``, ``grant.revoke``); refusals are recorded by the
callers of ``hub.auth.access.can_read`` with the reason given here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.auth import audit
from hub.auth.models import Grant, OAuthClient
from hub.auth.principal import Decision, Principal
from hub.catalog.loader import get_dataset
from hub.catalog.models import Dataset, Organization
from hub.db import utcnow
from hub.errors import AccessDeniedError, InvalidInputError, NotFoundError


def decide(
    session: Session, principal: Principal, dataset: Dataset, *, publication: bool = False
) -> Decision:
    """Grant-based decision for a caller who does not own ``dataset`` (and is not a sysadmin).

    ``publication``: only a grant whose purpose allows publication counts (release builds)."""
    if dataset.state != "active":
        return Decision(False, "dataset is not active")
    if dataset.sharing == "internal":
        return Decision(False, "dataset is internal (dùng riêng): the owning organization only")
    if dataset.sharing != "shared":
        return Decision(False, f"unknown sharing class {dataset.sharing!r}")
    if principal.is_anonymous:
        return Decision(False, "dataset is shared (dùng chung): authentication required")
    orgs = principal.orgs()
    if not orgs:
        return Decision(False, "dataset is shared (dùng chung): the caller belongs to no organization")
    g = active_grant(session, dataset.id, orgs, principal.client_id, publication=publication)
    if g is None:
        if publication:
            return Decision(
                False,
                "dataset is shared (dùng chung): no active grant that allows publication for the "
                "release's organization",
            )
        return Decision(
            False, "dataset is shared (dùng chung): no active grant for the caller's organization"
        )
    return Decision(True, f"grant {g.id}", g.id)


def active_grant(
    session: Session,
    dataset_id: str,
    orgs: set[str],
    client_id: str | None,
    *,
    publication: bool = False,
) -> Grant | None:
    now = utcnow()
    q = select(Grant).where(
        Grant.dataset_id == dataset_id,
        Grant.consumer_org_id.in_(orgs),
        Grant.revoked_at.is_(None),
        or_(Grant.expires_at.is_(None), Grant.expires_at > now),
    )
    if publication:
        q = q.where(Grant.allow_publication.is_(True))
    if client_id:
        q = q.where(or_(Grant.consumer_client_id.is_(None), Grant.consumer_client_id == client_id))
    else:
        q = q.where(Grant.consumer_client_id.is_(None))
    return session.scalars(q.order_by(Grant.created)).first()


def granted_dataset_ids(session: Session, principal: Principal) -> set[str]:
    """Ids of datasets the caller holds an active grant on (for list and search filters)."""
    orgs = principal.orgs()
    if not orgs:
        return set()
    now = utcnow()
    q = select(Grant.dataset_id).where(
        Grant.consumer_org_id.in_(orgs),
        Grant.revoked_at.is_(None),
        or_(Grant.expires_at.is_(None), Grant.expires_at > now),
    )
    if principal.client_id:
        q = q.where(or_(Grant.consumer_client_id.is_(None), Grant.consumer_client_id == principal.client_id))
    else:
        q = q.where(Grant.consumer_client_id.is_(None))
    return set(session.scalars(q))


def may_manage(principal: Principal, dataset: Dataset) -> bool:
    """Sysadmins, and admins (people) or ``grants:manage`` clients of the owning organization."""
    if principal.kind == "system" or principal.sysadmin:
        return True
    if not principal.has_scope("grants:manage") or not dataset.owner_org_id:
        return False
    if principal.kind == "client":
        return principal.org_id == dataset.owner_org_id
    return principal.org_roles.get(dataset.owner_org_id) == "admin"


def _dataset(session: Session, ref: str) -> Dataset:
    """A dataset by id, key or CKAN name (``NotFoundError`` otherwise)."""
    return get_dataset(session, ref)


def create(
    session: Session,
    actor: Principal,
    *,
    dataset: str,
    consumer_org: str,
    purpose: str,
    legal_basis: str,
    expires_at: datetime | None = None,
    consumer_client_id: str | None = None,
    allow_publication: bool = False,
) -> Grant:
    ds = _dataset(session, dataset)
    if not may_manage(actor, ds):
        audit.record(
            session,
            "grant.create",
            actor,
            outcome="denied",
            dataset_id=ds.id,
            reason="not an admin of the owner",
        )
        session.commit()  # the refusal stays recorded although the caller's transaction fails
        raise AccessDeniedError("only an admin of the owning organization may grant access to this dataset")
    org = session.get(Organization, consumer_org) or session.scalar(
        select(Organization).where(Organization.name == consumer_org)
    )
    if org is None:
        raise NotFoundError(f"organization {consumer_org!r} not found")
    errors: dict[str, list[str]] = {}
    if ds.sharing != "shared":
        errors["dataset"] = [f"only shared (dùng chung) datasets are granted; this one is {ds.sharing}"]
    if org.id == ds.owner_org_id:
        errors["consumer_org"] = ["the owning organization needs no grant"]
    if not purpose.strip():
        errors["purpose"] = ["required"]
    if not legal_basis.strip():
        errors["legal_basis"] = ["required (the legal basis of the sharing, e.g. a decree article)"]
    if expires_at is not None and expires_at <= utcnow():
        errors["expires_at"] = ["must be in the future"]
    if consumer_client_id:
        client = session.scalar(select(OAuthClient).where(OAuthClient.client_id == consumer_client_id))
        if client is None or client.org_id != org.id:
            errors["consumer_client_id"] = ["not a client of the consumer organization"]
    if errors:
        raise InvalidInputError("invalid grant", errors)
    g = Grant(
        dataset_id=ds.id,
        consumer_org_id=org.id,
        consumer_client_id=consumer_client_id,
        purpose=purpose.strip(),
        legal_basis=legal_basis.strip(),
        allow_publication=allow_publication,
        expires_at=expires_at,
        created_by=actor.name or actor.subject,
        created=utcnow(),
    )
    session.add(g)
    session.flush()
    audit.record(
        session,
        "grant.create",
        actor,
        dataset_id=ds.id,
        grant_id=g.id,
        details={
            "consumer_org": org.name,
            "consumer_client_id": consumer_client_id,
            "purpose": g.purpose,
            "legal_basis": g.legal_basis,
            "allow_publication": allow_publication,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return g


def revoke(session: Session, actor: Principal, grant_id: str, *, reason: str | None = None) -> Grant:
    g = session.get(Grant, grant_id)
    if g is None:
        raise NotFoundError(f"grant {grant_id!r} not found")
    ds = session.get(Dataset, g.dataset_id)
    assert ds is not None
    if not may_manage(actor, ds):
        audit.record(
            session,
            "grant.revoke",
            actor,
            outcome="denied",
            dataset_id=ds.id,
            grant_id=g.id,
            reason="not an admin of the owner",
        )
        session.commit()  # the refusal stays recorded although the caller's transaction fails
        raise AccessDeniedError("only an admin of the owning organization may revoke this grant")
    if g.revoked_at is None:
        g.revoked_at = utcnow()
        g.revoked_by = actor.name or actor.subject
        g.revoke_reason = reason
        session.flush()
        audit.record(session, "grant.revoke", actor, dataset_id=ds.id, grant_id=g.id, reason=reason)
    return g


def list_grants(
    session: Session, principal: Principal, *, dataset: str | None = None, include_revoked: bool = False
) -> list[Grant]:
    """Grants the caller may see: all for sysadmins; else those of datasets it owns or grants it holds."""
    q = select(Grant).order_by(Grant.created)
    if dataset:
        q = q.where(Grant.dataset_id == _dataset(session, dataset).id)
    if not include_revoked:
        q = q.where(Grant.revoked_at.is_(None))
    if not (principal.kind == "system" or principal.sysadmin):
        orgs = principal.orgs()
        owned = select(Dataset.id).where(Dataset.owner_org_id.in_(orgs))
        q = q.where(or_(Grant.dataset_id.in_(owned), Grant.consumer_org_id.in_(orgs)))
    return list(session.scalars(q))


def grant_dict(session: Session, g: Grant) -> dict[str, Any]:
    ds = session.get(Dataset, g.dataset_id)
    org = session.get(Organization, g.consumer_org_id)
    now = utcnow()
    state = "revoked" if g.revoked_at else ("expired" if g.expires_at and g.expires_at <= now else "active")
    return {
        "id": g.id,
        "dataset_id": g.dataset_id,
        "dataset": ds.key if ds else None,
        "consumer_org_id": g.consumer_org_id,
        "consumer_org": org.name if org else None,
        "consumer_client_id": g.consumer_client_id,
        "purpose": g.purpose,
        "legal_basis": g.legal_basis,
        "allow_publication": bool(g.allow_publication),
        "expires_at": g.expires_at.isoformat() if g.expires_at else None,
        "created": g.created.isoformat(),
        "created_by": g.created_by,
        "revoked_at": g.revoked_at.isoformat() if g.revoked_at else None,
        "revoked_by": g.revoked_by,
        "revoke_reason": g.revoke_reason,
        "state": state,
    }
