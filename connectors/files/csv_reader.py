"""Streaming CSV reading: pyarrow's CSV reader behind the encoding filter, every column as text.

``_hub_row`` is the line number where the record starts (the header line is line ``header_row``).
A malformed record (wrong number of columns, a quote that is never closed, a value that runs over a
line break when ``newlines_in_values`` is off, bytes not valid in the encoding) either raises
``SourceDataError`` naming file, line and column (``on_error: fail``) or comes out as a row whose data
columns are null and whose ``_hub_error`` says what is wrong (``on_error: quarantine``).

Every source line is loaded or quarantined. With ``on_error: quarantine`` and ``newlines_in_values``
off (every line is a record), a line where a quote is never closed is set apart before pyarrow sees it
(``_QuoteGuard``: a numpy count of quote bytes per line over each chunk; only lines with an odd count
are looked at one by one), so it cannot swallow the lines after it: it is quarantined alone, and they
load. A broken record that still runs over several lines (``newlines_in_values`` on and a quote never
closed) is quarantined as one row per line, each with its line number, so a swallowed span counts in
the invalid share instead of vanishing. When pyarrow cannot parse the rest of a file at all (a quote
left open across its blocks), the error names the line where the quote was opened.

Before reading, the file's first bytes are checked (``sniff.require_text``): a compressed or binary
file fails naming the file. Lines that end in a lone CR are read as lines (``sniff.CrLines``).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from connectors.common.sniff import CrLines, lone_cr, require_text
from connectors.files.transcode import (
    CHUNK_BYTES,
    NormalizingReader,
    canonical_encoding,
    first_bad_byte,
    read_head,
)
from hub.errors import SourceDataError
from hub.ingest.connector import ERROR_COLUMN, ROW_COLUMN, SOURCE_COLUMN


@dataclass(frozen=True)
class CsvOptions:
    encoding: str = "utf-8"
    delimiter: str = ","
    quote_char: str = '"'
    header_row: int = 1
    newlines_in_values: bool = False
    on_error: Literal["fail", "quarantine"] = "fail"


@dataclass(order=True)
class _Problem:
    record: int
    line_count: int = field(compare=False)
    column: int | None = field(compare=False)
    reason: str = field(compare=False)
    text: str = field(compare=False, default="")
    unclosed: bool = field(compare=False, default=False)  # a quote never closed: it swallowed lines


@dataclass
class _Found:
    """A bad record of a batch: where it starts, why, and how many lines it runs over."""

    line: int
    column: int | None
    reason: str
    row: int | None  # its index in the batch; None for a record the parser skipped
    span: int = 1  # lines that count as source rows of their own (they are quarantined one by one)
    text: str = ""  # the record as read, when known (the swallowed lines are shown from it)


def open_bytes(path: Path, cr: bool) -> BinaryIO:
    """The file's bytes; with ``cr``, its lone-CR line ends read as LF."""
    raw = path.open("rb")
    return CrLines(raw) if cr else raw  # type: ignore[return-value]


def header_columns(path: Path, display: str, opts: CsvOptions, cr: bool = False) -> list[str]:
    """The column names on line ``header_row``: NFC, stripped; empty or repeated names are errors."""
    with open_bytes(path, cr) as raw:
        head = read_head(raw, opts.encoding, display)
    rows = csv.reader(io.StringIO(head, newline=""), delimiter=opts.delimiter, quotechar=opts.quote_char)
    names: list[str] | None = None
    try:
        for i, row in enumerate(rows, start=1):
            if i == opts.header_row:
                names = row
                break
    except csv.Error as exc:
        raise SourceDataError(f"not CSV text: {exc}", file=display, line=rows.line_num) from exc
    if not names:
        raise SourceDataError("no header line", file=display, line=opts.header_row)
    cleaned = [n.strip() for n in names]
    line = opts.header_row
    for i, n in enumerate(cleaned, start=1):
        if not n:
            raise SourceDataError("empty column name in the header", file=display, line=line, column=i)
        if cleaned.index(n) != i - 1:
            raise SourceDataError(f"column name {n!r} appears twice", file=display, line=line, column=i)
    return cleaned


BROKEN = "\x01"  # starts the line that stands in for a broken line (see _QuoteGuard)


