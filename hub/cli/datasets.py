"""``hub datasets list | show | sync``: the catalogue of datasets."""

from __future__ import annotations

import typer
from rich.table import Table as RichTable
from sqlalchemy import select

from hub.cli import datasets_admin
from hub.cli.common import console, session, settings

datasets_app = typer.Typer(
    help="The datasets of the catalogue (catalog/<agency>/*.yaml).", no_args_is_help=True
)


def _rows(key: str) -> str:
    from hub.warehouse.tables import Warehouse

    wh = Warehouse(settings())
    if not wh.has_table(key):
        return ""
    snaps = wh.snapshots(key)
    current = [s for s in snaps if s.current]
    return f"{current[0].records:,}" if current and current[0].records is not None else "0"


@datasets_app.command("sync")
def sync() -> None:
    """Load catalog/<agency>/*.yaml into the live catalogue (errors name the file and the key)."""
    from hub.catalog.loader import sync_catalog

    with session() as s:
        found = sync_catalog(s, settings())
    console.print(f"synced {len(found)} dataset(s) from {settings().catalog_dir}")


@datasets_app.command("list")
def list_() -> None:
    """List the datasets: key, owner, sharing class, write mode, rows and last run."""
    from hub.catalog.loader import dataset_spec, sync_catalog
    from hub.catalog.models import Dataset, Organization, Run

    table = RichTable()
    for col in ("dataset", "title", "organization", "sharing", "mode", "rows", "last run"):
        table.add_column(col, overflow="fold")
    with session() as s:
        sync_catalog(s, settings())
    with session() as s:
        listed = []
        for ds in s.scalars(select(Dataset).where(Dataset.state == "active").order_by(Dataset.key)):
            org = s.get(Organization, ds.owner_org_id) if ds.owner_org_id else None
            last = s.scalars(
                select(Run).where(Run.dataset_id == ds.id).order_by(Run.started_at.desc())
            ).first()
            listed.append(
                [
                    ds.key,
                    ds.title,
                    org.name if org else "",
                    ds.sharing,
                    dataset_spec(ds).write_mode,
                    f"{last.status} {last.started_at:%Y-%m-%d %H:%M}" if last else "",
                ]
            )
    for row in listed:
        table.add_row(*row[:5], _rows(row[0]), row[5])
    console.print(table)


@datasets_app.command("show")
def show(dataset: str = typer.Argument(..., help="Dataset key or CKAN name.")) -> None:
    """Show one dataset: its definition, contract fields, current snapshot and recent runs."""
    from hub.catalog.loader import dataset_spec, get_dataset
    from hub.catalog.models import Run
    from hub.contracts import load_contract
    from hub.warehouse.tables import Warehouse

    with session() as s:
        ds = get_dataset(s, dataset)
        spec = dataset_spec(ds)
        runs = s.scalars(
            select(Run).where(Run.dataset_id == ds.id).order_by(Run.started_at.desc()).limit(5)
        ).all()
    console.print(f"[bold]{ds.key}[/]  {ds.title}" + (f" / {ds.title_en}" if ds.title_en else ""))
    console.print(f"  file: {ds.source_file}\n  sharing: {ds.sharing}   licence: {ds.license_id}")
    console.print(
        f"  contract: {spec.contract}   write mode: {spec.write_mode}   cursor: {spec.cursor_field}"
    )
    if spec.source is not None:
        console.print(
            f"  source: connector {spec.source.connector}, stream {spec.source.stream or '(default)'}"
        )
    contract = load_contract(spec.contract, settings().schemas_dir)
    console.print(f"  primary key: {', '.join(spec.primary_key or contract.primary_key) or '(none)'}")
    fields = RichTable(title="fields")
    for col in ("field", "type", "required", "personal", "label"):
        fields.add_column(col)
    for f in contract.fields:
        fields.add_row(
            f.name,
            str(f.arrow_type),
            "yes" if f.required else "",
            f.personal or "",
            f"{f.label_vi or ''} / {f.label_en or ''}",
        )
    console.print(fields)
    wh = Warehouse(settings())
    if wh.has_table(ds.key) and (sid := wh.current_snapshot_id(ds.key)) is not None:
        console.print(f"  current snapshot: {sid} ({_rows(ds.key)} rows)")
    else:
        console.print("  no snapshot yet: run `hub ingest " + ds.key + "`")
    for run in runs:
        console.print(
            f"  run {run.id} {run.status} {run.started_at:%Y-%m-%d %H:%M:%S} "
            f"read {run.rows_read:,} loaded {run.rows_loaded:,} quarantined {run.rows_quarantined:,}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
    datasets_admin.extend(datasets_app)
