"""The audit log is tamper-evident: edits, deletions, insertions and reorderings done directly in the
database are found by ``hub audit verify``, which names the first bad entry; so are deleted
checkpoints (they no longer come at the promised cadence) and a head that does not name the last
checkpoint. The witness outside the database has its own tests (test_auth_audit_witness.py)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, select, text, update
from typer.testing import CliRunner

from hub.auth import audit
from hub.auth.audit_verify import export, verify
from hub.auth.models import AuditCheckpoint, AuditEntry, AuditHead
from hub.auth.principal import Principal
from hub.db import dispose_engines, session_scope
from hub.settings import Settings

ANALYST = Principal(
    kind="user", subject="u-1", name="analyst", client_id="app", org_id="org-1", ip="10.0.0.7"
)


@pytest.fixture
def logged(settings: Settings) -> Settings:
    """A log of 20 entries, with signed checkpoints every 5."""
    s = Settings(data_dir=settings.data_dir, site_url=settings.site_url, audit_checkpoint_every=5)
    with session_scope(s) as session:
        for i in range(20):
            audit.record(
                session,
                "datastore.search",
                ANALYST,
                dataset_id="ds-1",
                snapshot_id=1000 + i,
                rows=i,
                grant_id="g-1",
                reason="grant",
                details={"q": f"ward {i}", "nested": {"số": i}},
            )
    return s


def _first_bad(s: Settings) -> tuple[int, str]:
    with session_scope(s) as session:
        report = verify(session, s)
    assert not report.ok
    bad = report.first_bad
    assert bad is not None
    return bad.seq, bad.kind


def test_an_intact_log_verifies(logged: Settings) -> None:
    with session_scope(logged) as session:
        report = verify(session, logged)
        first = session.get(AuditEntry, 1)
    assert report.ok, report.problems
    assert report.entries == 20
    assert report.checkpoints == 4
    assert report.witness_checkpoints == 4
    assert report.notes == []  # entry 20 carries the last checkpoint: nothing is left uncovered
    assert first is not None
    assert first.prev_hash == "0" * 64
    assert first.ip == "10.0.0.7"
    assert first.client_id == "app"
    assert first.rows == 0
    assert first.snapshot_id == 1000


def test_an_edited_entry_is_named(logged: Settings) -> None:
    with session_scope(logged) as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 7).values(rows=999_999))
    assert _first_bad(logged) == (7, "edited")


def test_an_edited_details_field_is_named(logged: Settings) -> None:
    with session_scope(logged) as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 12).values(details={"q": "ward 1"}))
    assert _first_bad(logged) == (12, "edited")


def test_a_deleted_entry_is_named(logged: Settings) -> None:
    with session_scope(logged) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq == 9))
    assert _first_bad(logged) == (9, "deleted")


def test_deleting_the_last_entries_is_found(logged: Settings) -> None:
    with session_scope(logged) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq >= 19))
    assert _first_bad(logged) == (19, "truncated")


def test_an_inserted_entry_is_named(logged: Settings) -> None:
    """A forger shifts entries 11.. up by one and inserts a well-formed entry 11 chained to entry 10."""
    with session_scope(logged) as session:
        for seq in range(20, 10, -1):
            session.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(seq=seq + 1))
        prev = session.get(AuditEntry, 10)
        assert prev is not None
        forged = {
            "seq": 11,
            "ts": prev.ts,
            "action": "dataset.read",
            "outcome": "allowed",
            "actor_kind": "user",
            "subject": "u-1",
            "actor_name": "analyst",
            "client_id": "app",
            "org_id": "org-1",
            "dataset_id": "ds-1",
            "snapshot_id": None,
            "rows": 1,
            "grant_id": None,
            "reason": None,
            "ip": None,
            "details": None,
            "prev_hash": prev.hash,
        }
        forged["hash"] = audit.entry_hash(audit.entry_fields(forged))
        session.add(AuditEntry(**forged))
    assert _first_bad(logged) == (11, "inserted")


def test_reordered_entries_are_named(logged: Settings) -> None:
    with session_scope(logged) as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 14).values(seq=-1))
        session.execute(update(AuditEntry).where(AuditEntry.seq == 15).values(seq=14))
        session.execute(update(AuditEntry).where(AuditEntry.seq == -1).values(seq=15))
    seq, _kind = _first_bad(logged)
    assert seq == 14


def test_a_rewritten_chain_is_caught_by_the_signed_checkpoints(logged: Settings) -> None:
    """The forger edits entry 8 and recomputes every later hash: the chain is consistent again, but
    the checkpoint signed at entry 10 no longer matches."""
    with session_scope(logged) as session:
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        prev_hash = rows[6].hash
        for e in rows[7:]:
            if e.seq == 8:
                e.rows = 0
            e.prev_hash = prev_hash
            e.hash = audit.entry_hash(audit.entry_fields(e))
            prev_hash = e.hash
        session.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev_hash})
    seq, kind = _first_bad(logged)
    assert kind == "checkpoint"
    assert seq == 6  # the first entry after the last checkpoint that still holds (entry 5)


def test_a_forged_checkpoint_signature_is_caught(logged: Settings) -> None:
    with session_scope(logged) as session:
        cp = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).first()
        assert cp is not None
        head, payload, sig = cp.signature.split(".")
        cp.signature = f"{head}.{payload}.{sig[::-1]}"
    assert _first_bad(logged) == (1, "checkpoint")


def test_export_jsonl_and_csv(logged: Settings) -> None:
    with session_scope(logged) as session:
        out = io.StringIO()
        assert export(session, out, "jsonl") == 20
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [e["seq"] for e in lines] == list(range(1, 21))
        assert lines[3]["details"] == {"q": "ward 3", "nested": {"số": 3}}
        assert lines[1]["prev_hash"] == lines[0]["hash"]
        out = io.StringIO()
        assert export(session, out, "csv") == 20
        assert out.getvalue().splitlines()[0].startswith("seq,ts,action,outcome")


def test_hub_audit_verify_command(logged: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.cli.main import app
    from hub.settings import get_settings

    monkeypatch.setenv("HUB_DATA_DIR", str(logged.data_dir))
    monkeypatch.setenv("HUB_AUDIT_CHECKPOINT_EVERY", "5")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["audit", "verify"])
        assert result.exit_code == 0, result.output
        assert "20 entries, 4 signed checkpoints, 8 witness records" in result.output
        with session_scope(logged) as session:
            session.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(outcome="denied"))
        result = CliRunner().invoke(app, ["audit", "verify"])
        assert result.exit_code == 1
        assert "first bad entry 3 (edited)" in result.output
    finally:
        get_settings.cache_clear()


def _hammer(s: Settings, n_threads: int, per_thread: int) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(per_thread):
                with session_scope(s) as session:
                    audit.record(session, "query.sql", ANALYST, rows=k * 1000 + i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_concurrent_appends_never_fork_the_chain_on_sqlite(logged: Settings) -> None:
    _hammer(logged, 4, 15)
    with session_scope(logged) as session:
        report = verify(session, logged)
    assert report.ok, report.problems
    assert report.entries == 80


@pytest.mark.integration
def test_concurrent_appends_never_fork_the_chain_on_postgresql(tmp_path: object, postgres_url: str) -> None:
    s = Settings(data_dir=tmp_path, database_url=postgres_url, audit_checkpoint_every=7)  # type: ignore[arg-type]
    _hammer(s, 4, 15)
    with session_scope(s) as session:
        report = verify(session, s)
        session.execute(update(AuditEntry).where(AuditEntry.seq == 30).values(reason="edited later"))
    assert report.ok, report.problems
    assert report.entries == 60
    assert report.checkpoints == 8
    assert _first_bad(s) == (30, "edited")
    dispose_engines()


@pytest.fixture(autouse=True)
def _no_leaked_engines() -> Iterator[None]:
    yield
    dispose_engines()


def test_checkpoints_are_also_signed_at_intervals(settings: Settings) -> None:
    s = Settings(
        data_dir=settings.data_dir,
        site_url=settings.site_url,
        audit_checkpoint_every=1000,
        audit_checkpoint_seconds=0,
    )
    for i in range(3):
        with session_scope(s) as session:
            audit.record(session, "admin.test", ANALYST, rows=i)
    with session_scope(s) as session:
        seqs = [c.seq for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))]
        assert verify(session, s).ok
    assert seqs == [2, 3]  # the interval runs from the first entry


# --- checkpoints: their cadence, and the head ------------------------------------------------------


def _rewrite_chain_from(s: Settings, seq: int) -> None:
    """Edit entry ``seq`` and recompute every later hash and the head's: the chain holds again."""
    with session_scope(s) as session:
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        prev_hash = rows[seq - 2].hash
        for e in rows[seq - 1 :]:
            if e.seq == seq:
                e.rows = 0
            e.prev_hash = prev_hash
            e.hash = audit.entry_hash(audit.entry_fields(e))
            prev_hash = e.hash
        session.execute(update(AuditHead).values(hash=prev_hash))


