"""``hub ingest``, ``hub history`` and ``hub quarantine`` (``hub query`` lives in ``hub.cli.query``)."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table as RichTable
from sqlalchemy import select

from hub.cli.common import console, err_console, print_table, progress, session, settings


def _recover() -> None:
    from hub.ingest.runner import recover_interrupted_runs

    for run in recover_interrupted_runs(settings()):
        err_console.print(
            f"[yellow]run {run.run_id} of {run.dataset}[/] was left running: marked {run.status}"
        )


def _dataset_keys(all_: bool, dataset: str | None) -> list[str]:
    from hub.catalog.loader import dataset_spec, sync_catalog
    from hub.catalog.models import Dataset

    if dataset and not all_:
        return [dataset]
    if not all_:
        raise typer.BadParameter("name a dataset, or use --all")
    with session() as s:
        sync_catalog(s, settings())
        found = s.scalars(select(Dataset).where(Dataset.state == "active").order_by(Dataset.key)).all()
        return [d.key for d in found if dataset_spec(d).source is not None]


class _RowProgress:
    """Feeds a run's per-batch row counts to a rich progress bar, with the rate in rows/s."""

    def __init__(self, bar: Any, task: Any) -> None:
        self.bar, self.task = bar, task
        self.rows = 0
        self.started = time.monotonic()

    def __call__(self, rows: int) -> None:
        self.rows += rows
        rate = self.rows / max(time.monotonic() - self.started, 1e-6)
        self.bar.update(self.task, completed=self.rows, rate=f"{rate:,.0f} rows/s")


def ingest(
    dataset: str | None = typer.Argument(None, help="Dataset key (civil_status.births) or CKAN name."),
    all_: bool = typer.Option(
        False, "--all", help="Ingest every dataset of the catalogue that has a source."
    ),
    allow_shrink: bool = typer.Option(
        False,
        "--allow-shrink",
        help="Let a replace run empty the table or remove more than HUB_INGEST_MAX_DROP_SHARE "
        "(default 50%) of its rows; without it such a run fails and commits nothing.",
    ),
) -> None:
    """Read a dataset's source, validate it, and commit a new snapshot (invalid rows go to quarantine).
    A replace run that would empty a loaded table, or remove more than HUB_INGEST_MAX_DROP_SHARE of its
    rows, fails and commits nothing (a source turned to garbage must not empty a table): check the
    source, and if it really shrank, run again with --allow-shrink."""
    from hub.ingest.hooks import RunHooks
    from hub.ingest.runner import run_ingest
    from hub.publish import freshness

    _recover()
    hooks = freshness.subscribe(RunHooks())  # a commit rebuilds the releases that read the dataset
    failed = 0
    for key in _dataset_keys(all_, dataset):
        with progress() as bar:
            update = _RowProgress(bar, bar.add_task(key, total=None, rate=""))
            result = run_ingest(
                settings(),
                key,
                progress=update,
                triggered_by="cli",
                allow_shrink=allow_shrink,
                hooks=hooks,
            )
        rate = result.rows_read / result.seconds if result.seconds else 0.0
        if result.ok:
            console.print(
                f"[green]✓[/] {key}: {result.rows_read:,} read, {result.rows_loaded:,} loaded, "
                f"{result.rows_quarantined:,} quarantined in {result.seconds:.2f} s ({rate:,.0f} rows/s); "
                f"snapshot {result.snapshot_id}; run {result.run_id}"
            )
            for _ds, release, outcome in result.releases:
                console.print(f"  release {release}: {outcome}")
            if result.changed:
                changes = ", ".join(f"{n:,} {what}" for what, n in result.changed.items())
                console.print(f"  by primary key: {changes}")
        else:
            failed += 1
            err_console.print(f"[bold red]✗[/] {key}: run {result.run_id} failed ({result.error_code}):")
            err_console.print(result.error or "", markup=False)
    if failed:
        raise typer.Exit(1)


def history(dataset: str = typer.Argument(..., help="Dataset key.")) -> None:
    """List a dataset's snapshots (time travel targets) and its runs."""
    from hub.catalog.loader import get_dataset
    from hub.catalog.models import Run
    from hub.warehouse.tables import Warehouse

    _recover()
    with session() as s:
        ds = get_dataset(s, dataset)
        key = ds.key
        runs = s.scalars(select(Run).where(Run.dataset_id == ds.id).order_by(Run.started_at)).all()
    wh = Warehouse(settings())
    snaps = wh.snapshots(key) if wh.has_table(key) else []
    table = RichTable(title=f"snapshots of {key}")
    for col in ("snapshot", "time (UTC)", "operation", "added", "deleted", "total rows", "run"):
        table.add_column(col)
    for snap in snaps:
        mark = " *" if snap.current else ""
        table.add_row(
            f"{snap.snapshot_id}{mark}",
            snap.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            snap.operation,
            snap.summary.get("added-records", "0"),
            snap.summary.get("deleted-records", "0"),
            snap.summary.get("total-records", "0"),
            snap.run_id or "",
        )
    console.print(table)
    rt = RichTable(title=f"runs of {key}")
    for col in (
        "run",
        "status",
        "mode",
        "started (UTC)",
        "read",
        "loaded",
        "quarantined",
        "seconds",
        "snapshot",
        "changes",
        "error",
    ):
        rt.add_column(col, overflow="fold")
    for run in runs:
        style = {"succeeded": "green", "failed": "red"}.get(run.status, "yellow")
        rt.add_row(
            run.id,
            f"[{style}]{run.status}[/]",
            run.mode,
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{run.rows_read:,}",
            f"{run.rows_loaded:,}",
            f"{run.rows_quarantined:,}",
            f"{run.seconds:.2f}" if run.seconds is not None else "",
            str(run.snapshot_id or ""),
            ", ".join(f"{n:,} {what}" for what, n in (run.changes or {}).items()),
            (run.error or "").splitlines()[0] if run.error else "",
        )
    console.print(rt)


def quarantine(
    dataset: str = typer.Argument(..., help="Dataset key."),
    run: str | None = typer.Option(None, "--run", help="Only the rows of this run (id or its beginning)."),
    limit: int = typer.Option(100, "--limit", help="Most rows to show."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
) -> None:
    """Show the rows a dataset's runs rejected, where they were and why."""
    from hub.catalog.loader import get_dataset
    from hub.warehouse.quarantine import read_quarantine
    from hub.warehouse.tables import Warehouse

    with session() as s:
        key = get_dataset(s, dataset).key
    rows = read_quarantine(Warehouse(settings()), key, run_id=run, limit=limit)
    if fmt != "table":
        print_table(rows, fmt)
        return
    out = RichTable(title=f"quarantine of {key}")
    for col in ("run", "source", "row", "problems", "record"):
        out.add_column(col, overflow="fold")
    for r in rows.to_pylist():
        problems = "\n".join(
            f"{e['path'] or '(row)'} {e['keyword']}: {e['message']}" for e in r["errors"] or []
        )
        out.add_row(r["run_id"][:8], r["_hub_source"] or "", str(r["_hub_row"]), problems, r["record"] or "")
    console.print(out)
    console.print(f"[dim]{rows.num_rows} row(s)[/]")


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("history")(history)
    app.command("quarantine")(quarantine)
