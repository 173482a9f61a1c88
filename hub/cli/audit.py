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
    """Check the whole log: the hash chain, the signed checkpoints and their cadence, the head, and the
    witness; names the first bad entry (edited, deleted, inserted, reordered, rewritten)."""
    from hub.auth.audit_verify import count_entries, verify

    with session() as s, progress(transient=True) as bar:
        task = bar.add_task("verifying", total=count_entries(s), rate="")
        report = verify(s, settings(), lambda n: bar.update(task, completed=n))
    console.print(
        f"checked: {report.entries} entries, {report.checkpoints} signed checkpoints, "
        f"{report.witness_records} witness records ({report.witness_checkpoints} checkpoints) "
        f"in {report.witness}"
    )
    for note in report.notes:
        console.print(f"note: {note}")
    if report.ok:
        console.print(
            "[green]ok[/]: chain intact; checkpoints at the promised cadence, as the witness holds them"
        )
        return
    bad = report.first_bad
    assert bad is not None
    for p in [bad, *(p for p in report.problems if p is not bad)]:
        what = f"entry {p.seq}" if p.seq else "the log"
        if p is bad:
            label = "NOT VERIFIED" if p.kind == "unreachable" else "TAMPERED"
            err_console.print(f"[bold red]{label}[/]: first bad {what} ({p.kind}): {p.message}")
        else:
            err_console.print(f"  also: {what} ({p.kind}): {p.message}")
    raise typer.Exit(1)


@audit_app.command("witness-seed")
def audit_witness_seed() -> None:
    """Copy the signed checkpoints into a new, empty witness (after an upgrade, or a move of the
    witness); refused if the witness holds anything or the log does not verify."""
    from hub.auth.audit_verify import seed_witness
    from hub.auth.witness import open_witness

    with session() as s:
        n = seed_witness(s, settings())
    console.print(f"{n} checkpoints written to the witness {open_witness(settings()).location}")


@audit_app.command("export")
def audit_export(
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
) -> None:
    """Export every entry in sequence order, with its hashes (for auditors and archives)."""
    from hub.auth.audit_verify import count_entries, export
    from hub.errors import InvalidInputError

    if fmt not in ("jsonl", "csv"):
        raise InvalidInputError("--format must be jsonl or csv")
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
