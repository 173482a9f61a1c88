"""``hub audit verify`` and ``hub audit export``: check the audit log end to end, write it out.

The check walks the entries in sequence order and reports, per kind, the first problem it finds:

chain (exact; the entry is named)
- ``deleted``: a gap in the sequence (the first missing number is named);
- ``inserted`` / ``reordered``: an entry whose ``prev_hash`` is not the hash of the one before (when it
  matches the hash of the entry two back, the one in between was inserted and is named);
- ``edited``: an entry whose recomputed hash differs from the stored one;
- ``truncated`` / ``appended``: the head (last sequence number and hash) disagrees with the last entry;

signed checkpoints (a range: the bad entry lies after the last checkpoint that still holds)
- ``checkpoint``: a checkpoint whose signature is invalid, made with a key that the hub's secret does
  not open (a key added to the database), or whose entry no longer has the signed hash;
- ``cadence``: an entry that should carry a checkpoint (``audit.checkpoint_due`` replayed over the
  stored ``ts`` and sequence numbers, with the cadence named in the signed checkpoints) carries none:
  checkpoints were deleted;
- ``head``: the head's ``checkpoint_seq`` / ``checkpoint_at`` are not those of the last checkpoint;

the witness (``hub.auth.witness``), compared with the database
- ``witness``: a witness record that is not one, or whose signature does not hold (the witness was
  edited); a checkpoint of the database missing from the witness; a checkpoint the witness saw
  committed missing from the database; an entry that no longer has the hash the witness holds for it
  (``entries a..b were rewritten``, or missing: deleted at the end, or the whole log wiped);
- ``unreachable``: the witness cannot be read, so nothing was compared (not a sign of tampering by
  itself, but the log is not verified).

A witnessed checkpoint that was never confirmed as committed is the trace of a transaction that rolled
back after writing it: it is accepted when the chain does not contradict it (the entry has that hash,
or the log ends just before it, or the database holds a witnessed checkpoint at the same entry that
replaced it), and counted in the report's notes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any

from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.auth import keys, witness
from hub.auth.audit import GENESIS, canonical, checkpoint_due, entry_dict, entry_fields, entry_hash
from hub.auth.models import AuditCheckpoint, AuditEntry, AuditHead, SigningKey
from hub.errors import ConfigError, ConflictError
from hub.settings import Settings

CHAIN_KINDS = ("deleted", "inserted", "reordered", "edited", "truncated", "appended")
# Timestamps written before checkpoints named their own ``ts`` as the head's ``checkpoint_at`` may be a
# moment later; a second covers that and gives a forger nothing.
SLACK = timedelta(seconds=1)


@dataclass
class Problem:
    seq: int  # the first bad (or possibly bad) entry; 0 when no entry can be named
    kind: str  # one of CHAIN_KINDS, checkpoint, cadence, head, witness, unreachable
    message: str
    last: int | None = None  # the bad entry is somewhere in seq..last


@dataclass
class VerifyReport:
    entries: int = 0
    checkpoints: int = 0
    last_seq: int = 0
    witness: str = ""  # where the witness is
    witness_records: int = 0
    witness_checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> Problem | None:
        """The chain's own finding is exact; a range found by a signed checkpoint (in the database or
        the witness) wins only if it ends earlier; then witness, checkpoint, cadence, head findings."""
        if not self.problems:
            return None
        chain = [p for p in self.problems if p.kind in CHAIN_KINDS]
        ranges = sorted(
            (p for p in self.problems if p.kind in ("checkpoint", "witness") and p.last is not None),
            key=lambda p: (p.seq, p.last or 0),
        )
        if chain:
            if ranges and (ranges[0].last or 0) < chain[0].seq:
                return ranges[0]
            return chain[0]
        if ranges:
            return ranges[0]
        order = ("witness", "checkpoint", "cadence", "head", "unreachable")
        return min(self.problems, key=lambda p: (order.index(p.kind) if p.kind in order else 9, p.seq))


def _iter_entries(session: Session) -> Iterator[AuditEntry]:
    yield from session.scalars(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=2000))


def verify(
    session: Session, settings: Settings, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    """Check the chain, the checkpoints, their cadence, the head and the witness; ``progress(n)`` is
    called every 5,000 entries.

    The hub may be appending meanwhile, so the reads go in an order that holds without a snapshot: the
    witness (its checkpoint records precede their commit, its ``committed`` records follow it), then
    the head, the checkpoints, the entries, and the head again; entries appended after the first read
    of the head are checked as a chain only.
    """
    report = VerifyReport()
    store = witness.open_witness(settings)
    report.witness = store.location
    contents = _read_witness(store, report)
    head = _read_head(session)
    cps = list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)))
    report.checkpoints = len(cps)
    head_seq = head.seq if head is not None else 0
    signatures = _Signatures(session, settings)
    wanted = {c.seq for c in cps} | {w.seq for w in (contents.checkpoints if contents else [])} | {head_seq}
    hashes_at: dict[int, str] = {}
    cadence = _Cadence([c for c in cps if c.seq <= head_seq], signatures, settings)
    prev_seq, prev_hash, prevprev_hash = 0, GENESIS, None
    chain_problem: Problem | None = None
    first_ts: datetime | None = None
    for e in _iter_entries(session):
        report.entries += 1
        if progress is not None and report.entries % 5000 == 0:
            progress(report.entries)
        if first_ts is None:
            first_ts = e.ts
        if e.seq in wanted:
            hashes_at[e.seq] = e.hash
        if e.seq <= head_seq:
            cadence.entry(e.seq, e.ts)
        if chain_problem is None:
            chain_problem = _chain_step(e, prev_seq, prev_hash, prevprev_hash)
        prevprev_hash, prev_hash, prev_seq = prev_hash, e.hash, e.seq
    report.last_seq = prev_seq
    if chain_problem is None and head is not None:
        chain_problem = _head_vs_chain(head, _read_head(session), prev_seq, hashes_at)
    found: list[Problem | None] = [chain_problem, _check_checkpoints(signatures, cps, hashes_at)]
    found.append(cadence.problem)
    found.append(_head_vs_checkpoints(head, first_ts))
    if contents is not None:
        known = contents.checkpoint_keys()
        if any((c.seq, c.hash, c.signature) not in known for c in cps):
            contents = _reread_witness(store, contents)  # checkpoints committed since the first read
        found.extend(_compare_witness(report, contents, cps, hashes_at, head_seq, signatures))
    report.problems.extend(p for p in found if p is not None)
    if report.entries and not report.problems:
        report.notes.extend(cadence.tail_note(head_seq))
    return report


@dataclass(frozen=True)
class _Head:
    """The head, and the last checkpoint as the same statement saw it."""

    seq: int
    hash: str
    checkpoint_seq: int
    checkpoint_at: datetime | None
    last_checkpoint_seq: int | None
    last_checkpoint_ts: datetime | None


def _read_head(session: Session) -> _Head | None:
    """The head as it is now (a plain value: reading the ORM object again would not refresh it),
    with the last checkpoint read in the same statement, so that a checkpoint signed meanwhile
    (``hub audit checkpoint``) cannot come between them."""
    last = select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc(), AuditCheckpoint.id.desc()).limit(1)
    row = session.execute(
        select(
            AuditHead.seq,
            AuditHead.hash,
            AuditHead.checkpoint_seq,
            AuditHead.checkpoint_at,
            last.with_only_columns(AuditCheckpoint.seq).scalar_subquery(),
            last.with_only_columns(AuditCheckpoint.ts).scalar_subquery(),
        ).where(AuditHead.id == 1)
    ).one_or_none()
    return None if row is None else _Head(*row)


def _read_witness(store: witness.Witness, report: VerifyReport) -> witness.WitnessContents | None:
    try:
        contents = witness.parse(store.read())
    except witness.WitnessUnavailableError as exc:
        report.problems.append(Problem(0, "unreachable", f"{exc.message}: nothing to compare with"))
        return None
    report.witness_records = contents.records
    report.witness_checkpoints = len(contents.checkpoints)
    return contents


def _reread_witness(store: witness.Witness, first: witness.WitnessContents) -> witness.WitnessContents:
    """The first read, plus the checkpoint records written since (they may only vouch for checkpoints
    of the database; what they say beyond it is not held against it)."""
    try:
        again = witness.parse(store.read())
    except witness.WitnessUnavailableError:
        return first
    known = first.checkpoint_keys()
    first.later = [w for w in again.checkpoints if w.key not in known]
    return first


def _compare_witness(
    report: VerifyReport,
    contents: witness.WitnessContents,
    cps: list[AuditCheckpoint],
    hashes_at: dict[int, str],
    head_seq: int,
    signatures: _Signatures,
) -> list[Problem]:
    def bad_signature(w: witness.WitnessedCheckpoint) -> str | None:
        p = signatures.payload(w.kid, w.signature)
        if isinstance(p, str):
            return p
        return (
            None
            if p.get("seq") == w.seq and p.get("hash") == w.hash
            else "its seq or hash is not the signed one"
        )

    result = witness.compare(
        contents,
        [(c.seq, c.hash, c.signature) for c in cps],
        hashes_at,
        head_seq=head_seq,
        entries=report.entries,
        location=report.witness,
        bad_signature=bad_signature,
        known_kids=set(signatures.trusted) | signatures.unopened,
    )
    if result.rolled_back:
        report.notes.append(
            f"{result.rolled_back} witnessed checkpoint(s) of transactions that rolled back (nothing "
            "contradicts them)"
        )
    return [Problem(f.seq, "witness", f.message, f.last) for f in result.findings]


def _chain_step(e: AuditEntry, prev_seq: int, prev_hash: str, prevprev_hash: str | None) -> Problem | None:
    expected = prev_seq + 1
    if e.seq != expected:
        return Problem(
            expected,
            "deleted",
            f"entry {expected} is missing (deleted): entry {e.seq} follows entry {prev_seq}",
        )
    if e.prev_hash != prev_hash:
        if prevprev_hash is not None and e.prev_hash == prevprev_hash:
            return Problem(
                prev_seq,
                "inserted",
                f"entry {prev_seq} was inserted: entry {e.seq} follows the one before it",
            )
        return Problem(
            e.seq,
            "reordered",
            f"entry {e.seq} does not follow entry {prev_seq}: inserted, deleted or reordered",
        )
    if entry_hash(entry_fields(e)) != e.hash:
        return Problem(e.seq, "edited", f"entry {e.seq} was edited: its hash does not match")
    return None


def _head_vs_chain(
    head: _Head, head_after: _Head | None, last_seq: int, hashes_at: dict[int, str]
) -> Problem | None:
    """``head`` was read before the entries, ``head_after`` after them: the entries reach at least
    the first, and no further than the second."""
    if head.seq > last_seq:
        return Problem(
            last_seq + 1, "truncated", f"entries {last_seq + 1}..{head.seq} are missing (deleted at the end)"
        )
    if head_after is None or head_after.seq < last_seq:
        after = head_after.seq if head_after is not None else 0
        return Problem(after + 1, "appended", f"entries after {after} were added outside the audit log")
    if head.seq and head.hash != hashes_at.get(head.seq):
        return Problem(head.seq, "edited", f"entry {head.seq} does not match the head's hash")
    return None


def _head_vs_checkpoints(head: _Head | None, first_ts: datetime | None) -> Problem | None:
    """The head names the last checkpoint (its seq, and its ts as ``checkpoint_at``), or, before the
    first one, the first entry's ts."""
    if head is None:
        return Problem(0, "head", "the audit head row is missing")
    last_seq = head.last_checkpoint_seq or 0
    if head.checkpoint_seq != last_seq:
        held = (
            f"the last checkpoint is at entry {last_seq}"
            if head.last_checkpoint_seq is not None
            else "the database holds no checkpoint"
        )
        return Problem(
            min(head.checkpoint_seq, last_seq) + 1,
            "head",
            f"the head names a checkpoint at entry {head.checkpoint_seq}, but {held}: "
            "checkpoints were deleted or added",
        )
    ref = head.last_checkpoint_ts if head.last_checkpoint_seq is not None else first_ts
    at = head.checkpoint_at
    if ref is None and at is not None:
        return Problem(
            0, "head", f"the log is empty, but the head names a checkpoint time ({at.isoformat()})"
        )
    if ref is not None and (at is None or not ref <= at <= ref + SLACK):
        what = f"the checkpoint at entry {last_seq}" if head.last_checkpoint_seq is not None else "entry 1"
        return Problem(
            last_seq + 1,
            "head",
            f"the head's checkpoint time ({at.isoformat() if at else 'none'}) is not that of {what} "
            f"({ref.isoformat()}): the head was rewritten",
        )
    return None


