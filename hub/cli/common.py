"""What every command module shares: the console, settings, a session, progress bars."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.orm import Session

from hub.db import session_scope
from hub.settings import Settings, get_settings


def _width() -> int | None:
    """Output that is not a terminal (a pipe, a file, CI) is not wrapped at 80 columns: ``COLUMNS``
    or 200, so that names in tables stay whole for grep and logs."""
    if sys.stdout.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else 200


console = Console(highlight=False, width=_width())
err_console = Console(stderr=True, highlight=False, width=_width())


def settings() -> Settings:
    return get_settings()


@contextmanager
def session() -> Iterator[Session]:
    with session_scope(get_settings()) as s:
        yield s


def progress(transient: bool = False) -> Progress:
    """A rich progress bar with rows done, total where known, and elapsed time."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=transient,
    )
