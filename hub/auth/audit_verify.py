"""``hub audit verify`` and ``hub audit export``: check the audit chain end to end, write it out.

The check walks the entries in sequence order and names the first bad one:

- a gap in the sequence: an entry was deleted (the first missing number is named);
- an entry whose ``prev_hash`` is not the hash of the one before: inserted or reordered (when it
  matches the hash of the entry two back, the one in between was inserted and is named);
- an entry whose recomputed hash differs from the stored one: edited (or moved to another place);
- the head (last sequence number and hash) disagrees with the last entry: entries deleted or added
  at the end;
- a checkpoint whose signature is invalid, or whose entry no longer has the signed hash: the chain
  between the previous checkpoint and this one was rewritten.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.auth import keys
from hub.auth.audit import GENESIS, canonical, entry_dict, entry_fields, entry_hash
from hub.auth.models import AuditCheckpoint, AuditEntry, AuditHead
from hub.settings import Settings


@dataclass
class Problem:
    seq: int
    kind: str  # deleted, inserted, reordered, edited, truncated, appended, checkpoint
    message: str
    last: int | None = None  # checkpoint problems: the bad entry is somewhere in seq..last


@dataclass
class VerifyReport:
    entries: int = 0
    checkpoints: int = 0
    last_seq: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> Problem | None:
        """The chain's own finding is exact; a checkpoint finding (a range) wins only if it ends earlier."""
        if not self.problems:
            return None
        chain = [p for p in self.problems if p.kind != "checkpoint"]
        cps = [p for p in self.problems if p.kind == "checkpoint"]
        if chain and cps and (cps[0].last or cps[0].seq) < chain[0].seq:
            return cps[0]
        return chain[0] if chain else cps[0]


def _iter_entries(session: Session) -> Iterator[AuditEntry]:
    yield from session.scalars(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=2000))


def verify(
    session: Session, settings: Settings, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    """Check the chain and the checkpoints; ``progress(n)`` is called every 5,000 entries."""
    report = VerifyReport()
    prev_seq, prev_hash, prevprev_hash = 0, GENESIS, None
    chain_problem: Problem | None = None
    hashes_at: dict[int, str] = {}
    cps = list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)))
    cp_seqs = {c.seq for c in cps}
    for e in _iter_entries(session):
        report.entries += 1
        if progress is not None and report.entries % 5000 == 0:
            progress(report.entries)
        if e.seq in cp_seqs:
            hashes_at[e.seq] = e.hash
        if chain_problem is None:
            expected = prev_seq + 1
            if e.seq != expected:
                chain_problem = Problem(
                    expected,
                    "deleted",
                    f"entry {expected} is missing (deleted): entry {e.seq} follows entry {prev_seq}",
                )
            elif e.prev_hash != prev_hash:
                if prevprev_hash is not None and e.prev_hash == prevprev_hash:
                    chain_problem = Problem(
                        prev_seq,
                        "inserted",
                        f"entry {prev_seq} was inserted: entry {e.seq} follows the one before it",
                    )
                else:
                    chain_problem = Problem(
                        e.seq,
                        "reordered",
                        f"entry {e.seq} does not follow entry {prev_seq}: inserted, deleted or reordered",
                    )
            elif entry_hash(entry_fields(e)) != e.hash:
                chain_problem = Problem(e.seq, "edited", f"entry {e.seq} was edited: its hash does not match")
        prevprev_hash, prev_hash, prev_seq = prev_hash, e.hash, e.seq
        report.last_seq = e.seq
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one_or_none()
    if chain_problem is None and head is not None:
        if head.seq > report.last_seq:
            chain_problem = Problem(
                report.last_seq + 1,
                "truncated",
                f"entries {report.last_seq + 1}..{head.seq} are missing (deleted at the end)",
            )
        elif head.seq < report.last_seq:
            chain_problem = Problem(
                head.seq + 1, "appended", f"entries after {head.seq} were added outside the audit log"
            )
        elif head.seq and head.hash != prev_hash:
            chain_problem = Problem(head.seq, "edited", f"entry {head.seq} does not match the head's hash")
    if chain_problem:
        report.problems.append(chain_problem)
    report.checkpoints = len(cps)
    cp_problem = _check_checkpoints(settings, session, cps, hashes_at)
    if cp_problem:
        report.problems.append(cp_problem)
    return report


def _check_checkpoints(
    settings: Settings, session: Session, cps: list[AuditCheckpoint], hashes_at: dict[int, str]
) -> Problem | None:
    ring = keys.keyring(settings, session=session, refresh=True)
    prev = 0
    for cp in cps:
        key = ring.all_public.get(cp.kid)
        first = prev + 1
        try:
            if key is None:
                raise ValueError(f"unknown key {cp.kid}")
            obj = jws.deserialize_compact(cp.signature, key, algorithms=list(keys.ASYMMETRIC_ALGS))
            payload = json.loads(obj.payload)
        except (JoseError, ValueError) as exc:
            return Problem(
                first, "checkpoint", f"checkpoint at entry {cp.seq}: bad signature ({exc})", cp.seq
            )
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
