"""``hub worker``: run scheduled ingests (a dataset's cron ``schedule``) until stopped."""

from __future__ import annotations

import signal

import typer

from hub.cli.common import console, err_console, settings


def worker(
    concurrency: int = typer.Option(2, "--concurrency", "-n", min=1, help="Most ingests running at once."),
    once: bool = typer.Option(False, "--once", help="Run what is due now, wait for it, and exit."),
    poll: float = typer.Option(30.0, "--poll", min=0.1, help="Seconds between looks for due datasets."),
    max_retries: int = typer.Option(3, "--max-retries", min=0, help="Retries of a transient failure."),
    backoff: float = typer.Option(60.0, "--backoff", min=0, help="First retry delay in seconds; doubles."),
) -> None:
    """Run due ingests: several workers (even on several machines sharing one PostgreSQL metadata
    database) never run one dataset at once; transient failures are retried with backoff."""
    from hub.ingest.hooks import RunHooks
    from hub.ingest.runner import recover_interrupted_runs
    from hub.ingest.scheduler import Outcome, Worker
    from hub.publish import freshness

    s = settings()
    recovered = recover_interrupted_runs(s)
    if recovered:
        err_console.print(f"marked {len(recovered)} interrupted run(s) as failed")

    def report(o: Outcome) -> None:
        if o.status == "succeeded":
            console.print(f"[green]succeeded[/] {o.key} (run {o.run_id})")
        else:
            retry = f"; retry at {o.retry_at:%Y-%m-%d %H:%M:%S} UTC" if o.retry_at else ""
            err_console.print(f"[red]{o.status}[/] {o.key}: {o.error}{retry}")

    w = Worker(
        s,
        concurrency=concurrency,
        poll_seconds=poll,
        max_retries=max_retries,
        backoff_seconds=backoff,
        on_outcome=report,
        hooks=freshness.subscribe(RunHooks()),  # releases rebuilt after ingests, stale ones by schedule
    )
    if once:
        outcomes = w.run_once()
        if not outcomes:
            console.print("nothing is due")
        if any(o.status != "succeeded" for o in outcomes):
            raise typer.Exit(1)
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: w.stop.set())
    console.print(
        f"worker {w.holder}: up to {concurrency} ingests at once; Ctrl-C stops after the running ones"
    )
    w.serve()


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
