"""The one door for reading protected data: decide, audit both outcomes, refuse.

Every route and command that reads a dataset's rows or private metadata (CKAN actions, the DataStore,
SQL doors, downloads, releases, ``/api/v1``, the CLI) calls ``authorize_read``; none writes the
sequence "may this principal read this dataset, write the audit entry, commit, refuse" again.

- Open, active datasets are readable by everyone; reading them is not audited (open data).
- Anything else is decided by ``hub.auth.access.can_read`` (owner organization, grants, scopes).
- A refusal is audited and committed at once (the caller's transaction is rolled back when the
  error propagates), then raised: ``AccessDeniedError`` by default, or the error the door chooses (the SQL
  doors answer exactly as for a table that does not exist, so that existence is not revealed).
- An allowed read is audited at once, or later with what was read (``Authorization.record``: the
  snapshot and the rows a query returned) when ``defer=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from hub.auth import access, audit
from hub.auth.principal import Decision, Principal
from hub.catalog.models import Dataset
from hub.errors import AccessDeniedError, HubError


@dataclass
class Authorization:
    """An allowed read (see ``authorize_read``)."""

    session: Session
    principal: Principal
    dataset: Dataset
    decision: Decision
    action: str
    audited: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    quarantine: bool = False

    @property
    def open(self) -> bool:
        """Open data, whose reads are not audited (a quarantine always is: it holds the rows as read)."""
        return not self.quarantine and self.dataset.sharing == "open" and self.dataset.state == "active"

    def record(
        self,
        *,
        outcome: str = "allowed",
        snapshot_id: int | None = None,
        rows: int | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Write the (deferred) audit entry of this read, once; open data is not audited."""
        if self.audited or self.open:
            return
        self.audited = True
        audit.record(
            self.session,
            self.action,
            self.principal,
            outcome=outcome,
            dataset_id=self.dataset.id,
            snapshot_id=snapshot_id,
            rows=rows,
            grant_id=self.decision.grant_id,
            reason=reason or self.decision.reason,
            details={**self.details, **(details or {})} or None,
        )


def denied_message(principal: Principal, dataset: Dataset) -> str:
    who = principal.name or principal.subject or ""
    return f"User {who} not authorized to read package {dataset.id}"


def authorize_read(
    session: Session,
    principal: Principal,
    dataset: Dataset,
    action: str,
    *,
    scope: str | None = None,
    publication: bool = False,
    defer: bool = False,
    details: dict[str, Any] | None = None,
    snapshot_id: int | None = None,
    rows: int | None = None,
    error: Callable[[Decision], HubError] | None = None,
    quarantine: bool = False,
) -> Authorization:
    """Decide whether ``principal`` may read ``dataset`` (``action`` names the read in the audit
    log), audit the outcome and raise on refusal (``error(decision)``, default ``AccessDeniedError``).

    ``scope``: the token scope non-open reads need (``datastore:read``, ``warehouse:query``).
    ``publication``: the read feeds an open-data release (another organization's shared data then
    needs a grant whose purpose allows publication). ``defer``: the allowed entry is written later,
    by ``Authorization.record``, with what was read. ``quarantine``: the dataset's quarantined rows
    (``access.can_read_quarantine``: the owning organization only), audited whatever the sharing class."""
    if quarantine:
        decision = access.can_read_quarantine(session, principal, dataset)
    else:
        decision = access.can_read(session, principal, dataset, scope=scope, publication=publication)
    if not decision.allowed:
        audit.record(
            session,
            action,
            principal,
            outcome="denied",
            dataset_id=dataset.id,
            reason=decision.reason,
            details=details,
        )
        session.commit()  # the refusal stays recorded although the caller's transaction fails
        raise error(decision) if error is not None else AccessDeniedError(denied_message(principal, dataset))
    auth = Authorization(
        session, principal, dataset, decision, action, details=dict(details or {}), quarantine=quarantine
    )
    if not defer:
        auth.record(snapshot_id=snapshot_id, rows=rows)
    return auth
