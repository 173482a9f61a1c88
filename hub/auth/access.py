"""Who may read or change what. Deny by default.

The foundation rules: the hub itself and sysadmins may do everything; open datasets are readable by
everyone; shared and internal datasets by members of the owning organization. ``hub.auth.grants``
adds the grants of shared datasets to consumer organizations and clients.

Every function returns a ``Decision`` (allowed, reason, grant) so that callers can log refusals with
their reason.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from hub.auth import grants
from hub.auth.principal import Decision, Principal
from hub.catalog.models import Dataset

__all__ = ["Decision", "can_read", "can_read_quarantine", "can_write", "readable_clause", "readable_ids"]


def can_read(
    session: Session,
    principal: Principal,
    dataset: Dataset,
    *,
    scope: str | None = None,
    publication: bool = False,
) -> Decision:
    """May ``principal`` read the rows (and private metadata) of ``dataset``?

    ``scope`` (optional, e.g. ``datastore:read``): for non-open data, a token must also carry it.
    ``publication``: the data is read to be published (an open-data release of the principal's
    organization): another organization's shared data then needs a grant that allows publication.
    """
    if principal.kind == "system" or principal.sysadmin:
        return Decision(True, "sysadmin")
    if dataset.sharing == "open" and dataset.state == "active":
        return Decision(True, "open data")
    if scope and not principal.is_anonymous and not principal.has_scope(scope):
        return Decision(False, f"the token lacks the scope {scope}")
    if dataset.owner_org_id and dataset.owner_org_id in principal.orgs():
        return Decision(True, "member of the owning organization")
    return grants.decide(session, principal, dataset, publication=publication)


def can_write(session: Session, principal: Principal, org_id: str | None) -> Decision:
    """May ``principal`` change datasets and resources owned by ``org_id``?

    People: admin or editor of the organization, with ``catalog:write`` in their token. Clients: a
    client of the organization with ``catalog:write``.
    """
    if principal.kind == "system" or principal.sysadmin:
        return Decision(True, "sysadmin")
    if principal.is_anonymous:
        return Decision(False, "authentication required")
    if not principal.has_scope("catalog:write"):
        return Decision(False, "the token lacks the scope catalog:write")
    if principal.kind == "client" and org_id and principal.org_id == org_id:
        return Decision(True, "client of the organization")
    if org_id and principal.org_roles.get(org_id) in ("admin", "editor"):
        return Decision(True, "editor of the organization")
    return Decision(False, "not an editor of the owning organization")


def readable_clause(session: Session, principal: Principal) -> ColumnElement[bool]:
    """A filter on ``Dataset`` keeping exactly the datasets ``principal`` may read (lists, search)."""
    if principal.kind == "system" or principal.sysadmin:
        return true()
    open_ = and_(Dataset.sharing == "open", Dataset.state == "active")
    orgs = principal.orgs()
    if not orgs:
        return open_
    granted = grants.granted_dataset_ids(session, principal)
    return or_(
        open_,
        Dataset.owner_org_id.in_(orgs),
        and_(Dataset.sharing == "shared", Dataset.state == "active", Dataset.id.in_(granted)),
    )


def readable_ids(session: Session, principal: Principal) -> set[str] | None:
    """Ids of the non-open datasets ``principal`` may read; None means every dataset (sysadmin)."""
    if principal.kind == "system" or principal.sysadmin:
        return None
    return set(session.scalars(select(Dataset.id).where(readable_clause(session, principal))))


def can_read_quarantine(session: Session, principal: Principal, dataset: Dataset) -> Decision:
    """May ``principal`` read the quarantined rows of ``dataset``?

    Quarantined rows are the source's rows as read, unvalidated and never published: they hold
    personal data whatever the dataset's sharing class. Only the owning organization (and sysadmins)
    may read them; neither grants nor open data extend to them.
    """
    if principal.kind == "system" or principal.sysadmin:
        return Decision(True, "sysadmin")
    if principal.is_anonymous:
        return Decision(False, "quarantine: authentication required")
    if not principal.has_scope("datastore:read"):
        return Decision(False, "the token lacks the scope datastore:read")
    if dataset.owner_org_id and dataset.owner_org_id in principal.orgs():
        return Decision(True, "member of the owning organization")
    return Decision(False, "quarantined rows are readable by the owning organization only")
