"""``/api/v1/grants`` (data-sharing grants) and ``/api/v1/audit`` (audit log search for auditors).

- ``GET /api/v1/grants`` lists the grants the caller may see (of datasets its organization owns, or
  held by its organization; all for sysadmins); ``POST`` creates one (admin of the owning organization
  or a ``grants:manage`` client of it); ``DELETE /api/v1/grants/{id}`` revokes it (effective on the
  next request).
- ``GET /api/v1/audit`` searches the audit log (scope ``audit:read``; sysadmins see every entry,
  organization admins the entries of their organization's datasets and callers);
  ``GET /api/v1/audit/verify`` checks the chain (sysadmins).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from hub.api.deps import SessionDep, SettingsDep, V1PrincipalDep
from hub.auth import audit, grants
from hub.auth.audit_verify import verify
from hub.auth.models import Grant
from hub.auth.principal import Principal
from hub.catalog.models import Dataset
from hub.errors import AccessDenied, AuthenticationError, NotFoundError

router = APIRouter(prefix="/api/v1", tags=["grants", "audit"])


class GrantIn(BaseModel):
    dataset: str = Field(description="Dataset id, key (civil_status.births) or name.")
    consumer_org: str = Field(description="Consumer organization id or name.")
    consumer_client_id: str | None = Field(default=None, description="Limit the grant to one client.")
    purpose: str = Field(description="Mục đích: why the consumer needs the data.")
    legal_basis: str = Field(description="Căn cứ pháp lý: the legal basis of the sharing.")
    expires_at: datetime | None = Field(default=None, description="Expiry (UTC); none = until revoked.")


class RevokeIn(BaseModel):
    reason: str | None = None


def _require_login(principal: Principal) -> None:
    if principal.is_anonymous:
        raise AuthenticationError("a token is required")


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


@router.get("/grants", summary="List data-sharing grants")
def list_grants(
    session: SessionDep,
    principal: V1PrincipalDep,
    dataset: str | None = None,
    include_revoked: bool = False,
) -> dict[str, Any]:
    _require_login(principal)
    rows = grants.list_grants(session, principal, dataset=dataset, include_revoked=include_revoked)
    return {"grants": [grants.grant_dict(session, g) for g in rows]}


@router.post("/grants", status_code=201, summary="Grant a consumer read access to a shared dataset")
def create_grant(body: GrantIn, session: SessionDep, principal: V1PrincipalDep) -> dict[str, Any]:
    _require_login(principal)
    g = grants.create(
        session,
        principal,
        dataset=body.dataset,
        consumer_org=body.consumer_org,
        consumer_client_id=body.consumer_client_id,
        purpose=body.purpose,
        legal_basis=body.legal_basis,
        expires_at=_naive_utc(body.expires_at),
    )
    return grants.grant_dict(session, g)


@router.get("/grants/{grant_id}", summary="One grant")
def get_grant(grant_id: str, session: SessionDep, principal: V1PrincipalDep) -> dict[str, Any]:
    _require_login(principal)
    visible = {g.id for g in grants.list_grants(session, principal, include_revoked=True)}
    g = session.get(Grant, grant_id)
    if g is None or g.id not in visible:
        raise NotFoundError(f"grant {grant_id!r} not found")
    return grants.grant_dict(session, g)


@router.delete("/grants/{grant_id}", summary="Revoke a grant (effective on the next request)")
def revoke_grant(
    grant_id: str, session: SessionDep, principal: V1PrincipalDep, body: RevokeIn | None = None
) -> dict[str, Any]:
    _require_login(principal)
    g = grants.revoke(session, principal, grant_id, reason=body.reason if body else None)
    return grants.grant_dict(session, g)


@router.get("/audit", summary="Search the audit log (scope audit:read)")
def search_audit(
    session: SessionDep,
    principal: V1PrincipalDep,
    action: str | None = Query(default=None, description="Exact action, or a prefix ending in *"),
    outcome: str | None = None,
    dataset: str | None = Query(default=None, description="Dataset id or key"),
    subject: str | None = None,
    client_id: str | None = None,
    org_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(default=100, ge=1, le=10_000),
    offset: int = Query(default=0, ge=0),
) -> dict[str, Any]:
    _require_login(principal)
    if not principal.has_scope("audit:read"):
        audit.record(session, "audit.search", principal, outcome="denied", reason="no audit:read scope")
        session.commit()  # keep the refusal: the request's session is rolled back on error
        raise AccessDenied("the scope audit:read is required")
    dataset_id = None
    if dataset:
        ds = session.get(Dataset, dataset) or session.scalar(select(Dataset).where(Dataset.key == dataset))
        if ds is None:
            raise NotFoundError(f"dataset {dataset!r} not found")
        dataset_id = ds.id
    entries = audit.search(
        session,
        action=action,
        outcome=outcome,
        dataset_id=dataset_id,
        subject=subject,
        client_id=client_id,
        org_id=org_id,
        since=_naive_utc(since),
        until=_naive_utc(until),
        limit=limit,
        offset=offset,
        orgs=None if principal.sysadmin else principal.orgs(),
    )
    audit.record(
        session,
        "audit.search",
        principal,
        rows=len(entries),
        details={k: v for k, v in {"action": action, "dataset": dataset, "subject": subject}.items() if v},
    )
    return {"count": len(entries), "entries": [audit.entry_dict(e) for e in entries]}


@router.get("/audit/verify", summary="Verify the audit chain and its signed checkpoints (sysadmins)")
def verify_audit(session: SessionDep, settings: SettingsDep, principal: V1PrincipalDep) -> dict[str, Any]:
    _require_login(principal)
    if not principal.sysadmin:
        raise AccessDenied("sysadmins only")
    report = verify(session, settings)
    bad = report.first_bad
    return {
        "ok": report.ok,
        "entries": report.entries,
        "checkpoints": report.checkpoints,
        "first_bad": {"seq": bad.seq, "kind": bad.kind, "message": bad.message} if bad else None,
    }