def open_quote(line: bytes, delimiter: int, quote: int, inside: bool = False) -> int | None:
    """The 1-based column of a quote left open at the end of ``line``, read as pyarrow reads it: a
    quote opens a value only at its start, ``""`` inside quotes is a quote, text after a closing quote
    belongs to the value, and a quote inside an unquoted value is text. ``inside``: the line starts
    within a quoted value opened on an earlier line."""
    column, i, n = 1, 0, len(line)
    while i < n or inside:
        if inside or line[i] == quote:  # a quoted value
            i += 0 if inside else 1
            inside = False
            while True:
                if i >= n:
                    return column
                if line[i] == quote:
                    if i + 1 < n and line[i + 1] == quote:
                        i += 2
                        continue
                    i += 1
                    break
                i += 1
        while i < n and line[i] != delimiter:
            i += 1
        if i < n:  # a delimiter: the next value starts
            column += 1
            i += 1
    return None


class _QuoteGuard:
    """Lines where a quote is never closed, set apart before pyarrow reads them (every line a record).

    pyarrow would read such a quote on over the next lines (swallowing them, or failing when the value
    reaches the end of its block). Each chunk of whole lines is scanned with numpy for lines holding an
    odd number of quote bytes; only those are read one by one (``open_quote``), and a broken one is
    replaced by a line that pyarrow rejects as a record of the wrong width and that names it, so that
    the invalid-row handler quarantines it with its line number and reason."""

    def __init__(self, opts: CsvOptions, columns: int) -> None:
        self.delimiter = opts.delimiter.encode()
        self.quote = opts.quote_char.encode()
        self.header_row = opts.header_row
        self.pad = self.delimiter if columns == 1 else b""  # a marker must have the wrong width
        self.broken: dict[int, tuple[int, str]] = {}  # line -> (column, reason)

    def __call__(self, piece: bytes, first_line: int) -> bytes:
        if self.quote not in piece:
            return piece
        data = np.frombuffer(piece, dtype=np.uint8)
        ends = np.flatnonzero(data == 10)
        quotes = np.flatnonzero(data == self.quote[0])
        # quote bytes on each line: those before its end minus those before the previous line's end
        before = np.searchsorted(quotes, np.append(ends, len(piece)))
        odd = np.flatnonzero(np.diff(before, prepend=0) & 1)
        if not len(odd):
            return piece
        starts = np.concatenate([[0], ends + 1])
        out: list[bytes] = []
        done = 0
        for k in odd.tolist():
            line = first_line + k
            if line <= self.header_row:
                continue
            start = int(starts[k])
            end = int(ends[k]) if k < len(ends) else len(piece)
            text = piece[start:end].rstrip(b"\r")
            column = open_quote(text, self.delimiter[0], self.quote[0])
            if column is None:
                continue
            shown = text.decode("utf-8", errors="replace")
            self.broken[line] = (
                column,
                f"a quote opened in column {column} is never closed: {_snippet(shown)!r}",
            )
            out += [piece[done:start], f"{BROKEN}{line}".encode(), self.pad]
            done = end
        if not out:
            return piece
        out.append(piece[done:])
        return b"".join(out)

    def problem(self, record: int, text: str) -> _Problem | None:
        """The problem of a stand-in line that pyarrow rejected (None for any other rejected record)."""
        number = text[1:].split(self.delimiter.decode(), 1)[0] if text.startswith(BROKEN) else ""
        found = self.broken.pop(int(number), None) if number.isdigit() else None
        return None if found is None else _Problem(record, 1, found[0], found[1])


class _OpenValue:
    """Where the quoted value that is still open at the end of the text seen so far began (a guard
    that only looks, for ``newlines_in_values``: values may span lines, so the state carries over)."""

    def __init__(self, opts: CsvOptions) -> None:
        self.delimiter, self.quote = opts.delimiter.encode()[0], opts.quote_char.encode()[0]
        self.header_row = opts.header_row
        self.open: tuple[int, int] | None = None  # (line, column)

    def __call__(self, piece: bytes, first_line: int) -> bytes:
        if self.open is None and bytes([self.quote]) not in piece:
            return piece
        for k, text in enumerate(piece.split(b"\n")):
            line = first_line + k
            if line <= self.header_row or (self.quote not in text and self.open is None):
                continue
            column = open_quote(text.rstrip(b"\r"), self.delimiter, self.quote, self.open is not None)
            if column is None:
                self.open = None
            elif self.open is None:
                self.open = (line, column)
        return piece


