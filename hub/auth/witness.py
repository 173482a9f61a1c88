"""The audit witness: every signed audit checkpoint, kept also outside the metadata database.

Whoever can write the metadata database can delete the signed checkpoints, or the whole log. The
witness is a second, append-only copy of the checkpoints in a store of its own; ``hub audit verify``
(``hub.auth.audit_verify``) compares the two. Two stores, chosen by the settings:

- ``HUB_AUDIT_WITNESS_DIR`` (default ``DATA_DIR/audit-witness``): the file ``checkpoints.jsonl`` in that
  directory, one JSON record per line. Each record is appended with one ``write`` on an ``O_APPEND``
  descriptor and ``fsync``-ed before ``append`` returns; the directory is created ``0755`` and the file
  ``0644`` (only the hub's account writes, others may read: the records hold hashes and signatures,
  nothing secret).
- ``HUB_AUDIT_WITNESS_URL`` (when set, instead of the directory): each record is POSTed as a JSON object
  to the URL, any 2xx answer is success; a GET of the URL answers every record as a JSON list.

Records::

    {"kind": "checkpoint", "seq": 200, "hash": "<entry 200's hash>", "kid": "...",
     "signature": "<the compact JWS>", "ts": "2026-11-22T10:00:00.123456"}
    {"kind": "committed", "seq": 200, "hash": "...", "signature": "<the same JWS>"}

A ``checkpoint`` record is written inside the audit entry's transaction, before it commits; a
``committed`` record follows once that transaction has committed (see ``hub.auth.audit``).
``compare`` says where the witness and the database disagree (a pure function over what both hold;
``hub.auth.audit_verify`` reads them and reports).

Errors::

    HubError
    └── WitnessUnavailableError    the witness cannot be written or read (503, retryable)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

import httpx

from hub.errors import HubError
from hub.settings import Settings

FILE_NAME = "checkpoints.jsonl"
HTTP_TIMEOUT_SECONDS = 10.0


class WitnessUnavailableError(HubError):
    """The witness cannot be written or read: the audit entry that needed it was not committed."""

    code: ClassVar[str] = "audit_witness_unavailable"
    http_status: ClassVar[int] = 503
    retryable = True


@dataclass(frozen=True)
class WitnessItem:
    """One stored record: where it is (file and line, or URL and position) and its decoded JSON, or
    None when it is not JSON at all."""

    where: str
    value: Any


class Witness(Protocol):
    """An append-only store of witness records."""

    @property
    def location(self) -> str: ...

    def append(self, record: dict[str, Any]) -> None:
        """Store ``record`` durably, or raise ``WitnessUnavailableError``."""

    def read(self) -> list[WitnessItem]:
        """Every stored record, oldest first (``WitnessUnavailableError`` if the store cannot be read)."""


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class DirWitness:
    """``checkpoints.jsonl`` in a directory of its own, appended to and never rewritten."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / FILE_NAME

    @property
    def location(self) -> str:
        return str(self.path)

    def append(self, record: dict[str, Any]) -> None:
        data = _line(record)
        try:
            self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a line torn by a crash stays a line of its own
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                dir_fd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise WitnessUnavailableError(f"the audit witness {self.path} cannot be written: {exc}") from exc

    def read(self) -> list[WitnessItem]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise WitnessUnavailableError(f"the audit witness {self.path} cannot be read: {exc}") from exc
        items = []
        # What follows the last newline is a record being written right now (or one a crash cut
        # short, which the next append ends with a newline): not a record yet.
        for n, line in enumerate(raw.split(b"\n")[:-1], 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            items.append(WitnessItem(f"{self.path}:{n}", value))
        return items


class HttpWitness:
    """A remote witness: POST appends one record, GET answers them all as a JSON list."""

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.timeout = timeout

    @property
    def location(self) -> str:
        return self.url

    def append(self, record: dict[str, Any]) -> None:
        try:
            response = httpx.post(self.url, content=_line(record), timeout=self.timeout, headers=_JSON)
        except httpx.HTTPError as exc:
            raise WitnessUnavailableError(f"the audit witness {self.url} cannot be written: {exc}") from exc
        if not response.is_success:
            raise WitnessUnavailableError(
                f"the audit witness {self.url} refused a record: HTTP {response.status_code}"
            )

    def read(self) -> list[WitnessItem]:
        try:
            response = httpx.get(self.url, timeout=self.timeout, headers={"Accept": "application/json"})
            response.raise_for_status()
            values = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WitnessUnavailableError(f"the audit witness {self.url} cannot be read: {exc}") from exc
        if not isinstance(values, list):
            raise WitnessUnavailableError(f"the audit witness {self.url} did not answer a JSON list")
        return [WitnessItem(f"{self.url} #{n}", v) for n, v in enumerate(values, 1)]


_JSON = {"Content-Type": "application/json"}


def open_witness(settings: Settings) -> Witness:
    """The witness these settings name: the URL if one is set, else the directory."""
    if settings.audit_witness_url:
        return HttpWitness(settings.audit_witness_url)
    assert settings.audit_witness_dir is not None  # derived from DATA_DIR by Settings
    return DirWitness(settings.audit_witness_dir)


def checkpoint_record(seq: int, hash_: str, kid: str, signature: str, ts: datetime) -> dict[str, Any]:
    return {
        "kind": "checkpoint",
        "seq": seq,
        "hash": hash_,
        "kid": kid,
        "signature": signature,
        "ts": ts.isoformat(),
    }


def committed_record(seq: int, hash_: str, signature: str) -> dict[str, Any]:
    return {"kind": "committed", "seq": seq, "hash": hash_, "signature": signature}


@dataclass(frozen=True)
class WitnessedCheckpoint:
    seq: int
    hash: str
    kid: str
    signature: str
    where: str

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.seq, self.hash, self.signature)


