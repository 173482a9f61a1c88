"""Entry point of the ``hub`` command.

Each command module under ``hub.cli`` exposes ``register(app)``; ``COMMAND_MODULES`` is the one place
that names them (imported plainly: a missing module is an error at import, not a missing command).
"""

from __future__ import annotations

import sys

import typer

from hub.cli import audit, auth, connectors, datasets, demo, grants, ingest, query, releases, serve, worker
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
    ingest,  # ingest, history, quarantine
    query,  # query (on the shell, or --async as a job of a running hub)
    connectors,  # connectors list / add / check
    datasets,  # datasets list / add / sync
    worker,  # worker (scheduled ingests)
    demo,  # demo generate / civil-status-service / run
    serve,  # serve
    auth,  # users, orgs, clients, keys
    grants,  # grants
    audit,  # audit verify / export
    releases,  # releases
)
"""Each command module exposes ``register(app)``; this tuple is the one place that names them."""


@app.callback()
def _root() -> None:
    """Liên Thông hub. Settings come from HUB_* environment variables (see README.md)."""


@app.command("version")
def version() -> None:
    """Print the hub's version."""
    from hub import __version__

    typer.echo(__version__)


for _module in COMMAND_MODULES:
    _module.register(app)


def main() -> None:
    try:
        app()
    except HubError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error[/] ({exc.code}): {exc.message}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