class _Signatures:
    """Checks checkpoint signatures against the keys that the hub's secret opens, never against a
    public key merely found in the database (anyone who can write it could add one)."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.trusted: dict[str, Any] = {}
        self.unopened: set[str] = set()
        self._cache: dict[tuple[str, str], dict[str, Any] | str] = {}
        rows = list(session.scalars(select(SigningKey)))
        if not rows:
            return
        if not settings.secret_key and not (settings.data_dir / "auth-key.secret").exists():
            raise ConfigError(
                "cannot check the audit checkpoints: neither HUB_SECRET_KEY nor DATA_DIR/auth-key.secret "
                "is there to open the signing keys"
            )
        trusted, self.unopened = keys.opened_keys(settings, rows)
        self.trusted.update(trusted)

    def payload(self, kid: str, signature: str) -> dict[str, Any] | str:
        """The signed payload, or why the signature does not hold."""
        cached = self._cache.get((kid, signature))
        if cached is None:
            cached = self._check(kid, signature)
            self._cache[(kid, signature)] = cached
        return cached

    def _check(self, kid: str, signature: str) -> dict[str, Any] | str:
        key = self.trusted.get(kid)
        if key is None:
            if kid in self.unopened:
                return f"signed with key {kid}, which the hub's secret does not open (added to the database)"
            return f"signed with unknown key {kid}"
        try:
            payload = json.loads(
                jws.deserialize_compact(signature, key, algorithms=list(keys.ASYMMETRIC_ALGS)).payload
            )
        except (JoseError, ValueError) as exc:
            return f"bad signature ({exc})"
        return payload if isinstance(payload, dict) else "bad signature (the payload is not an object)"

    def policy(self, cp: AuditCheckpoint) -> tuple[int, int] | None:
        """The cadence (every, seconds) named in a checkpoint's valid signature, if it names one."""
        p = self.payload(cp.kid, cp.signature)
        if isinstance(p, dict) and isinstance(p.get("every"), int) and isinstance(p.get("seconds"), int):
            return (p["every"], p["seconds"])
        return None


