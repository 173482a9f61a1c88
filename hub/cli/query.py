"""``hub query``: one SELECT over the warehouse, on the server's shell or as a job of a running hub.

- ``hub query "SQL"`` (operators on the server's shell): every dataset, with the hub's rights, on the
  locked engine in this process; no network door reaches it.
- ``hub query --async "SQL"`` (analysts, anywhere): submits the query as a job to a running hub
  (``POST /api/v1/queries`` at ``--url`` or ``HUB_URL``, with the token of ``--token`` or
  ``HUB_TOKEN``), shows its progress (rows, rows/s, elapsed) until it ends, then downloads the
  result to ``--output`` (its extension chooses the format: .parquet, .arrow/.arrows, .csv, .tsv,
  .jsonl) or prints it. Ctrl-C cancels the job. The caller reads what its token may read, as on
  ``/api/v1/query``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import typer

from hub.cli.common import err_console, print_table, progress, settings

_SUFFIX_FORMATS = {
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".arrows": "arrow",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def _parse_as_of(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        key, sep, when = value.partition("=")
        if not sep or not key or not when:
            raise typer.BadParameter(
                f"--as-of {value!r}: write DATASET=SNAPSHOT_ID or DATASET=2026-01-31T12:00:00Z"
            )
        out[key.strip()] = when.strip()
    return out


def query(
    sql: str = typer.Argument(
        ...,
        help="SQL over the datasets; each dataset is a table named by its key, e.g. "
        '"SELECT ward_code, count(*) FROM civil_status.births GROUP BY 1".',
    ),
    as_of: list[str] = typer.Option(
        None, "--as-of", help="DATASET=SNAPSHOT_ID or DATASET=ISO time (repeatable)."
    ),
    fmt: str = typer.Option("table", "--format", "-f", help="How to print: table, csv or json."),
    limit: int = typer.Option(10_000, "--limit", help="Most rows to print."),
    async_: bool = typer.Option(
        False,
        "--async",
        help="Submit the query as a job to a running hub (--url, --token), follow its progress, then "
        "download the result (--output) or print it.",
    ),
    url: str | None = typer.Option(
        None, "--url", envvar="HUB_URL", help="The hub of --async (default: HUB_SITE_URL)."
    ),
    token: str | None = typer.Option(
        None, "--token", envvar="HUB_TOKEN", help="Access token or CKAN API token of --async."
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="With --async: write the result here; the extension chooses the format "
        "(.parquet, .arrow, .csv, .tsv, .jsonl).",
    ),
) -> None:
    """Run one SELECT. On the server's shell (operators): over every dataset's current snapshot (or an
    earlier one with --as-of), with the hub's rights over all data, on the same locked engine and SQL
    policy as the API's SQL doors; no network door reaches it. With --async (analysts): as a job of a
    running hub, with the rights of --token, and a progress bar; Ctrl-C cancels the job."""
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format must be table, csv or json")
    if async_:
        _run_job(sql, _parse_as_of(as_of), url, token, output, fmt, limit)
        return
    if output is not None:
        raise typer.BadParameter("--output goes with --async")
    from hub.warehouse.query import run_sql
    from hub.warehouse.tables import Warehouse

    print_table(run_sql(Warehouse(settings()), sql, _parse_as_of(as_of), max_rows=limit), fmt)


# --- --async: a job of a running hub -----------------------------------------------------------------


def _fail(r: httpx.Response) -> None:
    """Print the hub's problem answer and stop (exit 1)."""
    try:
        body: Any = r.json()
        detail = body.get("detail") or body.get("title") if isinstance(body, dict) else body
    except ValueError:
        detail = r.text[:500]
    err_console.print(f"[bold red]✗[/] {r.status_code}: {detail}", markup=True)
    raise typer.Exit(1)


def _follow(client: httpx.Client, job: dict[str, Any], poll: float = 0.5) -> dict[str, Any]:
    """Poll the job until it ends, with a progress bar of its rows; Ctrl-C cancels it."""
    try:
        with progress(transient=True) as bar:
            task = bar.add_task(f"query {job['id'][:8]}", total=None, rate=job["status"])
            while job["status"] in ("queued", "running"):
                time.sleep(poll)
                r = client.get(f"/api/v1/queries/{job['id']}")
                if r.status_code != 200:
                    _fail(r)
                job = r.json()
                rows, seconds = job["progress"]["rows"], job["progress"]["seconds"]
                rate = f"{rows / seconds:,.0f} rows/s" if seconds and rows else job["status"]
                bar.update(task, completed=rows, rate=rate)
    except KeyboardInterrupt:
        client.post(f"/api/v1/queries/{job['id']}/cancel")
        err_console.print(f"[yellow]query job {job['id']} cancelled[/]")
        raise typer.Exit(130) from None
    return job


def _run_job(
    sql: str,
    as_of: dict[str, str],
    url: str | None,
    token: str | None,
    output: Path | None,
    fmt: str,
    limit: int,
) -> None:
    out_format = None
    if output is not None:
        out_format = _SUFFIX_FORMATS.get(output.suffix.lower())
        if out_format is None:
            raise typer.BadParameter(f"--output: use one of {', '.join(_SUFFIX_FORMATS)}")
    base = (url or settings().site_url).rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        r = client.post("/api/v1/queries", json={"sql": sql, "as_of": as_of})
        if r.status_code != 202:
            _fail(r)
        job = _follow(client, r.json())
        if job["status"] != "succeeded":
            err_console.print(f"[bold red]✗[/] query job {job['id']} {job['status']}: {job['error'] or ''}")
            raise typer.Exit(1)
        rows, seconds = job["progress"]["rows"], job["progress"]["seconds"]
        read = ", ".join(f"{s['table']}@{s['snapshot']}" for s in job["snapshots"])
        err_console.print(f"[green]✓[/] query job {job['id']}: {rows:,} rows in {seconds:.1f} s ({read})")
        result = f"/api/v1/queries/{job['id']}/result"
        if output is not None and out_format is not None:
            with client.stream("GET", result, params={"format": out_format}) as download:
                if download.status_code != 200:
                    download.read()
                    _fail(download)
                with open(output, "wb") as f:
                    for chunk in download.iter_bytes(1 << 20):
                        f.write(chunk)
            err_console.print(f"  written to {output}")
            return
        with client.stream("GET", result, params={"format": "arrow"}) as download:
            if download.status_code != 200:
                download.read()
                _fail(download)
            reader = pa.ipc.open_stream(io.BufferedReader(_Chunks(download.iter_raw(1 << 16)), 1 << 16))
            batches: list[pa.RecordBatch] = []
            kept = 0
            for batch in reader:  # only the rows printed are read
                batches.append(batch.slice(0, limit - kept))
                kept += batches[-1].num_rows
                if kept >= limit:
                    break
        print_table(pa.Table.from_batches(batches, schema=reader.schema), fmt)


class _Chunks(io.RawIOBase):
    """A streamed response body as a file (for Arrow's stream reader)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def register(app: typer.Typer) -> None:
    app.command("query")(query)
