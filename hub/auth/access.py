"""Who may read or change what. Deny by default.

The foundation rules: the hub itself and sysadmins may do everything; open datasets are readable by
everyone; shared and internal datasets by members of the owning organization. ``hub.auth.grants``
adds the grants of shared datasets to consumer organizations and clients.

Every function returns a ``Decision`` (allowed, reason, grant) so that callers can log refusals with
their reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from hub.auth.principal import Principal
from hub.catalog.models import Dataset


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    grant_id: str | None = None

    def __bool__(self) -> bool:
        return self.allowed


def can_read(session: Session, principal: Principal, dataset: Dataset) -> Decision:
    """May ``principal`` read the rows (and private metadata) of ``dataset``?"""
    if principal.kind == "system" or principal.sysadmin:
        return Decision(True, "sysadmin")
    if dataset.sharing == "open" and dataset.state == "active":
        return Decision(True, "open data")
    if dataset.owner_org_id and dataset.owner_org_id in principal.orgs():
        return Decision(True, "member of the owning organization")
    try:
        from hub.auth import grants  # added by the access-control work (issue 5)
    except ImportError:  # pragma: no cover - before grants exist
        return Decision(False, f"dataset is {dataset.sharing}; no grant")
    return grants.decide(session, principal, dataset)


def can_write(session: Session, principal: Principal, org_id: str | None) -> Decision:
    """May ``principal`` change datasets and resources owned by ``org_id``?"""
    if principal.kind == "system" or principal.sysadmin:
        return Decision(True, "sysadmin")
    if org_id and principal.org_roles.get(org_id) in ("admin", "editor"):
        return Decision(True, "editor of the organization")
    return Decision(False, "not an editor of the owning organization")