def _delete_checkpoints(s: Settings, *, fix_head: bool) -> None:
    with session_scope(s) as session:
        session.execute(delete(AuditCheckpoint))
        first = session.get(AuditEntry, 1)
        assert first is not None
        if fix_head:  # as if no checkpoint had ever been signed: the interval runs from entry 1
            session.execute(update(AuditHead).values(checkpoint_seq=0, checkpoint_at=first.ts))


def test_deleted_checkpoints_and_a_rewritten_chain_are_found_by_the_cadence_alone(logged: Settings) -> None:
    """The insider deletes the checkpoints, edits entry 8, recomputes the chain and the head, and
    deletes the witness too: 20 entries without a checkpoint, where one is due every 5, remain."""
    _delete_checkpoints(logged, fix_head=True)
    _rewrite_chain_from(logged, 8)
    assert logged.audit_witness_dir is not None
    (logged.audit_witness_dir / "checkpoints.jsonl").unlink(missing_ok=True)
    with session_scope(logged) as session:
        report = verify(session, logged)
    assert [p.kind for p in report.problems] == ["cadence"]
    bad = report.first_bad
    assert bad is not None
    assert (bad.seq, bad.kind) == (1, "cadence")
    assert bad.message.startswith("entry 5 carries no signed checkpoint, yet 5 entries were written since")