def _check_checkpoints(
    signatures: _Signatures, cps: list[AuditCheckpoint], hashes_at: dict[int, str]
) -> Problem | None:
    prev = 0
    for cp in cps:
        first = prev + 1
        payload = signatures.payload(cp.kid, cp.signature)
        if isinstance(payload, str):
            return Problem(first, "checkpoint", f"checkpoint at entry {cp.seq}: {payload}", cp.seq)
        if payload.get("seq") != cp.seq or payload.get("hash") != cp.hash:
            return Problem(first, "checkpoint", f"checkpoint at entry {cp.seq} was edited", cp.seq)
        stored = hashes_at.get(cp.seq)
        if stored is None:
            return Problem(cp.seq, "checkpoint", f"entry {cp.seq} of a signed checkpoint is missing", cp.seq)
        if stored != payload["hash"]:
            return Problem(
                first,
                "checkpoint",
                f"entries {first}..{cp.seq} were rewritten: entry {cp.seq} no longer has its signed hash",
                cp.seq,
            )
        prev = cp.seq
    return None


class _Cadence:
    """Replays ``audit.checkpoint_due`` over the entries: an entry that should carry a checkpoint and
    carries none means checkpoints were deleted. Between two checkpoints the looser of the cadences
    they name applies (the settings may have changed in between); after the last one, the looser of
    its cadence and the current settings."""

    def __init__(self, cps: list[AuditCheckpoint], signatures: _Signatures, settings: Settings) -> None:
        self.at: dict[int, tuple[datetime, tuple[int, int] | None]] = {}
        for cp in cps:  # in seq order; the last of several at one entry set the head's time
            self.at[cp.seq] = (cp.ts, signatures.policy(cp))
        self.seqs = sorted(self.at)
        self.current = (settings.audit_checkpoint_every, settings.audit_checkpoint_seconds)
        self.open_seq = 0
        self.open_ts: datetime | None = None
        self.open_policy: tuple[int, int] | None = None
        self.closing = 0  # index in seqs of the checkpoint that closes the current interval
        self.allowed = self._allowed()
        self.problem: Problem | None = None

    def _allowed(self) -> tuple[int, int]:
        closing = self.at[self.seqs[self.closing]][1] if self.closing < len(self.seqs) else self.current
        policies = [p for p in (self.open_policy, closing) if p is not None] or [self.current]
        return max(max(1, p[0]) for p in policies), max(p[1] for p in policies)

    def entry(self, seq: int, ts: datetime) -> None:
        if seq in self.at:
            self.open_seq, (self.open_ts, self.open_policy) = seq, self.at[seq]
            while self.closing < len(self.seqs) and self.seqs[self.closing] <= seq:
                self.closing += 1
            self.allowed = self._allowed()
            return
        every, seconds = self.allowed
        if self.problem is None and checkpoint_due(
            every, seconds, seq - self.open_seq, ts - SLACK, self.open_ts
        ):
            cp = f"the checkpoint at entry {self.open_seq}" if self.open_seq else None
            if seq - self.open_seq >= every:
                late = f"{seq - self.open_seq} entries were written since {cp or 'the log began'}"
                due = f"every {every} entries"
            else:
                late = f"it came {(ts - (self.open_ts or ts)).total_seconds():.0f} s after {cp or 'entry 1'}"
                due = f"every {seconds} s"
            self.problem = Problem(
                self.open_seq + 1,
                "cadence",
                f"entry {seq} carries no signed checkpoint, yet {late} (one is due {due}): checkpoints "
                "were deleted",
            )
        if self.open_ts is None:
            self.open_ts = ts  # entry 1: the interval runs from it

    def tail_note(self, last_seq: int) -> list[str]:
        if last_seq <= self.open_seq:
            return []
        first = self.open_seq + 1
        which = f"entry {first} is" if first == last_seq else f"entries {first}..{last_seq} are"
        return [
            f"{which} not yet covered by a signed checkpoint (the entry that makes one due brings it; "
            "`hub audit checkpoint` signs one now)"
        ]


