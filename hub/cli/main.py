"""Entry point of the ``hub`` command.

Each command module under ``hub.cli`` exposes ``register(app)``; the list below is the one place that
names them, so that a module's commands appear in ``hub --help`` as soon as the module exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

from hub.errors import HubError

app = typer.Typer(
    name="hub",
    help="Liên Thông hub: connect sectoral systems, validate and version their data, share it "
    "between agencies under grants, and publish open data. Settings come from HUB_* variables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

COMMAND_MODULES = (
    "hub.cli.ingest",  # ingest, query, history, quarantine
    "hub.cli.connectors",  # connectors list / add / check
    "hub.cli.datasets",  # datasets list / add / sync
    "hub.cli.worker",  # worker (scheduled ingests)
    "hub.cli.demo",  # demo generate / civil-status-service / run
    "hub.cli.serve",  # serve
    "hub.cli.auth",  # users, orgs, clients, keys
    "hub.cli.grants",  # grants
    "hub.cli.audit",  # audit verify / export
    "hub.cli.releases",  # releases
)


@app.callback()
def _root() -> None:
    """Liên Thông hub. Settings come from HUB_* environment variables (see README.md)."""


@app.command("version")
def version() -> None:
    """Print the hub's version."""
    from hub import __version__

    typer.echo(__version__)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        module.register(app)


_register_all()


def main() -> None:
    try:
        app()
    except HubError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error[/] ({exc.code}): {exc.message}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
