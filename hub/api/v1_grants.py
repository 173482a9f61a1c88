"""``/api/v1/grants`` (data-sharing grants) and ``/api/v1/audit`` (audit log search for auditors).

- ``GET /api/v1/grants`` lists the grants the caller may see (of datasets its organization owns, or
  held by its organization; all for sysadmins); ``POST`` creates one (admin of the owning organization
  or a ``grants:manage`` client of it); ``DELETE /api/v1/grants/{id}`` revokes it (effective on the
  next request).
- ``GET /api/v1/audit`` searches the audit log (scope ``audit:read``; sysadmins see every entry,
  organization admins the entries of their organization's datasets and callers);
  ``GET /api/v1/audit/verify`` checks the chain (sysadmins).
- ``GET /api/v1/datasets/{id}/runs``: ingest runs, for those who may read the dataset;
  ``GET /api/v1/datasets/{id}/quarantine``: quarantined rows, for the owning organization only
  (they hold personal data whatever the sharing class). Both audited, refusals included.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.api.deps import SessionDep, SettingsDep, V1PrincipalDep
from hub.auth import audit, grants
from hub.auth.audit_verify import verify
from hub.auth.authorize import authorize_read
from hub.auth.models import Grant
from hub.auth.principal import Decision, Principal
from hub.catalog.loader import get_dataset
from hub.catalog.models import Dataset, Run
from hub.errors import AccessDeniedError, AuthenticationError, HubError, NotFoundError
from hub.warehouse.quarantine import read_quarantine
from hub.warehouse.tables import Warehouse

router = APIRouter(prefix="/api/v1", tags=["grants", "audit"])


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past year 9999 in UTC
        raise ValueError("out of range once converted to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_naive_utc)]
"""A date and time as naive UTC (the database's form); one that UTC cannot hold is invalid (422)."""


class GrantIn(BaseModel):
    dataset: str = Field(description="Dataset id, key (civil_status.births) or name.")
    consumer_org: str = Field(description="Consumer organization id or name.")
    consumer_client_id: str | None = Field(default=None, description="Limit the grant to one client.")
    purpose: str = Field(description="Mục đích: why the consumer needs the data.")
    legal_basis: str = Field(description="Căn cứ pháp lý: the legal basis of the sharing.")
    expires_at: UtcDatetime | None = Field(default=None, description="Expiry (UTC); none = until revoked.")
    allow_publication: bool = Field(
        default=False,
        description="The purpose allows publication: open-data releases of the consumer may read the data "
        "(through the de-identification gate).",
    )


class RevokeIn(BaseModel):
    reason: str | None = None


def _require_login(principal: Principal) -> None:
    if principal.is_anonymous:
        raise AuthenticationError("a token is required")


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
        expires_at=body.expires_at,
        allow_publication=body.allow_publication,
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
    since: UtcDatetime | None = None,
    until: UtcDatetime | None = None,
    limit: int = Query(default=100, ge=1, le=10_000),
    offset: int = Query(default=0, ge=0, le=2**31 - 1),
) -> dict[str, Any]:
    _require_login(principal)
    if not principal.has_scope("audit:read"):
        audit.record(session, "audit.search", principal, outcome="denied", reason="no audit:read scope")
        session.commit()  # keep the refusal: the request's session is rolled back on error
        raise AccessDeniedError("the scope audit:read is required")
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
        since=since,
        until=until,
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
        raise AccessDeniedError("sysadmins only")
    report = verify(session, settings)
    bad = report.first_bad
    return {
        "ok": report.ok,
        "entries": report.entries,
        "checkpoints": report.checkpoints,
        "first_bad": {"seq": bad.seq, "kind": bad.kind, "message": bad.message} if bad else None,
    }


# --- runs and quarantine (the owning organization's view of its ingests) ---------------------------


def _dataset(session: Session, ref: str) -> Dataset:
    """A dataset by id, key or CKAN name (``NotFoundError`` otherwise)."""
    return get_dataset(session, ref)


def _refusal(principal: Principal) -> Callable[[Decision], HubError]:
    """The /api/v1 answer to a refused read: 401 without a token, else 403 with the reason."""

    def error(decision: Decision) -> HubError:
        if principal.is_anonymous:
            return AuthenticationError("a token is required")
        return AccessDeniedError(decision.reason)

    return error


@router.get("/datasets/{dataset}/runs", summary="Ingest runs of a dataset (as its readers see them)")
def dataset_runs(
    dataset: str,
    session: SessionDep,
    principal: V1PrincipalDep,
    limit: int = Query(default=50, ge=1, le=1000),
) -> dict[str, Any]:
    ds = _dataset(session, dataset)
    auth = authorize_read(session, principal, ds, "runs.read", defer=True, error=_refusal(principal))
    runs = list(
        session.scalars(
            select(Run).where(Run.dataset_id == ds.id).order_by(Run.started_at.desc()).limit(limit)
        )
    )
    auth.record(rows=len(runs))
    return {
        "dataset": ds.key,
        "runs": [
            {
                "id": r.id,
                "status": r.status,
                "mode": r.mode,
                "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "rows_read": r.rows_read,
                "rows_loaded": r.rows_loaded,
                "rows_quarantined": r.rows_quarantined,
                "snapshot_id": r.snapshot_id,
                "error": r.error,
                "error_code": r.error_code,
                "triggered_by": r.triggered_by,
            }
            for r in runs
        ],
    }


@router.get("/datasets/{dataset}/quarantine", summary="Quarantined rows (owning organization only)")
def dataset_quarantine(
    dataset: str,
    session: SessionDep,
    settings: SettingsDep,
    principal: V1PrincipalDep,
    run: str | None = None,
    limit: int = Query(default=100, ge=1, le=10_000),
) -> dict[str, Any]:
    ds = _dataset(session, dataset)
    auth = authorize_read(
        session,
        principal,
        ds,
        "quarantine.read",
        quarantine=True,
        defer=True,
        details={"run": run} if run else None,
        error=_refusal(principal),
    )
    wh = Warehouse(settings)
    table = read_quarantine(wh, ds.key, run_id=run, limit=limit) if wh.has_table(ds.key) else None
    rows = table.to_pylist() if table is not None else []
    auth.record(rows=len(rows))
    for r in rows:
        at = r.get("quarantined_at")
        if at is not None:
            r["quarantined_at"] = at.isoformat()
    return {"dataset": ds.key, "count": len(rows), "rows": rows}