def _quote_problem(text: str, opts: CsvOptions) -> int | None:
    """The 1-based column of a quote that is never closed, if any."""
    inside = False
    start = 0
    for pos, ch in enumerate(text):
        if ch == opts.quote_char:
            if not inside:
                start = pos
            inside = not inside
    if inside:
        return text[:start].count(opts.delimiter) + 1
    return None


def _describe_invalid(row: Any, opts: CsvOptions) -> _Problem:
    text: str = row.text or ""
    quote_col = _quote_problem(text, opts)
    if quote_col is not None:
        reason, column = f"a quote opened in column {quote_col} is never closed", quote_col
    elif row.actual_columns > row.expected_columns:
        reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
        column = row.expected_columns + 1
    else:
        reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
        column = row.actual_columns
    lines = 1 + text.count("\n")
    kept = text if lines > 1 else ""  # the lines it swallowed are shown from it
    return _Problem(
        int(row.number), lines, column, f"{reason}: {_snippet(text)!r}", kept, quote_col is not None
    )


def _snippet(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + "…"


def _block_size(head: str, batch_rows: int) -> int:
    lines = head.splitlines()[1:200] or [""]
    avg = max(8, sum(len(x.encode("utf-8")) + 1 for x in lines) // len(lines))
    return int(min(64 << 20, max(1 << 20, avg * batch_rows)))


COMBINING = "[\u0300-\u036f]"


def _value_bytes(col: pa.Array) -> np.ndarray:
    """The UTF-8 bytes behind a string array (all of them, also for a slice)."""
    buf = col.buffers()[2]
    return np.empty(0, np.uint8) if buf is None else np.frombuffer(buf, dtype=np.uint8)


def _nfc(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Compose the values that hold combining marks (Windows-1258 tones, NFD exports) to NFC."""
    arrays = []
    changed = False
    for col in batch.columns:
        data = _value_bytes(col)
        # U+0300..U+036F are 0xCC xx / 0xCD xx in UTF-8: a byte scan rules most columns out at once
        if not len(data) or not np.any((data & 0xFE) == 0xCC):
            arrays.append(col)
            continue
        mask = pc.match_substring_regex(col, COMBINING)
        if pc.any(mask).as_py():
            fixed = [unicodedata.normalize("NFC", v) for v in pc.filter(col, mask).to_pylist()]
            col = pc.replace_with_mask(col, pc.fill_null(mask, False), pa.array(fixed, pa.string()))
            changed = True
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema) if changed else batch


def _slices(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    """Zero-copy slices of at most about ``rows`` rows (a parsed block can hold many more)."""
    if batch.num_rows <= rows * 3 // 2:
        yield batch
        return
    for offset in range(0, batch.num_rows, rows):
        yield batch.slice(offset, rows)


class CsvStream:
    """One CSV file as a stream of record batches with ``_hub_row``, ``_hub_source`` (and ``_hub_error``)."""

    def __init__(self, path: Path, display: str, opts: CsvOptions, batch_rows: int) -> None:
        self.path, self.display, self.opts, self.batch_rows = path, display, opts, batch_rows
        self.cr = lone_cr(require_text(path, display, "CSV"))  # lines end in a lone CR: read them as LF
        self.columns = header_columns(path, display, opts, self.cr)
        self._problems: list[_Problem] = []
        lined = opts.on_error == "quarantine" and not opts.newlines_in_values
        self._guard = _QuoteGuard(opts, len(self.columns)) if lined else None
        self._bad_lines: dict[int, str] = {}
        self._next_record = opts.header_row + 1
        self._extra_lines = 0  # line breaks inside earlier records

    @property
    def quarantine(self) -> bool:
        return self.opts.on_error == "quarantine"

    def schema(self) -> pa.Schema:
        fields = [pa.field(c, pa.string()) for c in self.columns]
        fields += [pa.field(ROW_COLUMN, pa.int64()), pa.field(SOURCE_COLUMN, pa.string())]
        if self.quarantine:
            fields.append(pa.field(ERROR_COLUMN, pa.string()))
        return pa.schema(fields)

    def _on_invalid(self, row: Any) -> str:
        stand_in = self._guard.problem(int(row.number), row.text or "") if self._guard else None
        self._problems.append(stand_in or _describe_invalid(row, self.opts))
        return "skip"

    def _on_bad_bytes(self, line: int, reason: str) -> None:
        self._bad_lines[line] = reason

    @property
    def direct(self) -> bool:
        """UTF-8 that fails on the first bad byte goes straight to pyarrow (which checks UTF-8 itself)."""
        return canonical_encoding(self.opts.encoding) in ("utf-8", "utf-8-sig") and not self.quarantine

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        with open_bytes(self.path, self.cr) as raw:
            head = read_head(raw, self.opts.encoding, self.display)
        with open_bytes(self.path, self.cr) as raw:
            source: Any = raw
            if not self.direct:
                on_bad = self._on_bad_bytes if self.quarantine else None
                enc = self.opts.encoding
                source = NormalizingReader(
                    raw, enc, self.display, on_bad=on_bad, normalize=False, guard=self._guard
                )
            try:
                yield from self._batches(source, head)
            except pa.ArrowInvalid as exc:
                if self.direct and "UTF8" in str(exc):
                    with open_bytes(self.path, self.cr) as again:
                        first_bad_byte(again, self.opts.encoding, self.display)
                if "straddl" in str(exc) or "out of sync" in str(exc):
                    self._locate_open_quote(exc)
                raise SourceDataError(f"cannot parse the CSV: {exc}", file=self.display) from exc
            if self._problems:
                yield self._finish(pa.RecordBatch.from_pylist([], schema=self._raw_schema()), final=True)

    def _locate_open_quote(self, exc: Exception) -> None:
        """pyarrow lost its way in a quoted value that crossed its blocks: name the line and column
        where that quote was opened (one more pass over the file, on this error path only)."""
        lined = not self.opts.newlines_in_values
        scan = _QuoteGuard(self.opts, len(self.columns)) if lined else _OpenValue(self.opts)
        with open_bytes(self.path, self.cr) as raw:
            reader = NormalizingReader(
                raw, self.opts.encoding, self.display, on_bad=lambda _l, _r: None, normalize=False, guard=scan
            )
            while reader.read(CHUNK_BYTES) and not (isinstance(scan, _QuoteGuard) and scan.broken):
                pass
        if isinstance(scan, _QuoteGuard):
            found = min(scan.broken.items()) if scan.broken else None
            where = (found[0], found[1][0]) if found else None
        else:
            where = scan.open
        if where is not None:
            raise SourceDataError(
                f"a quote opened in column {where[1]} is never closed, so the rest of the file cannot be "
                "read as CSV"
                + ("" if lined else " (newlines_in_values: the value runs to the end of the file)"),
                file=self.display,
                line=where[0],
                column=where[1],
            ) from exc

    def _batches(self, source: Any, head: str) -> Iterator[pa.RecordBatch]:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(
                column_names=self.columns,
                skip_rows=self.opts.header_row,  # a UTF-8 byte-order mark goes with the header line
                block_size=_block_size(head, self.batch_rows),
                use_threads=False,  # row numbers of invalid rows are only known serially
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=self.opts.delimiter,
                quote_char=self.opts.quote_char,
                newlines_in_values=self.opts.newlines_in_values,
                invalid_row_handler=self._on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in self.columns},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        for batch in reader:
            if batch.num_rows:
                yield from _slices(self._finish(_nfc(batch), final=False), self.batch_rows)

    def _raw_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c, pa.string()) for c in self.columns])

    def _finish(self, batch: pa.RecordBatch, *, final: bool) -> pa.RecordBatch:
        n = batch.num_rows
        records = np.arange(self._next_record, self._next_record + n, dtype=np.int64)
        # Records the parser skipped (wrong column count) sit between these; shift the numbers past them.
        self._problems.sort()
        taken: list[_Problem] = []
        while self._problems and (final or (n and self._problems[0].record <= records[-1])):
            p = self._problems.pop(0)
            records[records >= p.record] += 1
            taken.append(p)
        self._next_record = int(records[-1]) + 1 if n else self._next_record + len(taken)
        # Line breaks inside quoted values make a record longer than one line.
        spans = np.ones(n, dtype=np.int64)
        multiline: list[tuple[int, int, str]] = []  # (row index, column, reason)
        for i, name in enumerate(self.columns):
            col = batch.column(i)
            if col.null_count == n or not np.any(_value_bytes(col) == 0x0A):
                continue
            counts = pc.count_substring(col, "\n")
            if pc.sum(counts).as_py():
                extra = counts.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
                spans += extra
                if not self.opts.newlines_in_values:
                    reason = f"the value of column {name!r} runs over a line break (a quote never closed?)"
                    multiline += [(int(idx), i + 1, reason) for idx in np.flatnonzero(extra)]
        lines, taken_lines = self._lines(records, spans, taken)
        # a bad record over several lines: without newlines_in_values each line was a record of its
        # own; with it, only a quote never closed swallowed lines that were not part of a value
        lined = not self.opts.newlines_in_values
        found = [_Found(int(lines[idx]), col, reason, idx, int(spans[idx])) for idx, col, reason in multiline]
        found += [
            _Found(line, p.column, p.reason, None, p.line_count if lined or p.unclosed else 1, p.text)
            for p, line in zip(taken, taken_lines, strict=True)
        ]
        if self._bad_lines:
            for idx in np.flatnonzero(np.isin(lines, np.fromiter(self._bad_lines, dtype=np.int64))):
                line = int(lines[idx])
                found.append(_Found(line, None, self._bad_lines.pop(line), int(idx)))
        if found and not self.quarantine:
            first = min(found, key=lambda f: f.line)
            raise SourceDataError(first.reason, file=self.display, line=first.line, column=first.column)
        arrays = list(batch.columns)
        arrays += [pa.array(lines, pa.int64()), pa.array([self.display] * n, pa.string())]
        if not self.quarantine:
            return pa.RecordBatch.from_arrays(arrays, schema=self.schema())
        return self._with_problems(arrays, n, found)

    def _lines(
        self, records: np.ndarray, spans: np.ndarray, taken: list[_Problem]
    ) -> tuple[np.ndarray, list[int]]:
        """Start line of each record: its record number plus the extra lines of the records before it."""
        if not taken and bool((spans == 1).all()):
            return records + self._extra_lines, []
        recs = np.concatenate([records, np.array([p.record for p in taken], dtype=np.int64)])
        lens = np.concatenate([spans, np.array([p.line_count for p in taken], dtype=np.int64)])
        order = np.argsort(recs, kind="stable")
        extra_sorted = np.cumsum(lens[order] - 1) - (lens[order] - 1) + self._extra_lines
        self._extra_lines += int((lens - 1).sum())
        start = np.empty_like(recs)
        start[order] = recs[order] + extra_sorted
        return start[: len(records)], [int(x) for x in start[len(records) :]]

    def _with_problems(self, arrays: list[pa.Array], n: int, found: list[_Found]) -> pa.RecordBatch:
        errors: list[str | None] = [None] * n
        extra_rows: list[tuple[int, str]] = []
        for f in found:
            reason = f.reason
            if f.span > 1:
                last = f.line + f.span - 1
                reason += f" (the record runs over lines {f.line} to {last}; each is quarantined)"
                texts = f.text.split("\n") if f.text else []
                for k in range(1, f.span):
                    seen = f": {_snippet(texts[k])!r}" if k < len(texts) else ""
                    extra_rows.append(
                        (f.line + k, f"inside the broken record that starts on line {f.line}{seen}")
                    )
            if f.row is None:
                extra_rows.append((f.line, reason))
            else:
                errors[f.row] = reason
        err = pa.array(errors, pa.string())
        k = len(self.columns)
        if any(e is not None for e in errors):
            keep = pc.is_null(err)
            arrays = [pc.if_else(keep, a, pa.scalar(None, a.type)) for a in arrays[:k]] + arrays[k:]
        batch = pa.RecordBatch.from_arrays([*arrays, err], schema=self.schema())
        if not extra_rows:
            return batch
        bad = pa.RecordBatch.from_arrays(
            [pa.nulls(len(extra_rows), pa.string()) for _ in self.columns]
            + [
                pa.array([r for r, _ in extra_rows], pa.int64()),
                pa.array([self.display] * len(extra_rows), pa.string()),
                pa.array([m for _, m in extra_rows], pa.string()),
            ],
            schema=self.schema(),
        )
        table = pa.Table.from_batches([batch, bad]).sort_by(ROW_COLUMN)
        return table.combine_chunks().to_batches()[0]
