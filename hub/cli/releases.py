"""``hub releases``: list, check, build and rebuild open-data releases (see docs/publish.md)."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import select

from hub.cli import common

releases_app = typer.Typer(help="Open-data releases: de-identified, versioned files of warehouse data.",
                           no_args_is_help=True)  # fmt: skip


@releases_app.command("list")
def list_releases() -> None:
    """List every release with its last version, build time and whether it is stale."""
    from hub.catalog.models import Dataset
    from hub.publish.build import sync_releases
    from hub.publish.freshness import is_stale
    from hub.publish.models import Release

    table = Table(
        "dataset", "release", "frequency", "versions", "last built", "last checked", "stale", "last error"
    )
    with common.session() as session:
        sync_releases(session)
        for rel, ds in session.execute(
            select(Release, Dataset).join(Dataset, Release.dataset_id == Dataset.id).order_by(Dataset.key)
        ):
            table.add_row(
                ds.key, rel.name, str(rel.spec.get("frequency", "")), str(len(rel.versions)),
                f"{rel.last_built:%Y-%m-%d %H:%M}" if rel.last_built else "-",
                f"{rel.last_checked:%Y-%m-%d %H:%M} ({rel.last_outcome})" if rel.last_checked else "-",
                "yes" if is_stale(rel) else "no",
                (rel.last_error or "")[:80],
            )  # fmt: skip
    common.console.print(table)


@releases_app.command("check")
def check(dataset: str = typer.Argument(help="Dataset key, e.g. civil_status.births."),
          release: str = typer.Argument(help="Release id.")) -> None:  # fmt: skip
    """Run the de-identification gate on a release's SQL and print each output column's lineage."""
    from hub.publish.build import check_release, get_release
    from hub.publish.spec import ReleaseSpec

    settings = common.settings()
    with common.session() as session:
        ds, row = get_release(session, dataset, release)
        report = check_release(settings, session, ds, ReleaseSpec.model_validate(row.spec))
    table = Table("column", "source", "personal", "treatment")
    for col in report.columns:
        for lin in col.lineage or []:
            table.add_row(col.name, lin.source, lin.personal or "-", lin.treatment)
    common.console.print(table)
    common.console.print(
        f"[green]passes the gate[/] (quasi-identifier columns: {', '.join(report.quasi_columns) or 'none'})"
    )


@releases_app.command("build")
def build(
    dataset: str = typer.Argument(help="Dataset key, e.g. civil_status.births."),
    release: str = typer.Argument(None, help="Release id; default: every release of the dataset."),
) -> None:
    """Build a release (or every release of the dataset): a new version when its data changed.

    Unchanged data makes no new version ("unchanged, checked at ..."); a release with no rows is not
    published ("not published: the release has no rows")."""
    from hub.catalog.loader import dataset_spec, get_dataset
    from hub.publish.build import build_release
    from hub.publish.models import BUILT
    from hub.publish.spec import parse_releases
    from hub.runtime import Hub

    settings = common.settings()
    if release:
        names = [release]
    else:
        with common.session() as session:
            ds = get_dataset(session, dataset)
            names = [r.id for r in parse_releases(dataset_spec(ds), ds.source_file)]
    with Hub(settings) as hub, common.progress() as bar:
        task = bar.add_task("building releases", total=len(names), rate="")
        for name in names:
            result = build_release(hub, dataset, name, triggered_by="cli")
            bar.advance(task)
            counts = (
                f", {result.rows} rows, {result.suppressed} suppressed" if result.outcome == BUILT else ""
            )
            common.console.print(f"{dataset}/{name}: {result.message}{counts}")


@releases_app.command("rebuild-due")
def rebuild_due() -> None:
    """Rebuild every release that is stale (never built, or older than its frequency allows)."""
    from hub.publish.freshness import rebuild_due as run

    for dataset, name, outcome in run(common.settings()):
        common.console.print(f"{dataset}/{name}: {outcome}")


def register(app: typer.Typer) -> None:
    app.add_typer(releases_app, name="releases")