@dataclass
class WitnessContents:
    """The records of a witness, sorted out: checkpoints (in the order written), the checkpoints
    confirmed as committed, the items that are not records of a witness (where, why), and checkpoints
    found by a second read (``later``: they may vouch for a checkpoint of the database, nothing more)."""

    checkpoints: list[WitnessedCheckpoint]
    committed: set[tuple[int, str, str]]
    unreadable: list[tuple[str, str]]
    records: int
    later: list[WitnessedCheckpoint] = field(default_factory=list)

    def checkpoint_keys(self) -> set[tuple[int, str, str]]:
        return {w.key for w in self.checkpoints}


def parse(items: list[WitnessItem]) -> WitnessContents:
    out = WitnessContents([], set(), [], len(items))
    for item in items:
        v = item.value
        if not isinstance(v, dict):
            out.unreadable.append((item.where, "not a JSON object"))
            continue
        seq, hash_, sig = v.get("seq"), v.get("hash"), v.get("signature")
        if not (isinstance(seq, int) and isinstance(hash_, str) and isinstance(sig, str)):
            out.unreadable.append((item.where, "seq, hash or signature missing"))
        elif v.get("kind") == "checkpoint" and isinstance(v.get("kid"), str):
            out.checkpoints.append(WitnessedCheckpoint(seq, hash_, v["kid"], sig, item.where))
        elif v.get("kind") == "committed":
            out.committed.add((seq, hash_, sig))
        else:
            out.unreadable.append((item.where, f"unknown kind {v.get('kind')!r}"))
    return out


@dataclass
class Finding:
    """Where the witness and the database disagree: the first entry concerned (0: none), what, and,
    when the bad entry lies in a range, the range's last entry."""

    seq: int
    message: str
    last: int | None = None


@dataclass
class Comparison:
    findings: list[Finding]  # the first of each sort, oldest entry first
    rolled_back: int  # checkpoints of transactions that rolled back after writing them


Key = tuple[int, str, str]  # (seq, hash, signature) of a checkpoint


