"""``hub connectors list`` and ``hub connectors check`` (``add`` comes from ``hub.cli.connectors_admin``)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table as RichTable

from hub.cli import connectors_admin
from hub.cli.common import console, err_console, json_config, settings
from hub.errors import HubError, NotFoundError

connectors_group = typer.Typer(
    name="connectors",
    help="Connector plugins: list the installed ones, check a source.",
    no_args_is_help=True,
)


@connectors_group.command("list")
def list_connectors(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List installed connectors (the hub.connectors entry-point group): name, version, package."""
    from hub.ingest.registry import available_connectors, broken_connectors

    infos = available_connectors()
    broken = broken_connectors()
    if as_json:
        rows = [
            {"name": i.name, "version": i.version, "package": i.package, "description": i.description}
            for i in infos
        ]
        rows += [{"name": n, "error": msg} for n, msg in broken.items()]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = RichTable(title="Connectors")
    for col in ("name", "version", "package", "description"):
        table.add_column(col, overflow="fold")
    for i in infos:
        table.add_row(i.name, i.version, i.package, i.description)
    for name, msg in broken.items():
        table.add_row(name, "-", "-", f"[red]cannot be loaded:[/] {msg}")
    console.print(table)


def _dataset_source(key: str) -> tuple[Any, Any]:
    """The ``source`` of a dataset, from the catalogue folder (or the metadata database)."""
    from hub.catalog.loader import load_catalog

    s = settings()
    _orgs, datasets = load_catalog(s.catalog_dir)
    for loaded in datasets:
        if key in (loaded.spec.id, loaded.spec.ckan_name):
            return loaded.spec.source, loaded.spec
    from hub.catalog.loader import dataset_spec, get_dataset
    from hub.cli.common import session

    with session() as sess:
        spec = dataset_spec(get_dataset(sess, key))
    return spec.source, spec


@connectors_group.command("check")
def check(
    target: str = typer.Argument(..., help="A connector name (with --config) or a dataset key."),
    config: str | None = typer.Option(
        None, "--config", "-c", help="Connector config as JSON or @file.json; without it TARGET is a dataset."
    ),
    stream: str | None = typer.Option(None, "--stream", help="Stream to check (default: the only one)."),
) -> None:
    """Check that a source can be reached and read: prints what is wrong, exit code 1 if anything is."""
    from hub.catalog.spec import SourceSpec
    from hub.ingest.registry import build_connector

    s = settings()
    if config is not None:
        source, spec = SourceSpec(connector=target, stream=stream, config=json_config(config)), None
    else:
        source, spec = _dataset_source(target)
        if source is None:
            raise NotFoundError(f"dataset {target} has no source: (nothing to check)")
    try:
        connector = build_connector(s, source, dataset_spec=spec)
        streams = connector.streams()
        if source.stream or stream:
            connector.stream(stream or source.stream)
        result = connector.check()
    except HubError as exc:
        err_console.print(f"[bold red]not ok[/] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from exc
    mark = "[bold green]ok[/]" if result.ok else "[bold red]not ok[/]"
    console.print(f"{mark} {connector.name} {connector.version}: {result.message}")
    for st in streams:
        extra = []
        if st.primary_key:
            extra.append(f"key {', '.join(st.primary_key)}")
        if st.cursor_field:
            extra.append(f"cursor {st.cursor_field}")
        about = "; ".join([st.write_mode.value, *extra])
        console.print(f"  stream [bold]{st.name}[/] ({about})")
    for k, v in result.details.items():
        shown = ", ".join(map(str, v)) if isinstance(v, list) else v
        console.print(f"  {k}: {shown}")
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(connectors_group, name="connectors")
    connectors_admin.extend(connectors_group)
