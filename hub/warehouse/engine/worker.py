"""A query worker: a process that runs SQL from outside on the locked engine, within limits.

Started by ``hub.warehouse.engine.pool`` as ``python -m hub.warehouse.engine.worker``; speaks the
frames of ``hub.warehouse.engine.protocol`` on its stdin and stdout (the original stdout is kept for
the frames; file descriptor 1 then points at stderr, so nothing a library prints can corrupt them).

Once the engine is warm, the worker limits its own address space (``RLIMIT_AS``) to what it uses
then, plus the table cache's budget, plus ``HUB_QUERY_WORKER_MEMORY_MB``: a query that needs more
fails with an out-of-memory error inside the worker, never in the server. Its time limit is the
server's: the server kills the worker when a query passes it.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from hub.errors import HubError, QueryError
from hub.warehouse.engine import protocol as p
from hub.warehouse.engine.duck import Engine
from hub.warehouse.engine.tables import TableCache, TableSource


def _vm_size() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover - not Linux


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover - not Linux


def _warm(engine: Engine) -> None:
    """Run a small query on every thread, so that the idle address space is measured warm."""
    t = pa.table({"a": pa.array(range(200_000)), "b": pa.array([str(i % 7) for i in range(200_000)])})
    with engine.cursor({}, timeout=30) as cur:
        cur.register("w", t)
        cur.sql("SELECT b, count(*), sum(a) FROM w GROUP BY b ORDER BY b").fetchall()


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` without dictionary encoding (an ENUM result): a batch's IPC bytes do not carry its
    dictionaries, so the values travel decoded."""
    return pa.schema([f.with_type(_plain_type(f.type)) for f in schema], metadata=schema.metadata)


def _plain_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _plain_type(t.value_type)
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_plain_type(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(_plain_type(t.key_type), t.item_field.with_type(_plain_type(t.item_type)))
    return t


def _error(out: IO[bytes], message: str, kind: str) -> None:
    p.send_json(out, p.ERROR, {"message": message, "kind": kind})


def _job(engine: Engine, job: dict[str, Any], src: IO[bytes], out: IO[bytes]) -> None:
    tables = {t["name"]: TableSource.from_wire(t["source"]) for t in job["tables"]}
    rows = 0
    try:
        # the time limit is the server's (it kills the worker): no limit of its own here, so that a
        # result streamed to a slow client is not cut while the worker merely waits to send it
        with engine.cursor(tables, timeout=86_400.0) as cur:
            result = cur.sql(job["sql"], params=job.get("params") or [])
            if result is None:
                raise QueryError("Only a SELECT statement is allowed.")
            reader = result.to_arrow_reader(int(job.get("batch_rows") or 65_536))
            schema = _plain_schema(reader.schema)
            p.send(out, p.SCHEMA, schema.serialize())
            while True:
                kind, _ = p.receive(src)
                if kind == p.CANCEL:
                    p.send_json(out, p.END, {"rows": rows, "cancelled": True, "rss": _rss()})
                    return
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    p.send_json(out, p.END, {"rows": rows, "rss": _rss()})
                    return
                rows += batch.num_rows
                if batch.schema != schema:
                    batch = batch.cast(schema)
                p.send(out, p.BATCH, batch.serialize())
    except p.ProtocolError:
        raise  # the server went away: main() stops
    except HubError as exc:
        _error(out, exc.message, str(exc.details.get("kind", "invalid")))
    except MemoryError:
        _error(out, "The query needs more memory than it may use; aggregate or filter first.", "memory")
    except (pa.ArrowException, OSError, ValueError) as exc:
        _error(out, f"The query failed: {str(exc).splitlines()[0][:300]}", "invalid")


def main() -> None:
    src = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, not into the frames
    sys.stdout = sys.stderr
    kind, payload = p.receive(src)
    if kind != p.INIT:
        raise SystemExit("a query worker starts with an INIT frame")
    conf = p.loads(payload)
    engine = Engine(
        TableCache(int(conf["cache_mb"]) << 20),
        memory_limit=conf["memory_limit"],
        threads=int(conf["threads"]),
        temp_dir=Path(conf["temp_dir"]),
    )
    _warm(engine)
    limit = _vm_size() + ((int(conf["cache_mb"]) + int(conf["memory_mb"])) << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    p.send_json(out, p.READY, {"pid": os.getpid(), "address_space_limit": limit})
    while True:
        try:
            kind, payload = p.receive(src)
        except p.ProtocolError:
            return  # the server closed the pipe: stop
        if kind == p.JOB:
            _job(engine, p.loads(payload), src, out)


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, p.ProtocolError):  # the server went away: nothing to answer
        sys.exit(0)
