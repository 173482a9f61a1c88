"""``hub demo run`` (``make demo``): the whole demo on the embedded default, safe to run twice.

1. generate the small province under ``DATA_DIR/demo`` unless it is there already;
2. start the simulated civil-status service as a child process (stopped on exit) on a free port (or
   ``--service-port``), with a fresh API key in ``HUB_DEMO_CIVIL_STATUS_API_KEY`` (the catalog's secret
   reference); a service that does not start stops the demo with its own message;
3. sync the catalog and ingest every dataset, showing progress; a failed dataset is reported and the
   others go on;
4. serve the hub (its startup syncs the catalog's CKAN side, as ``hub serve`` does) and print the URLs.

The catalog points the civil-status datasets at ``http://127.0.0.1:8765``; with another service port the
demo writes a copy of the catalog with that port under ``DATA_DIR/demo/catalog-<port>`` and uses it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.settings import Settings

API_KEY_ENV = "HUB_DEMO_CIVIL_STATUS_API_KEY"
DEFAULT_SERVICE_PORT = 8765
CATALOG_SERVICE_URL = f"http://127.0.0.1:{DEFAULT_SERVICE_PORT}"


@dataclass
class DemoOutcome:
    generated: bool = False
    results: dict[str, Any] = field(default_factory=dict)  # dataset key -> RunResult, or the error text

    @property
    def ok(self) -> bool:
        return all(getattr(r, "status", None) == "succeeded" for r in self.results.values())


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((host, port)) != 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def civil_status_service(
    db: Path, api_key: str, port: int, timeout: float = 30.0, faults: str | None = None
) -> Iterator[str]:
    """Run the simulated civil-status service as a child process; yields its base URL; stops it after."""
    import httpx

    from hub.errors import ConfigError, SourceUnavailableError

    if not port_free(port):
        raise ConfigError(f"port {port} is in use; stop what listens there or choose another --service-port")
    env = {**os.environ, API_KEY_ENV: api_key, "HUB_DEMO_PARENT_PID": str(os.getpid())}
    cmd = [
        sys.executable,
        "-m",
        "hub.cli.main",
        "demo",
        "civil-status-service",
        "--port",
        str(port),
        "--db",
        str(db),
    ]
    if faults:
        cmd += ["--faults", faults]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise ConfigError(
                    f"the simulated civil-status service did not start (exit {proc.returncode}): "
                    f"{err.strip().splitlines()[-1] if err.strip() else 'no message'}"
                )
            try:
                r = httpx.get(f"{base}/health", timeout=1.0)
                # the answer must come from our own child, not from whatever else listens there
                if r.status_code == 200 and r.json().get("pid") == proc.pid:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise SourceUnavailableError(
                    f"the civil-status service did not answer on {base} in {timeout:.0f} s"
                )
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def settings_for_service(settings: Settings, service_url: str) -> Settings:
    """``settings`` with a catalog whose civil-status sources point at ``service_url``."""
    if service_url == CATALOG_SERVICE_URL:
        return settings
    port = service_url.rsplit(":", 1)[-1]
    target = settings.data_dir / "demo" / f"catalog-{port}"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(settings.catalog_dir, target)
    for path in target.glob("*/*.yaml"):
        text = path.read_text(encoding="utf-8")
        if CATALOG_SERVICE_URL in text:
            path.write_text(text.replace(CATALOG_SERVICE_URL, service_url), encoding="utf-8")
    return settings.model_copy(update={"catalog_dir": target})


def ingest_all(settings: Settings) -> dict[str, Any]:
    """Sync the catalog and ingest every dataset in it, one after the other, with a progress bar each."""
    from rich.progress import TaskID

    from hub.catalog.loader import load_catalog, sync_catalog
    from hub.cli.common import progress
    from hub.db import session_scope
    from hub.ingest.hooks import RunHooks
    from hub.ingest.runner import run_ingest
    from hub.publish import freshness

    with session_scope(settings) as session:
        sync_catalog(session, settings)
    _, datasets = load_catalog(settings.catalog_dir)
    hooks = freshness.subscribe(RunHooks())  # a commit rebuilds the releases that read the dataset
    results: dict[str, Any] = {}
    with progress() as bar:
        for loaded in datasets:
            key = loaded.spec.id
            task = bar.add_task(f"ingest {key}", total=None, rate="rows")

            def advance(n: int, task: TaskID = task) -> None:
                bar.update(task, advance=n)

            try:
                result = run_ingest(
                    settings,
                    key,
                    progress=advance,
                    triggered_by="hub demo run",
                    hooks=hooks,
                )
            except Exception as exc:  # a dataset that cannot even start: report it and go on
                results[key] = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
                line = f"  [red]✗[/] {key}: {results[key]}"
            else:
                results[key] = result
                if result.status == "succeeded":
                    line = (
                        f"  [green]✓[/] {key}: {result.rows_loaded:,} rows loaded, "
                        f"{result.rows_quarantined:,} quarantined (of {result.rows_read:,} read)"
                    )
                    for _ds, release, what in result.releases:
                        line += f"\n      release {release}: {what}"
                else:
                    line = f"  [red]✗[/] {key}: {result.status}: {result.error}"
            bar.remove_task(task)
            bar.console.print(line)
    return results


def run_demo_outcome(
    settings: Settings,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    service_port: int = 0,
    scale: str = "small",
    serve_hub: bool = True,
) -> DemoOutcome:
    """The whole demo (see the module docstring); ``.ok`` when every dataset was ingested."""
    from hub.cli.common import console, progress
    from hub.demo.generate import DemoPaths, ensure_generated
    from hub.errors import ConfigError

    if not port:  # 8000, or a free port when another hub (another demo) has it
        port = 8000 if port_free(8000) and service_port != 8000 else free_port()
    if serve_hub:  # say so now, not after generating and ingesting
        if service_port and port == service_port:
            raise ConfigError(
                f"--port {port} is also the civil-status service's port; choose another --port "
                "(make demo PORT=...) or --service-port"
            )
        if not port_free(port):
            raise ConfigError(
                f"port {port} is in use; stop what listens there or choose another --port "
                "(make demo PORT=...)"
            )
    settings = settings.for_server(host, port)  # release files and API links name this server
    settings.ensure_dirs()
    paths = DemoPaths(settings.data_dir / "demo")
    outcome = DemoOutcome()
    with progress(transient=True) as bar:
        task = bar.add_task(f"demo province ({scale})", total=None, rate="")
        manifest, outcome.generated = ensure_generated(
            paths.root, scale, progress=lambda name, a, t: bar.update(task, advance=a, total=t, rate=name)
        )
    verb = "Generated" if outcome.generated else "Using the"
    console.print(
        f"{verb} {scale} demo province under {paths.root}: "
        + ", ".join(f"{n:,} {k}" for k, n in manifest["counts"].items())
    )
    api_key = os.environ.get(API_KEY_ENV) or secrets.token_urlsafe(24)
    os.environ[API_KEY_ENV] = api_key
    if not service_port:  # a free port of its own: two demos on one machine do not collide
        service_port = free_port()
        while service_port == port:
            service_port = free_port()
    with civil_status_service(paths.civil_status_db, api_key, service_port) as service_url:
        console.print(f"Simulated civil-status service (Sở Tư pháp) on {service_url}")
        hub_settings = settings_for_service(settings, service_url)
        console.print("Ingesting every dataset of the catalog:")
        outcome.results = ingest_all(hub_settings)
        if serve_hub:
            _serve(hub_settings, host, port)
    return outcome


DEMO_ANALYST = "demo-analyst"
DEMO_ANALYST_ORG = "so-tu-phap"


def demo_analyst_token(settings: Settings) -> str:
    """A CKAN API token (30 days) of the demo's analyst, a member of Sở Tư pháp with the scope
    ``warehouse:query``; the account is made on first use."""
    from sqlalchemy import select

    from hub.auth import tokens, users
    from hub.auth.models import User
    from hub.db import session_scope

    with session_scope(settings) as session:
        user = session.scalar(select(User).where(User.name == DEMO_ANALYST))
        if user is None:
            user = users.add_user(session, DEMO_ANALYST, None, fullname="Chuyên viên phân tích (demo)")
            users.set_role(session, DEMO_ANALYST, DEMO_ANALYST_ORG, "member")
        scope = "catalog:read datastore:read warehouse:query"
        token, _ = tokens.issue_api_token(session, settings, user, "hub demo run: psql", scope=scope, days=30)
    return token


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from hub.api.app import create_app
    from hub.cli.common import console

    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
    app = create_app(settings)
    pg_port = app.state.hub.pg_server.start(host, 0)  # a free port; closed with the app's runtime
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    token = demo_analyst_token(settings)
    psql = f'psql "host={shown_host} port={pg_port} dbname=hub user={DEMO_ANALYST} password={token}"'
    console.print("\n[bold]The hub is up. Open:[/]")
    for what, path in (
        ("portal", "/"),
        ("API docs (OpenAPI)", "/docs"),
        ("CKAN API", "/api/3/action/package_list"),
        ("DCAT-AP catalogue", "/catalog.ttl"),
    ):
        console.print(f"  {what:<20} {base}{path}")
    console.print(f"\n[bold]PostgreSQL protocol[/] on {shown_host}:{pg_port}, as the demo analyst:")
    console.print(psql, soft_wrap=True, highlight=False, markup=False)
    console.print("Stop with Ctrl-C.\n")
    uvicorn.run(app, host=host, port=port, log_level="warning")
