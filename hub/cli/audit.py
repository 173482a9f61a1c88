"""``hub audit verify | export | search | checkpoint``: the tamper-evident audit log."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from hub.cli.common import console, err_console, progress, session, settings

audit_app = typer.Typer(help="The audit log: verify its hash chain and signed checkpoints, export, search.")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole chain; names the first bad entry (edited, deleted, inserted, reordered)."""
    from hub.auth.audit_verify import count_entries, verify

    with session() as s, progress(transient=True) as bar:
        task = bar.add_task("verifying", total=count_entries(s), rate="")
        report = verify(s, settings(), lambda n: bar.update(task, completed=n))
    if report.ok:
        console.print(
            f"[green]ok[/]: {report.entries} entries, {report.checkpoints} signed checkpoints, chain intact"
        )
        return
    bad = report.first_bad
    assert bad is not None
    err_console.print(f"[bold red]TAMPERED[/]: first bad entry {bad.seq} ({bad.kind}): {bad.message}")
    for p in report.problems:
        if p is not bad:
            err_console.print(f"  also: entry {p.seq} ({p.kind}): {p.message}")
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
) -> None:
    """Export every entry in sequence order, with its hashes (for auditors and archives)."""
    from hub.auth.audit_verify import count_entries, export
    from hub.errors import ValidationFailed

    if fmt not in ("jsonl", "csv"):
        raise ValidationFailed("--format must be jsonl or csv")
    with session() as s, progress(transient=True) as bar:
        task = bar.add_task("exporting", total=count_entries(s), rate="")

        def step(n: int) -> None:
            bar.update(task, completed=n)

        if output is None:
            n = export(s, sys.stdout, fmt, step)
        else:
            with output.open("w", encoding="utf-8", newline="") as fh:
                n = export(s, fh, fmt, step)
    err_console.print(f"{n} entries exported")


@audit_app.command("search")
def audit_search(
    action: str = typer.Option(None, help="Action, or a prefix ending in * (grant.*)."),
    outcome: str = typer.Option(None, help="allowed, denied or error."),
    dataset: str = typer.Option(None, help="Dataset id."),
    subject: str = typer.Option(None, help="User id or client id."),
    limit: int = typer.Option(50, help="Most entries to show."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
) -> None:
    """Show the newest matching entries."""
    import json

    from hub.auth import audit

    with session() as s:
        rows = audit.search(
            s, action=action, outcome=outcome, dataset_id=dataset, subject=subject, limit=limit
        )
        if as_json:
            for e in rows:
                typer.echo(json.dumps(audit.entry_dict(e), ensure_ascii=False, default=str))
            return
        table = Table()
        for name in ("seq", "time", "action", "outcome", "who", "client", "dataset", "rows", "reason"):
            table.add_column(name, overflow="fold")
        for e in rows:
            table.add_row(
                str(e.seq),
                e.ts.isoformat(timespec="seconds"),
                e.action,
                e.outcome,
                e.actor_name or e.subject or "",
                e.client_id or "",
                e.dataset_id or "",
                "" if e.rows is None else str(e.rows),
                e.reason or "",
            )
    console.print(table)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign a checkpoint at the current end of the log now."""
    from hub.auth import audit

    with session() as s:
        cp = audit.checkpoint(s, settings())
    console.print(f"checkpoint at entry {cp.seq} signed with key {cp.kid}" if cp else "the log is empty")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
