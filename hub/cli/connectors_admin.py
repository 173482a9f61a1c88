"""``hub connectors add | instances | remove | check``: connector instances registered at run time.

``add`` stores a configured connector under a name of its own; its secrets are given as
``--secret key=value`` (or ``--secret key=@file`` / ``--secret key=env:VAR``), stored encrypted with
``HUB_SECRET_KEY``, and referred to in the config as ``{"$secret": "key"}``. ``check NAME`` tests a
registered instance; for anything else it does what ``hub connectors check`` always does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table as RichTable

from hub.cli.common import console, err_console, json_config, session, settings
from hub.errors import ConfigError


def _secret_option(values: list[str]) -> dict[str, str]:
    secrets: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"--secret must look like key=value, key=@file or key=env:VAR (got {key!r}=...)"
            )
        if value.startswith("@"):
            value = Path(value[1:]).read_text(encoding="utf-8").strip()
        elif value.startswith("env:"):
            var = value[4:]
            if var not in os.environ:
                raise ConfigError(f"--secret {key}: environment variable {var} is not set")
            value = os.environ[var]
        secrets[key] = value
    return secrets


def _config_option(value: str) -> dict[str, Any]:
    """``--config``: a JSON object, or ``@file`` holding one."""
    return json_config(value)


def add(
    name: str = typer.Argument(..., help="Name of the instance; datasets use it as source.connector."),
    connector: str = typer.Option(
        ..., "--connector", "-t", help="Connector type, e.g. rest, sql, xml, ckan."
    ),
    config: str = typer.Option(..., "--config", "-c", help="Config as JSON or @file.json."),
    secret: list[str] = typer.Option(
        [], "--secret", "-s", help='key=value, key=@file or key=env:VAR; refer to it as {"$secret": "key"}.'
    ),
    org: str | None = typer.Option(None, "--org", help="Owning organization (name)."),
    description: str | None = typer.Option(None, "--description", help="What this instance connects to."),
    replace: bool = typer.Option(False, "--replace", help="Update an existing instance of that name."),
) -> None:
    """Register a connector instance; the config is checked against the connector's model."""
    from hub.ingest import instances

    with session() as s:
        inst = instances.add(
            s,
            settings(),
            name=name,
            connector=connector,
            config=_config_option(config),
            secrets=_secret_option(secret),
            organization=org,
            description=description,
            created_by="cli",
            replace=replace,
        )
        shown = instances.describe(s, inst)
    stored = f", secrets stored encrypted: {', '.join(shown['secrets'])}" if shown["secrets"] else ""
    console.print(f"registered connector instance [bold]{name}[/] ({connector}){stored}")


def list_instances(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List registered connector instances (secret names only, never values)."""
    from hub.ingest import instances

    with session() as s:
        rows = [instances.describe(s, i) for i in instances.list_instances(s)]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = RichTable(title="Connector instances")
    for col in ("name", "connector", "organization", "secrets", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["name"],
            r["connector"],
            r["organization"] or "",
            ", ".join(r["secrets"]),
            r["description"] or "",
        )
    console.print(table)


def remove(name: str = typer.Argument(..., help="The instance to remove, with its secrets.")) -> None:
    """Remove a connector instance and its stored secrets."""
    from hub.ingest import instances

    with session() as s:
        instances.remove(s, name)
    console.print(f"removed connector instance {name}")


def check(
    target: str = typer.Argument(
        ..., help="A registered instance, a connector name (with --config) or a dataset."
    ),
    config: str | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Connector config as JSON or @file.json; without it TARGET is an instance or a dataset.",
    ),
    stream: str | None = typer.Option(None, "--stream", help="Stream to check (default: the only one)."),
) -> None:
    """Check that a source can be reached and read: prints what is wrong, exit code 1 if anything is."""
    from hub.ingest import instances

    if config is None:
        with session() as s:
            found = instances.lookup(s, target) is not None
            outcome = instances.check(s, settings(), target) if found else None
        if outcome is not None:
            mark = "[bold green]ok[/]" if outcome.result.ok else "[bold red]not ok[/]"
            out = console if outcome.result.ok else err_console
            out.print(f"{mark} {outcome.name} ({outcome.connector}): {outcome.result.message}")
            for k, v in outcome.result.details.items():
                out.print(f"  {k}: {', '.join(map(str, v)) if isinstance(v, list) else v}")
            if not outcome.result.ok:
                raise typer.Exit(1)
            return
    from hub.cli import connectors as base

    base.check(target=target, config=config, stream=stream)


def extend(group: typer.Typer) -> None:
    """Add the instance commands to ``hub connectors`` (called by hub.cli.connectors)."""
    group.command("add")(add)
    group.command("instances")(list_instances)
    group.command("remove")(remove)
    group.registered_commands[:] = [c for c in group.registered_commands if c.name != "check"]
    group.command("check")(check)