def compare(
    contents: WitnessContents,
    db_checkpoints: list[Key],
    hashes_at: dict[int, str],
    *,
    head_seq: int,
    entries: int,
    location: str,
    bad_signature: Callable[[WitnessedCheckpoint], str | None],
    known_kids: set[str],
) -> Comparison:
    """What the witness holds that the database does not, and the other way round.

    ``hashes_at``: the hash of each entry of the database at a checkpoint's seq; ``head_seq``: the
    log's end as read after the witness; ``bad_signature``: why a witnessed checkpoint's signature does
    not hold, or None; ``known_kids``: the keys in the database. A checkpoint never confirmed, signed
    with a key the database does not hold, was signed with the hub's first key in a transaction that
    rolled back (and took the key with it).
    """
    edited = [
        Finding(
            0,
            f"{where}: not a witness record ({why}): the witness was edited (or a write to it was cut "
            "short by a crash)",
        )
        for where, why in contents.unreadable
    ]
    valid: list[WitnessedCheckpoint] = []
    rolled_back = 0
    for w in contents.checkpoints:
        if w.kid not in known_kids and w.key not in contents.committed:
            rolled_back += 1
            continue
        why = bad_signature(w)
        if why is None:
            valid.append(w)
        else:
            edited.append(Finding(w.seq, f"{w.where}: the checkpoint at entry {w.seq} was edited: {why}"))
    for seq, _hash, _sig in sorted(contents.committed - contents.checkpoint_keys()):
        edited.append(
            Finding(
                seq,
                f"the witness confirms a checkpoint at entry {seq} it does not hold: a record was deleted "
                "from it",
            )
        )
    witnessed = {w.key for w in valid} | {w.key for w in contents.later}
    in_db: dict[int, list[Key]] = {}
    for key in db_checkpoints:
        in_db.setdefault(key[0], []).append(key)
    unwitnessed = [
        Finding(
            key[0],
            f"the checkpoint at entry {key[0]} is not in the witness ({location}): the witness lost it, "
            "or it was added to the database around the hub",
        )
        for seq in sorted(in_db)
        for key in in_db[seq]
        if key not in witnessed
    ]
    deleted: list[Finding] = []
    rewritten: list[Finding] = []
    matching = sorted({w.seq for w in valid if hashes_at.get(w.seq) == w.hash})
    for w in sorted(valid, key=lambda w: w.seq):
        confirmed = w.key in contents.committed
        chain = hashes_at.get(w.seq)
        if w.key in in_db.get(w.seq, ()):
            continue  # the database's own checkpoint check holds it against the chain
        if chain == w.hash:
            if confirmed:
                deleted.append(
                    Finding(
                        w.seq,
                        f"the checkpoint at entry {w.seq} was deleted from the database ({w.where} holds it)",
                    )
                )
            else:
                rolled_back += 1  # signed at the head by a transaction that then rolled back
            continue
        replaced = any(k in witnessed and k[1] == chain for k in in_db.get(w.seq, ()))
        if not confirmed and (w.seq == head_seq + 1 or replaced):
            rolled_back += 1  # its entry rolled back with it (and was written again, or not yet)
            continue
        good = max((s for s in matching if s < w.seq), default=0)
        state = "is missing" if chain is None else "no longer has the hash"
        rewritten.append(
            Finding(
                good + 1,
                f"entries {good + 1}..{w.seq} were rewritten or deleted: entry {w.seq} {state} that "
                f"{w.where} holds for it",
                w.seq,
            )
        )
    if not entries and rewritten:
        top = max(f.last or 0 for f in rewritten)
        rewritten = [
            Finding(
                1,
                f"the database holds no audit entries, but the witness holds checkpoints up to entry {top} "
                f"({location}): the log was deleted",
                top,
            )
        ]
    findings = [f for f in map(_first, (edited, unwitnessed, deleted, rewritten)) if f is not None]
    return Comparison(findings, rolled_back)


def _first(findings: list[Finding]) -> Finding | None:
    if not findings:
        return None
    first = findings[0]
    if len(findings) > 1:
        first.message += f" (and {len(findings) - 1} more like it)"
    return first
