"""What every command module shares: the console, settings, a session, progress bars."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table as RichTable
from sqlalchemy.orm import Session

from hub.db import session_scope
from hub.errors import ConfigError
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


def json_config(value: str) -> dict[str, Any]:
    """A ``--config`` option: a JSON object, or ``@file`` holding one."""
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("--config must be a JSON object")
    return data


def print_table(table: pa.Table, fmt: str) -> None:
    """``table`` on standard output: ``csv``, ``json`` (a list of objects) or a terminal table."""
    if fmt == "csv":
        import pyarrow.csv as pacsv

        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink)
        sys.stdout.write(sink.getvalue().to_pybytes().decode("utf-8"))
        return
    if fmt == "json":
        sys.stdout.write(json.dumps(table.to_pylist(), default=str, ensure_ascii=False, indent=1) + "\n")
        return
    out = RichTable(show_lines=False)
    for name in table.column_names:
        out.add_column(name, overflow="fold")
    for row in table.to_pylist():
        out.add_row(*["" if v is None else str(v) for v in row.values()])
    console.print(out)
    console.print(f"[dim]{table.num_rows} row(s)[/]")
