"""The audit witness: every signed checkpoint is also kept outside the metadata database (a directory,
or a remote service over HTTP), and ``hub audit verify`` compares the two. An insider who rewrites,
truncates or wipes the log in the database, or edits the witness, is found; a checkpoint whose
transaction rolled back is not a false alarm; a witness that cannot be written fails the entry."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from typer.testing import CliRunner, Result

from hub.auth import audit
from hub.auth.audit_verify import VerifyReport, verify
from hub.auth.models import AuditCheckpoint, AuditEntry, AuditHead, SigningKey
from hub.auth.principal import Principal
from hub.db import dispose_engines, session_scope, utcnow
from hub.settings import Settings

ANALYST = Principal(
    kind="user", subject="u-1", name="analyst", client_id="app", org_id="org-1", ip="10.0.0.7"
)


@pytest.fixture(autouse=True)
def _no_leaked_engines() -> Iterator[None]:
    yield
    dispose_engines()


def _settings(base: Settings, **extra: Any) -> Settings:
    s = Settings(data_dir=base.data_dir, site_url=base.site_url, audit_checkpoint_every=5, **extra)
    return s


def _append(s: Settings, n: int) -> None:
    for i in range(n):
        with session_scope(s) as session:
            audit.record(session, "datastore.search", ANALYST, dataset_id="ds-1", rows=i)


@pytest.fixture
def logged(settings: Settings) -> Settings:
    """A log of 20 entries with checkpoints at 5, 10, 15 and 20, witnessed in DATA_DIR/audit-witness."""
    s = _settings(settings)
    _append(s, 20)
    return s


def _witness_file(s: Settings) -> Path:
    assert s.audit_witness_dir is not None
    return s.audit_witness_dir / "checkpoints.jsonl"


def _witness_lines(s: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _witness_file(s).read_text().splitlines() if line]


def _report(s: Settings) -> VerifyReport:
    with session_scope(s) as session:
        return verify(session, s)


def _first_bad(s: Settings) -> tuple[int, str, int | None, str]:
    report = _report(s)
    assert not report.ok
    bad = report.first_bad
    assert bad is not None
    return bad.seq, bad.kind, bad.last, bad.message


def _rewrite_entry(s: Settings, seq: int) -> None:
    """What an insider with the database does: edit entry ``seq``, recompute every later hash and the
    head, so that the chain holds again."""
    with session_scope(s) as session:
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        prev_hash = rows[seq - 2].hash if seq > 1 else audit.GENESIS
        for e in rows[seq - 1 :]:
            if e.seq == seq:
                e.rows = 0
                e.reason = "nothing to see"
            e.prev_hash = prev_hash
            e.hash = audit.entry_hash(audit.entry_fields(e))
            prev_hash = e.hash
        session.execute(update(AuditHead).values(hash=prev_hash))


def test_every_checkpoint_is_in_the_witness_directory(logged: Settings) -> None:
    lines = _witness_lines(logged)
    assert [(r["kind"], r["seq"]) for r in lines] == [
        (kind, seq) for seq in (5, 10, 15, 20) for kind in ("checkpoint", "committed")
    ]
    with session_scope(logged) as session:
        cps = list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)))
        assert [(r["seq"], r["hash"], r["signature"]) for r in lines[::2]] == [
            (c.seq, c.hash, c.signature) for c in cps
        ]
    path = _witness_file(logged)
    assert stat.S_IMODE(path.stat().st_mode) & 0o022 == 0  # nobody else writes it
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o022 == 0
    report = _report(logged)
    assert report.ok, report.problems
    assert (report.entries, report.checkpoints, report.witness_records, report.witness_checkpoints) == (
        20,
        4,
        8,
        4,
    )
    assert report.witness == str(path)


def test_deleting_the_checkpoints_then_rewriting_an_entry_and_the_chain_is_found(logged: Settings) -> None:
    """The insider deletes every checkpoint, edits entry 8, recomputes the chain and makes the head
    agree (no checkpoint, the interval running from entry 1): the witness still holds the hashes."""
    with session_scope(logged) as session:
        session.execute(delete(AuditCheckpoint))
        first = session.get(AuditEntry, 1)
        assert first is not None
        session.execute(update(AuditHead).values(checkpoint_seq=0, checkpoint_at=first.ts))
    _rewrite_entry(logged, 8)
    seq, kind, last, message = _first_bad(logged)
    assert (seq, kind, last) == (6, "witness", 10)
    assert "entries 6..10 were rewritten" in message
    kinds = {p.kind for p in _report(logged).problems}
    assert kinds == {"witness", "cadence"}


def test_wiping_the_log_and_resetting_the_head_is_found(logged: Settings) -> None:
    with session_scope(logged) as session:
        session.execute(delete(AuditEntry))
        session.execute(delete(AuditCheckpoint))
        session.execute(
            update(AuditHead).values(seq=0, hash=audit.GENESIS, checkpoint_seq=0, checkpoint_at=None)
        )
    seq, kind, last, message = _first_bad(logged)
    assert (seq, kind, last) == (1, "witness", 20)
    assert "the database holds no audit entries" in message
    assert "the log was deleted" in message


def test_wiping_the_log_then_appending_again_is_found(logged: Settings) -> None:
    """After the wipe the hub keeps logging: the new entries 1.. have other hashes than the witnessed."""
    with session_scope(logged) as session:
        session.execute(delete(AuditEntry))
        session.execute(delete(AuditCheckpoint))
        session.execute(
            update(AuditHead).values(seq=0, hash=audit.GENESIS, checkpoint_seq=0, checkpoint_at=None)
        )
    _append(logged, 7)
    seq, kind, last, _message = _first_bad(logged)
    assert (seq, kind, last) == (1, "witness", 5)


def test_truncating_the_log_at_a_checkpoint_is_found(logged: Settings) -> None:
    """Entries 16..20 and the checkpoint at 20 are deleted and the head set back to entry 15: the chain,
    the checkpoints and their cadence agree, but the witness saw entry 20 committed."""
    with session_scope(logged) as session:
        e15 = session.get(AuditEntry, 15)
        cp15 = session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.seq == 15)).one()
        assert e15 is not None
        session.execute(delete(AuditEntry).where(AuditEntry.seq > 15))
        session.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq > 15))
        session.execute(
            update(AuditHead).values(seq=15, hash=e15.hash, checkpoint_seq=15, checkpoint_at=cp15.ts)
        )
    seq, kind, last, message = _first_bad(logged)
    assert (seq, kind, last) == (16, "witness", 20)
    assert "entry 20 is missing" in message


@pytest.mark.parametrize("edit", ["hash", "signature", "garbage", "drop checkpoint line"])
def test_an_edited_witness_is_found(logged: Settings, edit: str) -> None:
    path = _witness_file(logged)
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])  # the checkpoint at entry 10
    assert (record["kind"], record["seq"]) == ("checkpoint", 10)
    if edit == "hash":
        record["hash"] = "f" * 64
        lines[2] = json.dumps(record)
    elif edit == "signature":
        head, payload, sig = record["signature"].split(".")
        record["signature"] = f"{head}.{payload}.{sig[::-1]}"
        lines[2] = json.dumps(record)
    elif edit == "garbage":
        lines[2] = lines[2][: len(lines[2]) // 2]
    else:
        del lines[2]
    path.write_text("\n".join(lines) + "\n")
    report = _report(logged)
    assert not report.ok
    assert {p.kind for p in report.problems} == {"witness"}
    messages = " | ".join(p.message for p in report.problems)
    if edit in ("hash", "signature"):
        assert "the checkpoint at entry 10 was edited" in messages
    elif edit == "garbage":
        assert f"{path}:3: not a witness record" in messages
    else:
        assert "confirms a checkpoint at entry 10 it does not hold" in messages
    assert "the checkpoint at entry 10 is not in the witness" in messages


@pytest.mark.parametrize("what", ["file", "directory"])
def test_deleting_the_witness_is_found(logged: Settings, what: str) -> None:
    path = _witness_file(logged)
    path.unlink()
    if what == "directory":
        path.parent.rmdir()
    seq, kind, _last, message = _first_bad(logged)
    assert (seq, kind) == (5, "witness")
    assert "the checkpoint at entry 5 is not in the witness" in message
    assert "(and 3 more like it)" in message


def test_a_checkpoint_signed_with_a_key_added_to_the_database_is_found(logged: Settings) -> None:
    """The insider holds the database and the witness, not the hub's secret: they add a key of their
    own to the database, rewrite entry 8, sign new checkpoints with their key and rewrite the witness."""
    from joserfc import jws
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig"}, private=True, auto_kid=True)
    _rewrite_entry(logged, 8)
    records = []
    with session_scope(logged) as session:
        session.add(
            SigningKey(
                kid=key.kid,
                alg="ES256",
                private_jwk="cannot be encrypted without the secret",
                public_jwk=key.as_dict(private=False),
                created=utcnow(),
                retired_at=utcnow(),
            )
        )
        for cp in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)):
            entry = session.get(AuditEntry, cp.seq)
            assert entry is not None
            payload = {
                "seq": cp.seq,
                "hash": entry.hash,
                "ts": 0,
                "iss": logged.site_url,
                "every": 5,
                "seconds": 300,
            }
            cp.hash, cp.kid = entry.hash, str(key.kid)
            cp.signature = jws.serialize_compact(
                {"alg": "ES256", "kid": key.kid, "typ": "audit-checkpoint"},
                audit.canonical(payload),
                key,
                algorithms=["ES256"],
            )
            records.append(
                {
                    "kind": "checkpoint",
                    "seq": cp.seq,
                    "hash": cp.hash,
                    "kid": cp.kid,
                    "signature": cp.signature,
                    "ts": cp.ts.isoformat(),
                }
            )
            records.append({"kind": "committed", "seq": cp.seq, "hash": cp.hash, "signature": cp.signature})
    _witness_file(logged).parent.mkdir(parents=True, exist_ok=True)
    _witness_file(logged).write_text("".join(json.dumps(r) + "\n" for r in records))
    seq, kind, last, message = _first_bad(logged)
    assert (seq, kind, last) == (1, "checkpoint", 5)
    assert "which the hub's secret does not open" in message


def _record_then_fail(s: Settings) -> None:
    with session_scope(s) as session:
        audit.record(session, "datastore.search", ANALYST, rows=99)
        raise RuntimeError("the request failed after its audit entry")


def _kinds(s: Settings) -> list[tuple[str, int]]:
    return [(r["kind"], r["seq"]) for r in _witness_lines(s)]


def test_a_checkpoint_whose_transaction_rolled_back_is_no_false_alarm(settings: Settings) -> None:
    """Entry 10 brings a checkpoint, written to the witness before the commit; the transaction then
    fails. The witness holds a checkpoint the database never had: no alarm at the end of the log, nor
    once entry 10 is written again (with another hash, and a checkpoint of its own); a real rewrite
    is still found."""
    s = _settings(settings)
    _append(s, 9)
    with pytest.raises(RuntimeError, match="failed after its audit entry"):
        _record_then_fail(s)
    assert _kinds(s)[-3:] == [("checkpoint", 5), ("committed", 5), ("checkpoint", 10)]
    report = _report(s)
    assert report.ok, report.problems
    assert report.entries == 9
    assert "1 witnessed checkpoint(s) of transactions that rolled back" in " ".join(report.notes)
    _append(s, 3)
    lines = _witness_lines(s)
    assert _kinds(s)[-3:] == [("checkpoint", 10), ("checkpoint", 10), ("committed", 10)]
    assert lines[-3]["hash"] != lines[-2]["hash"]
    report = _report(s)
    assert report.ok, report.problems
    assert report.entries == 12
    _rewrite_entry(s, 7)
    assert _first_bad(s)[:3] == (6, "checkpoint", 10)


def test_the_first_checkpoint_rolled_back_with_the_first_key_is_no_false_alarm(settings: Settings) -> None:
    """The hub's first signing key is made with its first checkpoint; when that transaction rolls
    back, the key goes with it, and the witnessed checkpoint can no longer be checked: it is counted
    as rolled back, and the next checkpoint is signed with a key that is in the database."""
    s = _settings(settings)
    _append(s, 4)
    with pytest.raises(RuntimeError, match="failed after its audit entry"):
        _record_then_fail(s)
    assert _kinds(s) == [("checkpoint", 5)]
    report = _report(s)
    assert report.ok, report.problems
    assert "1 witnessed checkpoint(s) of transactions that rolled back" in " ".join(report.notes)
    _append(s, 1)
    assert _kinds(s) == [("checkpoint", 5), ("checkpoint", 5), ("committed", 5)]
    report = _report(s)
    assert report.ok, report.problems
    assert report.checkpoints == 1


def test_a_witness_that_cannot_be_written_fails_the_entry_and_loses_nothing(settings: Settings) -> None:
    """The witness directory cannot be created (a file is in the way): the entry that brings a checkpoint
    fails with a 503-class error and its transaction rolls back; once the witness is back, the same
    entry is written with its checkpoint, and the log verifies."""
    from hub.auth.witness import WitnessUnavailableError

    blocked = settings.data_dir / "witness-here"
    s = _settings(settings, audit_witness_dir=blocked)
    _append(s, 4)  # no checkpoint due: the witness is not needed
    blocked.write_text("not a directory")
    with pytest.raises(WitnessUnavailableError) as caught, session_scope(s) as session:
        audit.record(session, "datastore.search", ANALYST, rows=5)
    assert caught.value.http_status == 503
    assert caught.value.retryable
    assert str(blocked) in caught.value.message
    with session_scope(s) as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 4
        assert session.scalar(select(func.count()).select_from(AuditCheckpoint)) == 0
        assert session.execute(select(AuditHead.seq)).scalar_one() == 4
    blocked.unlink()
    _append(s, 1)
    assert [(r["kind"], r["seq"]) for r in _witness_lines(s)] == [("checkpoint", 5), ("committed", 5)]
    report = _report(s)
    assert report.ok, report.problems
    assert (report.entries, report.checkpoints) == (5, 1)


# --- a remote witness ---------------------------------------------------------------------------


class _WitnessServer(ThreadingHTTPServer):
    records: list[Any]
    refuse: bool


class _WitnessHandler(BaseHTTPRequestHandler):
    server: _WitnessServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.server.refuse:
            self.send_response(503)
            self.end_headers()
            return
        self.server.records.append(json.loads(body))
        self.send_response(201)
        self.end_headers()

    def do_GET(self) -> None:
        body = json.dumps(self.server.records).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def remote() -> Iterator[_WitnessServer]:
    server = _WitnessServer(("127.0.0.1", 0), _WitnessHandler)
    server.records, server.refuse = [], False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _WitnessServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/witness"


def test_a_remote_witness_receives_every_checkpoint_and_finds_a_wiped_log(
    settings: Settings, remote: _WitnessServer
) -> None:
    s = _settings(settings, audit_witness_url=_url(remote))
    _append(s, 12)
    assert [(r["kind"], r["seq"]) for r in remote.records] == [
        ("checkpoint", 5),
        ("committed", 5),
        ("checkpoint", 10),
        ("committed", 10),
    ]
    assert not _witness_file(s).exists()  # the URL replaces the directory
    report = _report(s)
    assert report.ok, report.problems
    assert (report.witness, report.witness_records, report.witness_checkpoints) == (_url(remote), 4, 2)
    with session_scope(s) as session:
        session.execute(delete(AuditEntry))
        session.execute(delete(AuditCheckpoint))
        session.execute(
            update(AuditHead).values(seq=0, hash=audit.GENESIS, checkpoint_seq=0, checkpoint_at=None)
        )
    seq, kind, last, message = _first_bad(s)
    assert (seq, kind, last) == (1, "witness", 10)
    assert _url(remote) in message


def test_a_remote_witness_that_refuses_fails_the_entry(settings: Settings, remote: _WitnessServer) -> None:
    from hub.auth.witness import WitnessUnavailableError

    s = _settings(settings, audit_witness_url=_url(remote))
    _append(s, 4)
    remote.refuse = True
    with pytest.raises(WitnessUnavailableError, match="HTTP 503"), session_scope(s) as session:
        audit.record(session, "datastore.search", ANALYST)
    with session_scope(s) as session:
        assert session.execute(select(AuditHead.seq)).scalar_one() == 4
    remote.refuse = False
    _append(s, 1)
    assert _report(s).ok


def test_a_remote_witness_that_cannot_be_read_leaves_the_log_unverified(
    settings: Settings, remote: _WitnessServer
) -> None:
    s = _settings(settings, audit_witness_url=_url(remote))
    _append(s, 6)
    remote.shutdown()
    remote.server_close()
    seq, kind, _last, message = _first_bad(s)
    assert (seq, kind) == (0, "unreachable")
    assert "cannot be read" in message


# --- seeding a new witness, and the command -----------------------------------------------------


def _hub(s: Settings, *args: str) -> Result:
    from hub.cli.main import app
    from hub.settings import get_settings

    env = {"HUB_DATA_DIR": str(s.data_dir), "HUB_AUDIT_CHECKPOINT_EVERY": "5", "COLUMNS": "300"}
    if s.audit_witness_dir is not None:
        env["HUB_AUDIT_WITNESS_DIR"] = str(s.audit_witness_dir)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()


def test_witness_seed_fills_only_an_empty_witness_from_an_intact_log(logged: Settings) -> None:
    from hub.auth.audit_verify import seed_witness
    from hub.errors import ConflictError

    moved = Settings(
        data_dir=logged.data_dir,
        site_url=logged.site_url,
        audit_checkpoint_every=5,
        audit_witness_dir=logged.data_dir / "new-witness",
    )
    assert not _report(moved).ok  # the new witness lacks the checkpoints
    with session_scope(moved) as session:
        assert seed_witness(session, moved) == 4
    assert _report(moved).ok
    with pytest.raises(ConflictError, match="already holds records"), session_scope(moved) as session:
        seed_witness(session, moved)
    _witness_file(moved).unlink()
    result = _hub(moved, "audit", "witness-seed")  # the same through the command
    assert result.exit_code == 0, result.output
    assert f"4 checkpoints written to the witness {_witness_file(moved)}" in result.output
    assert _report(moved).ok
    _witness_file(moved).unlink()
    _rewrite_entry(moved, 8)
    with pytest.raises(ConflictError, match="does not verify"), session_scope(moved) as session:
        seed_witness(session, moved)
    assert not _witness_file(moved).exists()


def test_hub_audit_verify_prints_what_it_checked(logged: Settings) -> None:
    result = _hub(logged, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert "20 entries, 4 signed checkpoints, 8 witness records (4 checkpoints)" in result.output
    assert str(_witness_file(logged)) in result.output
    with session_scope(logged) as session:
        session.execute(delete(AuditEntry))
        session.execute(delete(AuditCheckpoint))
        session.execute(
            update(AuditHead).values(seq=0, hash=audit.GENESIS, checkpoint_seq=0, checkpoint_at=None)
        )
    result = _hub(logged, "audit", "verify")
    assert result.exit_code == 1
    assert "0 entries, 0 signed checkpoints, 8 witness records" in result.output
    assert "TAMPERED: first bad entry 1 (witness)" in result.output
    assert "the log was deleted" in result.output


def test_the_witness_file_is_only_appended_to(logged: Settings) -> None:
    """Appends never rewrite what is there: the bytes of the first records stay as they were, and a
    line torn by a crash stays a line of its own."""
    path = _witness_file(logged)
    before = path.read_bytes()
    with open(path, "ab") as fh:  # a crash in the middle of a write
        fh.write(b'{"kind": "checkp')
    _append(logged, 5)
    after = path.read_bytes()
    assert after.startswith(before + b'{"kind": "checkp\n')
    report = _report(logged)
    assert [p.message for p in report.problems] == [
        f"{path}:9: not a witness record (not a JSON object): the witness was edited (or a write to it was "
        "cut short by a crash)"
    ]


def _verify_while_appending(s: Settings) -> list[VerifyReport]:
    """Four threads append 40 entries each, a fifth signs checkpoints now and then, while the log is
    verified again and again."""
    _append(s, 3)  # the signing key exists before the threads start
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(40):
                with session_scope(s) as session:
                    audit.record(session, "query.sql", ANALYST, rows=i)
        except BaseException as exc:
            errors.append(exc)

    def sign() -> None:  # `hub audit checkpoint` from cron, meanwhile
        try:
            for _ in range(20):
                with session_scope(s) as session:
                    audit.checkpoint(session, s)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)] + [threading.Thread(target=sign)]
    for t in threads:
        t.start()
    reports = []
    try:
        while any(t.is_alive() for t in threads):
            reports.append(_report(s))
    finally:
        for t in threads:
            t.join()
    assert errors == []
    return reports


def test_verifying_while_the_hub_appends_gives_no_false_alarm(settings: Settings) -> None:
    """Checkpoints and entries arrive between verify's reads (a checkpoint every 3 entries, and
    others signed by hand): every check passes."""
    s = Settings(data_dir=settings.data_dir, site_url=settings.site_url, audit_checkpoint_every=3)
    reports = _verify_while_appending(s)
    assert len(reports) >= 3
    assert [r.problems for r in reports if not r.ok] == []
    assert len({r.entries for r in reports}) >= 3  # it did see the log grow
    final = _report(s)
    assert final.ok, final.problems
    assert final.entries == 163
    assert final.checkpoints >= 54 + 1


@pytest.mark.integration
def test_verifying_while_the_hub_appends_gives_no_false_alarm_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    s = Settings(data_dir=tmp_path, database_url=postgres_url, audit_checkpoint_every=3)
    reports = _verify_while_appending(s)
    assert [r.problems for r in reports if not r.ok] == []
    assert len({r.entries for r in reports}) >= 3
    final = _report(s)
    assert final.ok, final.problems
    assert final.entries == 163
    assert final.checkpoints >= 54 + 1
