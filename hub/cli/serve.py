"""``hub serve``: the web server (CKAN Action API, DataStore, downloads, /api/v1, portal)."""

from __future__ import annotations

import os

import typer

from hub.cli.common import console, err_console
from hub.settings import Settings, get_settings
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
        pg_port: int = typer.Option(
            None,
            "--pg-port",
            help="Also open the PostgreSQL-protocol endpoint on this port (psql, JDBC/ODBC, BI tools); "
            "default: HUB_PG_PORT (0: none).",
        ),
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
        pg = settings.pg_port if pg_port is None else pg_port
        if pg:
            _serve_with_pg(settings, host, port, workers, log_level, pg)
            return
        uvicorn.run(
            "hub.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            proxy_headers=True,
        )


def _serve_with_pg(
    settings: Settings, host: str, port: int, workers: int, log_level: str, pg_port: int
) -> None:
    """Serve the web app and the PostgreSQL endpoint. With one worker process the endpoint shares the
    app's runtime (its query workers); with several it runs once, in this parent process, on a runtime
    of its own, and uvicorn's workers serve HTTP."""
    import threading

    import uvicorn

    from hub.api.app import create_app
    from hub.runtime import Hub

    def opened(hub: Hub) -> None:
        listening = hub.pg_server.start(settings.pg_host, pg_port)
        tls = " (TLS offered)" if hub.pg_server.tls else ""
        console.print(f"PostgreSQL protocol on {settings.pg_host}:{listening}{tls}  (see docs/analysts.md)")

    if workers == 1:
        app = create_app(settings)
        opened(app.state.hub)  # the app's lifespan closes the runtime, and the endpoint with it
        uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=True)
        return
    with Hub(settings) as hub:
        opened(hub)
        if settings.query_workers_prestart:
            threading.Thread(target=hub.pool.start, name="query-workers-start", daemon=True).start()
        uvicorn.run(
            "hub.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            proxy_headers=True,
        )