def export(
    session: Session, out: IO[str], fmt: str = "jsonl", progress: Callable[[int], None] | None = None
) -> int:
    """Write every entry in sequence order as CSV or JSON lines; returns the number written."""
    n = 0
    writer: Any = None
    for e in _iter_entries(session):
        d = entry_dict(e)
        if fmt == "csv":
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(d))
                writer.writeheader()
            d["details"] = canonical(d["details"]).decode() if d["details"] is not None else ""
            writer.writerow(d)
        else:
            out.write(json.dumps(d, ensure_ascii=False, default=str) + "\n")
        n += 1
        if progress is not None and n % 5000 == 0:
            progress(n)
    return n


def count_entries(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def seed_witness(session: Session, settings: Settings) -> int:
    """Copy the database's signed checkpoints into an empty witness (after an upgrade from a hub without
    one, or when moving to another witness); returns how many. Refused when the witness holds any
    record, or when the log does not verify on its own: a witness vouches only for an intact log."""
    store = witness.open_witness(settings)
    if store.read():
        raise ConflictError(
            f"the witness {store.location} already holds records: only an empty one is seeded"
        )
    report = verify(session, settings)
    own = [p for p in report.problems if p.kind != "witness"]
    if own:
        raise ConflictError(f"the audit log does not verify ({own[0].message}): the witness was not seeded")
    cps = list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)))
    for c in cps:
        store.append(witness.checkpoint_record(c.seq, c.hash, c.kid, c.signature, c.ts))
        store.append(witness.committed_record(c.seq, c.hash, c.signature))
    return len(cps)
