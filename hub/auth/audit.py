"""The tamper-evident audit log: one entry per access to non-open data, refusal, grant change, run
and administrative change.

Append-only and hash-chained, after X-Road's message log: entry ``n`` carries ``prev_hash`` (the hash
of entry ``n-1``) and ``hash = sha256(canonical JSON of its fields, prev_hash included)``. Appends are
serialized through the one-row ``audit_head`` table (its row lock on PostgreSQL, the write lock on
SQLite), so the chain never forks.

Checkpoints. Entry ``n`` carries a checkpoint "entry n has hash h", signed with the hub's key, when
``n - (the last checkpoint's seq) >= HUB_AUDIT_CHECKPOINT_EVERY``, or when its ``ts`` is at least
``HUB_AUDIT_CHECKPOINT_SECONDS`` after the last checkpoint's ``ts`` (before the first checkpoint: after
entry 1's ``ts``). The decision uses only stored values (the entry's ``ts``, the head's
``checkpoint_seq`` and ``checkpoint_at``, which is the last checkpoint's ``ts``), so ``verify`` can
replay it; the signed payload names the cadence in force (``every``, ``seconds``).

Witness. Each checkpoint is also appended to the witness (``hub.auth.witness``) inside the entry's
transaction, before it commits. If the witness cannot be written, ``WitnessUnavailableError`` is raised
and the caller's transaction rolls back: the audited action fails (503, retry) rather than commit an
entry whose checkpoint is missing from the witness. Once the transaction has committed, a
``committed`` record follows (best effort, logged on failure); a checkpoint record without it is one
whose transaction may have rolled back, and ``verify`` treats it so. ``hub.auth.audit_verify`` checks
all of this end to end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, insert, or_, select, update
from sqlalchemy.orm import Session, SessionTransaction

from hub.auth import keys, witness
from hub.auth.models import AuditCheckpoint, AuditEntry, AuditHead
from hub.auth.principal import Principal
from hub.db import utcnow
from hub.settings import Settings

log = logging.getLogger(__name__)

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


def _settings_for(session: Session) -> Settings | None:
    """The settings (signing key, checkpoint cadence, witness) of the hub a session belongs to: every
    session of the hub carries them (``hub.db.session_factory`` puts them in ``Session.info``)."""
    found = session.info.get("settings")
    return found if isinstance(found, Settings) else None


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
    if settings is not None and checkpoint_due(
        settings.audit_checkpoint_every,
        settings.audit_checkpoint_seconds,
        values["seq"] - head.checkpoint_seq,
        values["ts"],
        head.checkpoint_at,
    ):
        cp = _write_checkpoint(session, settings, values["seq"], values["hash"])
        new_head.update(checkpoint_seq=values["seq"], checkpoint_at=cp.ts)
    elif head.checkpoint_at is None:
        new_head["checkpoint_at"] = values["ts"]  # the interval runs from the first entry
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(**new_head))


def checkpoint_due(every: int, seconds: int, since_seq: int, ts: datetime, last_at: datetime | None) -> bool:
    """Whether the entry written at ``ts``, ``since_seq`` entries after the last checkpoint (made at
    ``last_at``; None before the first entry), carries a checkpoint. ``verify`` replays this."""
    if since_seq >= every:
        return True
    return last_at is not None and ts - last_at >= timedelta(seconds=seconds)


def _write_checkpoint(session: Session, settings: Settings, seq: int, entry_hash_: str) -> AuditCheckpoint:
    """Sign "entry ``seq`` has hash ``entry_hash_``", add it to the session and append it to the witness
    (``WitnessUnavailableError`` if it cannot be: the caller's transaction must then roll back)."""
    from joserfc import jws

    ring = keys.keyring(settings, session=session)
    payload = {
        "seq": seq,
        "hash": entry_hash_,
        "ts": int(time.time()),
        "iss": settings.site_url.rstrip("/"),
        "every": settings.audit_checkpoint_every,
        "seconds": settings.audit_checkpoint_seconds,
    }
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
    pending = _pending(session)
    store = witness.open_witness(settings)
    store.append(witness.checkpoint_record(seq, entry_hash_, cp.kid, signature, cp.ts))
    pending.append((store, witness.committed_record(seq, entry_hash_, signature)))
    return cp


_PENDING = "hub.audit.witness_pending"


def _pending(session: Session) -> list[tuple[witness.Witness, dict[str, Any]]]:
    """The ``committed`` records to append to the witness once ``session``'s transaction has
    committed; forgotten if it (or a savepoint) rolls back."""
    pending: list[tuple[witness.Witness, dict[str, Any]]] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", _after_rollback)
    return pending


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released; the transaction itself has not committed yet
    pending = session.info.get(_PENDING) or []
    session.info[_PENDING] = []
    for store, record in pending:
        try:
            store.append(record)
        except witness.WitnessUnavailableError as exc:
            log.error(
                "audit checkpoint at entry %s committed, but its confirmation was not witnessed: %s",
                record["seq"],
                exc.message,
            )


def _after_rollback(session: Session, _previous: SessionTransaction) -> None:
    session.info[_PENDING] = []
    # The hub's first signing key may have been made in this transaction (keys.keyring makes it on
    # first use) and is gone with it: forget the cached keyring, or the next checkpoint is signed
    # with a key that is in no database.
    keys.clear_cache()


def checkpoint(session: Session, settings: Settings) -> AuditCheckpoint | None:
    """Sign a checkpoint at the current head now (``hub audit checkpoint``); None if the log is empty."""
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    if head.seq == 0:
        return None
    cp = _write_checkpoint(session, settings, head.seq, head.hash)
    session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(checkpoint_seq=head.seq, checkpoint_at=cp.ts)
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