def test_deleting_only_the_checkpoints_is_found(logged: Settings) -> None:
    _delete_checkpoints(logged, fix_head=False)
    with session_scope(logged) as session:
        report = verify(session, logged)
    assert {p.kind for p in report.problems} == {"witness", "cadence", "head"}
    bad = report.first_bad
    assert bad is not None
    assert (bad.seq, bad.kind) == (5, "witness")
    assert "the checkpoint at entry 5 was deleted from the database" in bad.message
    head = next(p for p in report.problems if p.kind == "head")
    assert "the head names a checkpoint at entry 20, but the database holds no checkpoint" in head.message


def test_deleting_the_last_checkpoints_is_found(logged: Settings) -> None:
    """Only the checkpoints after entry 10 go, and the head is set back to name the one at 10."""
    with session_scope(logged) as session:
        session.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq > 10))
        cp10 = session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.seq == 10)).one()
        session.execute(update(AuditHead).values(checkpoint_seq=10, checkpoint_at=cp10.ts))
    with session_scope(logged) as session:
        report = verify(session, logged)
    assert {p.kind for p in report.problems} == {"witness", "cadence"}
    bad = report.first_bad
    assert bad is not None
    assert (bad.seq, bad.kind) == (15, "witness")
    cadence = next(p for p in report.problems if p.kind == "cadence")
    assert cadence.seq == 11
    assert cadence.message.startswith(
        "entry 15 carries no signed checkpoint, yet 5 entries were written since the checkpoint at entry 10"
    )


@pytest.mark.parametrize("field", ["checkpoint_seq", "checkpoint_at"])
def test_the_head_must_name_the_last_checkpoint(logged: Settings, field: str) -> None:
    with session_scope(logged) as session:
        if field == "checkpoint_seq":
            session.execute(update(AuditHead).values(checkpoint_seq=15))
        else:  # a checkpoint time in the future would hold off the checkpoints due by time
            session.execute(update(AuditHead).values(checkpoint_at=datetime(2999, 1, 1)))
    with session_scope(logged) as session:
        report = verify(session, logged)
    assert [p.kind for p in report.problems] == ["head"]
    assert "checkpoint" in report.problems[0].message


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 8, 0, 0)

    def __call__(self) -> datetime:
        return self.now


def test_checkpoints_missing_by_time_are_found(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a checkpoint due every 60 s (and only every 1,000 entries), entry 3, written 61 s after
    entry 1, carries one; once it is deleted (and the head made to agree), entry 3 is named."""
    clock = _Clock()
    monkeypatch.setattr(audit, "utcnow", clock)
    s = Settings(
        data_dir=settings.data_dir,
        site_url=settings.site_url,
        audit_checkpoint_every=1000,
        audit_checkpoint_seconds=60,
    )
    for step in (0, 10, 51, 9, 30):  # entries at 0, 10, 61, 70 and 100 s
        clock.now += timedelta(seconds=step)
        with session_scope(s) as session:
            audit.record(session, "admin.test", ANALYST)
    with session_scope(s) as session:
        assert [c.seq for c in session.scalars(select(AuditCheckpoint))] == [3]
        assert verify(session, s).ok
    _delete_checkpoints(s, fix_head=True)
    assert s.audit_witness_dir is not None
    (s.audit_witness_dir / "checkpoints.jsonl").unlink(missing_ok=True)
    with session_scope(s) as session:
        report = verify(session, s)
    assert [p.kind for p in report.problems] == ["cadence"]
    assert report.problems[0].message.startswith(
        "entry 3 carries no signed checkpoint, yet it came 61 s after entry 1 (one is due every 60 s)"
    )
