"""``hub grants add | list | revoke``: data-sharing grants of shared (dùng chung) datasets."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table

from hub.cli.auth import operator
from hub.cli.common import console, session

grants_app = typer.Typer(help="Data-sharing grants: who may read which shared dataset, why and until when.")


def _parse_expiry(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


@grants_app.command("add")
def grants_add(
    dataset: str = typer.Argument(..., help="Dataset key (civil_status.births), name or id."),
    consumer_org: str = typer.Argument(..., help="Consumer organization (name or id)."),
    purpose: str = typer.Option(..., help="Mục đích / purpose of the sharing."),
    legal_basis: str = typer.Option(
        ..., help="Căn cứ pháp lý / legal basis (e.g. 'Nghị định 194/2025 Điều 16')."
    ),
    expires: str = typer.Option(None, help="Expiry, ISO date or datetime in UTC (default: until revoked)."),
    client: str = typer.Option(None, help="Limit the grant to one client of the consumer organization."),
    allow_publication: bool = typer.Option(
        False,
        "--allow-publication",
        help="The purpose allows publication: open-data releases of the consumer may be built from "
        "the data (through the de-identification gate).",
    ),
) -> None:
    """Grant a consumer organization (or one of its clients) read access to a shared dataset."""
    from hub.auth import grants

    with session() as s:
        g = grants.create(
            s,
            operator(),
            dataset=dataset,
            consumer_org=consumer_org,
            purpose=purpose,
            legal_basis=legal_basis,
            expires_at=_parse_expiry(expires),
            consumer_client_id=client,
            allow_publication=allow_publication,
        )
    console.print(f"grant {g.id} created")


@grants_app.command("list")
def grants_list(
    dataset: str = typer.Option(None, help="Only the grants of this dataset."),
    all_: bool = typer.Option(False, "--all", help="Include revoked grants."),
) -> None:
    """List grants."""
    from hub.auth import grants

    with session() as s:
        table = Table("id", "dataset", "consumer", "client", "purpose", "legal basis", "expires", "state")
        for g in grants.list_grants(s, operator(), dataset=dataset, include_revoked=all_):
            d = grants.grant_dict(s, g)
            table.add_row(
                d["id"],
                d["dataset"],
                d["consumer_org"],
                d["consumer_client_id"] or "",
                d["purpose"],
                d["legal_basis"],
                d["expires_at"] or "",
                d["state"],
            )
    console.print(table)


@grants_app.command("revoke")
def grants_revoke(
    grant_id: str = typer.Argument(..., help="Grant id."),
    reason: str = typer.Option(None, help="Why (recorded in the audit log)."),
) -> None:
    """Revoke a grant; it takes effect on the consumer's next request."""
    from hub.auth import grants

    with session() as s:
        grants.revoke(s, operator(), grant_id, reason=reason)
    console.print(f"grant {grant_id} revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(grants_app, name="grants")
