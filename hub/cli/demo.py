"""``hub demo``: the demo province (generate), its simulated civil-status service, and ``make demo`` (run)."""

from __future__ import annotations

from pathlib import Path

import typer

from hub.cli.common import console, err_console, progress, settings
from hub.demo.run import API_KEY_ENV, DEFAULT_SERVICE_PORT

demo_app = typer.Typer(
    help="The demo province (Cần Thơ after the 2025 reorganization): generate its source systems, "
    "serve its civil-status service, or run the whole demo (make demo).",
    no_args_is_help=True,
)


@demo_app.command("generate")
def generate_cmd(
    scale: str = typer.Option(
        "small", help="small (seconds; tests and the demo) or province (1.2 M people)."
    ),
    out: Path | None = typer.Option(None, help="Output folder. Default: DATA_DIR/demo."),
    land_url: str | None = typer.Option(None, help="Also write land parcels into this PostgreSQL database."),
    education_url: str | None = typer.Option(
        None, help="Also write schools and enrolment into this MariaDB."
    ),
    seed: int | None = typer.Option(None, help="Random seed (same seed and scale: same data)."),
) -> None:
    """Generate the demo province's source systems: land registry, civil-status store, education
    workbooks and digital addresses."""
    from hub.demo.generate import DEFAULT_SEED, DemoPaths, generate

    target = out or settings().data_dir / "demo"
    with progress() as bar:
        task = bar.add_task(f"demo province ({scale})", total=None, rate="")

        def step(name: str, advance: int, total: int | None) -> None:
            bar.update(task, advance=advance, total=total, rate=name)

        manifest = generate(
            target,
            scale,
            seed=seed if seed is not None else DEFAULT_SEED,
            land_url=land_url,
            education_url=education_url,
            progress=step,
        )
    paths = DemoPaths(target)
    console.print(f"Generated the [bold]{scale}[/] demo province in {manifest['seconds']} s under {target}")
    for what, n in manifest["counts"].items():
        spoiled = manifest["messy"].get(what)
        console.print(f"  {what:<10} {n:>10,}" + (f"   ({spoiled:,} messy on purpose)" if spoiled else ""))
    console.print(
        f"  land: {paths.land_db}\n  civil status: {paths.civil_status_db}\n"
        f"  education: {paths.education_drop}\n  addresses: {paths.addresses_csv}"
    )


@demo_app.command("civil-status-service")
def civil_status_service_cmd(
    port: int = typer.Option(DEFAULT_SERVICE_PORT, help="TCP port."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    api_key: str | None = typer.Option(
        None, envvar=API_KEY_ENV, help=f"API key clients must send (or {API_KEY_ENV})."
    ),
    db: Path | None = typer.Option(None, help="Civil-status store. Default: DATA_DIR/demo/civil_status.db."),
    faults: str | None = typer.Option(
        None, help="Faults for every request, e.g. '500:2,429' (kinds 500, 503, 429, slow, truncate, drop)."
    ),
) -> None:
    """Serve the simulated civil-status service (REST/JSON pages and XML export) until interrupted."""
    from hub.demo.civil_status_service import parse_faults, serve

    if not api_key:
        err_console.print(f"[red]error[/]: give --api-key or set {API_KEY_ENV}")
        raise typer.Exit(2)
    try:
        parse_faults(faults)
    except ValueError as exc:
        err_console.print(f"[red]error[/]: --faults: {exc}")
        raise typer.Exit(2) from None
    store = db or settings().data_dir / "demo" / "civil_status.db"
    if not store.exists():
        err_console.print(f"[red]error[/]: {store} does not exist; run `hub demo generate` first")
        raise typer.Exit(2)
    err_console.print(f"civil-status service on http://{host}:{port} (store {store})")
    serve(store, api_key, host=host, port=port, faults=faults)


@demo_app.command("run")
def run_cmd(
    port: int = typer.Option(
        0, envvar="PORT", help="Port of the hub (0: 8000, or a free port when 8000 is taken)."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface of the hub."),
    service_port: int = typer.Option(
        0,
        envvar="SERVICE_PORT",
        help="Port of the simulated civil-status service (0: a free port, chosen at start).",
    ),
    scale: str = typer.Option("small", help="Scale of the demo province when it must be generated."),
    serve_hub: bool = typer.Option(True, "--serve/--no-serve", help="Serve the hub after ingesting."),
) -> None:
    """Generate the small province (once), start the civil-status service, ingest every dataset,
    then serve the hub and print the URLs to open. Safe to run twice."""
    from hub.demo.run import run_demo_outcome

    outcome = run_demo_outcome(
        settings(), port=port, host=host, service_port=service_port, scale=scale, serve_hub=serve_hub
    )
    if not outcome.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
