"""The tamper-evident audit log: one entry per access to non-open data, refusal, grant change, run
and administrative change.

Append-only and hash-chained, after X-Road's message log: entry ``n`` carries ``prev_hash`` (the hash
of entry ``n-1``) and ``hash = sha256(canonical JSON of its fields, prev_hash included)``. Appends are
serialized through the one-row ``audit_head`` table (its row lock on PostgreSQL, the write lock on
SQLite), so the chain never forks. Every ``HUB_AUDIT_CHECKPOINT_EVERY`` entries, or when the last
checkpoint is older than ``HUB_AUDIT_CHECKPOINT_SECONDS``, a checkpoint "entry n has hash h" is signed
with the hub's key: an attacker who rewrites the whole chain still cannot forge it.
``hub.auth.audit_verify`` checks all of this end to end.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, or_, select, update
from sqlalchemy.orm import Session

from hub.auth.models import AuditCheckpoint, AuditEntry, AuditHead
from hub.auth.principal import Principal
from hub.db import utcnow
from hub.settings import Settings

GENESIS = "0" * 64
OUTCOMES = ("allowed", "denied", "error")
HASHED_FIELDS = (
    "seq",
    "ts",
    "action",
    "outcome",
    "actor_kind",
    "subject",
    "actor_name",
    "client_id",
    "org_id",
    "dataset_id",
    "snapshot_id",
    "rows",
    "grant_id",
    "reason",
    "ip",
    "details",
    "prev_hash",
)

_settings_by_url: dict[str, Settings] = {}


def register_settings(settings: Settings) -> None:
    """Tell the audit log which settings (signing key) belong to a database (called by app and CLI)."""
    _settings_by_url[settings.database_url] = settings


def _settings_for(session: Session) -> Settings | None:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    url = engine.url.render_as_string(hide_password=False)
    found = _settings_by_url.get(url)
    if found is None:
        from hub.settings import get_settings

        s = get_settings()
        if s.database_url == url:
            return s
    return found


def canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_fields(row: Any) -> dict[str, Any]:
    """The hashed fields of an entry (an ``AuditEntry`` or a mapping)."""
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    out = {k: get(k) for k in HASHED_FIELDS}
    ts = out["ts"]
    out["ts"] = ts.isoformat() if isinstance(ts, datetime) else ts
    return out


def entry_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


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
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    # Take the head's lock first: on SQLite this write takes the database write lock, on PostgreSQL
    # the row lock; either way no other transaction can append until this one ends.
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    head = session.execute(
        select(AuditHead.seq, AuditHead.hash, AuditHead.checkpoint_seq, AuditHead.checkpoint_at).where(
            AuditHead.id == 1
        )
    ).one()
    clean_details = json.loads(json.dumps(details, default=str)) if details else None
    values: dict[str, Any] = {
        "seq": head.seq + 1,
        "ts": utcnow(),
        "action": action,
        "outcome": outcome,
        "actor_kind": principal.kind,
        "subject": principal.subject,
        "actor_name": principal.name,
        "client_id": principal.client_id,
        "org_id": principal.org_id,
        "dataset_id": dataset_id,
        "snapshot_id": int(snapshot_id) if snapshot_id is not None else None,
        "rows": int(rows) if rows is not None else None,
        "grant_id": grant_id,
        "reason": reason,
        "ip": principal.ip,
        "details": clean_details,
        "prev_hash": head.hash,
    }
    values["hash"] = entry_hash(entry_fields(values))
    session.execute(insert(AuditEntry).values(**values))
    new_head: dict[str, Any] = {"seq": values["seq"], "hash": values["hash"]}
    settings = _settings_for(session)
    if settings is not None and _checkpoint_due(
        settings, values["seq"], head.checkpoint_seq, head.checkpoint_at
    ):
        _write_checkpoint(session, settings, values["seq"], values["hash"])
        new_head.update(checkpoint_seq=values["seq"], checkpoint_at=utcnow())
    elif head.checkpoint_at is None:
        new_head["checkpoint_at"] = utcnow()  # the interval runs from the first entry
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(**new_head))


def _checkpoint_due(settings: Settings, seq: int, last_seq: int, last_at: datetime | None) -> bool:
    if seq - last_seq >= settings.audit_checkpoint_every:
        return True
    if last_at is None:
        return False
    return utcnow() - last_at >= timedelta(seconds=settings.audit_checkpoint_seconds)


def _write_checkpoint(session: Session, settings: Settings, seq: int, entry_hash_: str) -> AuditCheckpoint:
    from joserfc import jws

    from hub.auth import keys

    ring = keys.keyring(settings, session=session)
    payload = {"seq": seq, "hash": entry_hash_, "ts": int(time.time()), "iss": settings.site_url.rstrip("/")}
    signature = jws.serialize_compact(
        {"alg": ring.current_alg, "kid": ring.current.kid, "typ": "audit-checkpoint"},
        canonical(payload),
        ring.current,
        algorithms=[ring.current_alg],
    )
    cp = AuditCheckpoint(
        seq=seq, hash=entry_hash_, kid=str(ring.current.kid), signature=signature, ts=utcnow()
    )
    session.add(cp)
    session.flush()
    return cp


def checkpoint(session: Session, settings: Settings) -> AuditCheckpoint | None:
    """Sign a checkpoint at the current head now (``hub audit checkpoint``); None if the log is empty."""
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    if head.seq == 0:
        return None
    cp = _write_checkpoint(session, settings, head.seq, head.hash)
    session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(checkpoint_seq=head.seq, checkpoint_at=utcnow())
    )
    return cp


def search(
    session: Session,
    *,
    action: str | None = None,
    outcome: str | None = None,
    dataset_id: str | None = None,
    subject: str | None = None,
    client_id: str | None = None,
    org_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    orgs: set[str] | None = None,
) -> list[AuditEntry]:
    """Entries matching every given filter, newest first. ``action`` ending in ``*`` is a prefix.

    ``orgs``: only entries of callers of these organizations or about datasets they own.
    """
    q = select(AuditEntry)
    if orgs is not None:
        from hub.catalog.models import Dataset

        owned = select(Dataset.id).where(Dataset.owner_org_id.in_(orgs))
        q = q.where(or_(AuditEntry.org_id.in_(orgs), AuditEntry.dataset_id.in_(owned)))
    if action:
        q = q.where(
            AuditEntry.action.startswith(action[:-1]) if action.endswith("*") else AuditEntry.action == action
        )
    for column, value in (
        (AuditEntry.outcome, outcome),
        (AuditEntry.dataset_id, dataset_id),
        (AuditEntry.subject, subject),
        (AuditEntry.client_id, client_id),
        (AuditEntry.org_id, org_id),
    ):
        if value:
            q = q.where(column == value)
    if since:
        q = q.where(AuditEntry.ts >= since)
    if until:
        q = q.where(AuditEntry.ts < until)
    q = q.order_by(AuditEntry.seq.desc()).limit(min(max(limit, 1), 10_000)).offset(max(offset, 0))
    return list(session.scalars(q))


def entry_dict(e: AuditEntry) -> dict[str, Any]:
    d = entry_fields(e)
    d["hash"] = e.hash
    return d
