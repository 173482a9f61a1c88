"""``hub serve``: the web server (CKAN Action API, DataStore, downloads, /api/v1, portal)."""

from __future__ import annotations

import os

import typer

from hub.cli.common import console, err_console
from hub.settings import get_settings
from hub.startup import prepare


def _default_port() -> int:
    try:
        return int(os.environ.get("PORT", "8000"))
    except ValueError:
        return 8000


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)."),
        port: int = typer.Option(_default_port(), help="Port to listen on (default: env PORT, else 8000)."),
        workers: int = typer.Option(1, min=1, help="Number of worker processes."),
        log_level: str = typer.Option("info", help="uvicorn log level."),
    ) -> None:
        """Serve the hub: CKAN API at /api/3/action, DataStore, downloads, /api/v1, docs at /docs."""
        import uvicorn

        settings = get_settings()
        served = settings.for_server(host, port)
        if served is not settings:  # the worker processes build their settings from the environment
            os.environ["HUB_SITE_URL"] = served.site_url
            get_settings.cache_clear()
            settings = get_settings()
        # migrate, sync the catalog, recover runs: once here (so that a broken catalog file stops the
        # command with its message), and again, idempotently, in each worker's startup
        prepared = prepare(settings)
        err_console.print(f"catalog: {prepared.datasets} datasets from {settings.catalog_dir}")
        console.print(f"serving on http://{host}:{port}  (docs: /docs, health: /healthz)")
        uvicorn.run(
            "hub.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            proxy_headers=True,
        )
