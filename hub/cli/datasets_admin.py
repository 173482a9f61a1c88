"""``hub datasets add FILE.yaml``: register a dataset definition in the live catalogue at run time.

The file has the format of ``catalog/<agency>/<dataset>.yaml`` (see docs/ingest.md). It is checked
(keys, owner, contract, connector, schedule) and stored in the metadata database; it is not copied into
the catalog folder. ``POST /api/v1/datasets`` does the same over HTTP.
"""

from __future__ import annotations

from pathlib import Path

import typer

from hub.cli.common import console, session, settings
from hub.errors import CatalogError, InvalidInputError


def add(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Dataset definition (YAML)."),
    org: str | None = typer.Option(None, "--org", help="Owning organization when the file does not say."),
) -> None:
    """Validate a dataset definition and store it in the catalogue."""
    from hub.catalog.loader import _read_yaml
    from hub.ingest.instances import add_dataset

    data = _read_yaml(file)
    try:
        with session() as s:
            ds = add_dataset(s, settings(), data, organization=org, origin="cli")
            key, schedule = ds.key, ds.spec.get("schedule")
    except InvalidInputError as exc:
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.errors.items())
        raise CatalogError(f"{exc.message}: {detail}" if detail else exc.message, file=str(file)) from exc
    when = f", scheduled {schedule!r} (run by `hub worker`)" if schedule else ""
    console.print(f"registered dataset [bold]{key}[/]{when}")


def extend(group: typer.Typer) -> None:
    """Add ``add`` to ``hub datasets`` (called by hub.cli.datasets)."""
    group.command("add")(add)
