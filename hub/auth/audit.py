"""The tamper-evident audit log: one entry per access to non-open data, refusal, grant change, run
and administrative change.

FOUNDATION STUB: ``record`` is the contract callers rely on; the access-control work (issue 5)
implements it as an append-only, hash-chained table. Until then it does nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hub.auth.principal import Principal


def record(
    session: Session,
    action: str,
    principal: Principal,
    *,
    outcome: str = "allowed",
    dataset_id: str | None = None,
    snapshot_id: int | None = None,
    rows: int | None = None,
    grant_id: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit entry in ``session``'s transaction.

    ``action`` is a dotted name: ``dataset.read``, ``datastore.search``, ``query.sql``, ``download``,
    ``run.start``, ``run.finish``, ``grant.create``, ``grant.revoke``, ``admin.*``.
    ``outcome`` is ``allowed``, ``denied`` or ``error``.
    """
    return None
