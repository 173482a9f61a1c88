"""The scan of a file uploaded to an open dataset: personal ids and names of people, before it is stored.

What counts as a hit:

- a *personal id* (số định danh cá nhân, CCCD): 12 digits standing alone (no digit before or after) whose
  digits 1-3 are a province code of the pre-2025 list and digit 4 is 0-3 (``hub.contracts.vn``). A number
  cell of a spreadsheet or a JSON integer of 11 digits counts as the id it was before its leading 0 was lost.
- a *name*: a run of words of a cell, value or line that is a known name (``hub.catalog.privacy``: the
  folded name columns of the warehouse's current snapshots, 2 words or more).

Where it is reported: CSV/TSV (``.csv``, ``.tsv``, ``.tab``): the row of the file, the header being row 1,
and the header's column name; XLSX (``.xlsx``, ``.xlsm``): the sheet, its row and the column's header (and
the cell, ``B12``); JSON (``.json``, ``.geojson``; ``.jsonl``/``.ndjson`` one record a line): the record
number, the key path and the JSON pointer; a ZIP archive (``.zip``, ``.docx``, ``.odt``, ...): each member
as text; any other file, or one of the formats above that cannot be parsed: the line and byte offset.

How fast: the file is read in blocks of ``CHUNK`` bytes, and each block is checked with vectorized
Arrow and NumPy operations (Arrow's CSV reader, RE2 regular expressions, a NumPy pass over the bytes
for digit runs), so memory stays bounded by the block size and a 100 MB file takes seconds. A JSON
document is parsed whole only up to ``JSON_MAX`` bytes (larger ones are scanned as text). The scan stops
after ``limit`` hits.
"""

from __future__ import annotations

import csv
import functools
import html
import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv

from hub.catalog.privacy import NameSet
from hub.contracts.vn import pre2025_units

log = logging.getLogger(__name__)

CHUNK = 8 << 20
JSON_MAX = 64 << 20
ZIP_MAX = 1 << 30  # decompressed bytes of an archive's members scanned at most
MAX_HITS = 20
ANYWHERE_WORDS = 3
"""A known name of fewer words is a hit only as a whole value (a cell, a JSON value, a line of text):
with accents folded, two words are too often something else (``phường Lê`` reads ``Phương Lê``)."""
_PLACE_WORDS = pa.array(
    sorted(
        {"duong", "pho", "ngo", "hem", "kiet", "ngach", "phuong", "xa", "quan", "huyen", "tinh", "thon"}
        | {"ap", "khu", "cau", "truong", "thpt", "thcs", "tp", "p", "q", "benh", "vien", "cong", "ty"}
    )
)
"""Words before a street, a ward, a school or a firm named after a person (``đường Nguyễn Văn Cừ``)."""
WHAT = {
    "personal_id": "a 12-digit personal id (số định danh cá nhân)",
    "name": "the name of a person held in the warehouse",
}
_SEPARATORS = (b",", b";", b"\t", b"|")


@dataclass(frozen=True)
class Hit:
    """One piece of personal data found in a file, and where."""

    kind: str  # "personal_id" | "name"
    row: int | None = None
    column: str | None = None
    part: str | None = None  # the sheet of a workbook, the member of an archive
    cell: str | None = None  # XLSX: B12
    pointer: str | None = None  # JSON
    line: int | None = None
    offset: int | None = None

    def where(self) -> str:
        parts = [f"sheet {self.part}" if self.cell else f"member {self.part}" if self.part else ""]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        if self.cell:
            parts.append(f"cell {self.cell}")
        if self.pointer is not None:
            parts.append(f"at {self.pointer}")
        if self.line is not None:
            parts.append(f"line {self.line}" + (f" (byte {self.offset})" if self.offset is not None else ""))
        return ", ".join(p for p in parts if p)

    def describe(self) -> str:
        return f"{self.where()}: {WHAT[self.kind]}"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


# --- vectorized checks -----------------------------------------------------------------------------


@functools.cache
def _provinces() -> np.ndarray:
    table = np.zeros(1000, dtype=bool)
    table[[int(c) for c in pre2025_units()[0]]] = True
    return table


@functools.cache
def _id_pattern() -> str:
    codes = "|".join(sorted(pre2025_units()[0]))
    return rf"(?:^|[^0-9])(?:{codes})[0-3][0-9]{{8}}(?:[^0-9]|$)"


_VI_MARKS = ("\u0300", "\u0301", "\u0303", "\u0309", "\u0323", "\u0302", "\u0306", "\u031b")


def fold_array(values: pa.Array) -> pa.Array:
    """``hub.catalog.ckan.fold`` over an Arrow string array: lower case, no accents, ``đ`` as ``d``.
    The marks of Vietnamese go by plain replacements (fast); the values left with other letters than
    ASCII lose their other combining marks by a regular expression."""
    a = pc.utf8_normalize(pc.utf8_lower(values), "NFD")
    for mark in _VI_MARKS:
        a = pc.replace_substring(a, mark, "")
    a = pc.replace_substring(a, "đ", "d")
    other = pc.invert(pc.fill_null(pc.string_is_ascii(a), True))
    if pc.any(other).as_py():
        rest = pc.replace_substring_regex(pc.filter(a, other), r"\p{Mn}+", "")
        a = pc.replace_with_mask(a, other, rest)
    return a


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def id_mask(values: pa.Array) -> np.ndarray:
    """Which strings hold a personal id."""
    return _mask(pc.match_substring_regex(values, _id_pattern()))


def name_mask(values: pa.Array, names: NameSet) -> np.ndarray:
    """Which strings hold a known name: the whole value, or (for names of ``ANYWHERE_WORDS`` words or
    more) a run of its words that no place word (``đường``, ``phường``, ``trường`` ...) comes before."""
    out = np.zeros(len(values), dtype=bool)
    if not len(names) or not len(values):
        return out
    words = pc.split_pattern_regex(fold_array(values), r"[^\p{L}\p{N}]+")
    flat = pc.list_flatten(words)
    parents = np.asarray(pc.list_parent_indices(words).to_numpy(zero_copy_only=False))
    keep = np.flatnonzero(np.asarray(pc.binary_length(flat).to_numpy(zero_copy_only=False)) > 0)
    flat, parents = flat.take(pa.array(keep)), parents[keep]
    n = len(flat)
    first = np.ones(n, dtype=bool)  # the first word of its value
    first[1:] = parents[1:] != parents[:-1]
    after_place = np.zeros(n, dtype=bool)
    after_place[1:] = ~first[1:] & _mask(pc.is_in(flat, value_set=_PLACE_WORDS))[:-1]
    starts = np.flatnonzero(_mask(pc.is_in(flat, value_set=names.first_words)))
    for k in names.lengths:
        idx = starts[starts + k - 1 < n]
        idx = idx[parents[idx + k - 1] == parents[idx]]
        if k < ANYWHERE_WORDS:  # the whole value
            last = idx + k == n
            last[~last] = parents[idx[~last] + k] != parents[idx[~last]]
            idx = idx[first[idx] & last]
        else:
            idx = idx[~after_place[idx]]
        if not len(idx):
            continue
        runs = pc.binary_join_element_wise(*(flat.take(pa.array(idx + j)) for j in range(k)), " ")
        out[parents[idx[_mask(pc.is_in(runs, value_set=names.names))]]] = True
    return out


def _kinds(values: pa.Array, names: NameSet) -> Iterator[tuple[int, str]]:
    """(index, kind) of the values that hold personal data, in index order."""
    ids, found = id_mask(values), name_mask(values, names)
    for i in np.flatnonzero(ids | found):
        yield int(i), "personal_id" if ids[i] else "name"


_CHARREF = re.compile(r"&#(x[0-9a-fA-F]{1,6}|[0-9]{1,7});")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))


def _charref(m: re.Match[str]) -> str:
    ref = m.group(1)
    code = int(ref[1:], 16) if ref[0] == "x" else int(ref)
    return m.group(0) if code in (38, 60, 62) or code > 0x10FFFF else chr(code)


def _charrefs(text: str) -> str:
    """XML character references decoded (writers such as openpyxl write every non-ASCII letter as
    ``&#7885;``), except those of ``&``, ``<`` and ``>``, so that the markup stays as it was."""
    return _CHARREF.sub(_charref, text) if "&#" in text else text


def _unescape(values: pa.Array) -> pa.Array:
    """XML text with its entities decoded (after ``_charrefs``)."""
    for entity, char in _ENTITIES:
        values = pc.replace_substring(values, entity, char)
    return values


def _lost_zero(values: pa.Array) -> pa.Array:
    """Numbers of 11 or 12 digits as 12-digit text (an id whose leading 0 a spreadsheet dropped)."""
    digits = pc.if_else(
        pc.match_substring_regex(values, r"^[0-9]{11,12}$"), values, pa.scalar(None, pa.string())
    )
    return pc.utf8_lpad(digits, 12, "0")


# --- formats ---------------------------------------------------------------------------------------


def scan_file(path: Path, filename: str, names: NameSet, *, limit: int = MAX_HITS) -> list[Hit]:
    """The personal data found in the file at ``path`` (named ``filename`` by its uploader), at most
    ``limit`` hits; empty when the file is clean."""
    ext = Path(filename).suffix.lower()
    try:
        if ext in (".csv", ".tsv", ".tab"):
            return _scan_csv(path, b"\t" if ext != ".csv" else None, names, limit)
        if ext in (".xlsx", ".xlsm") and zipfile.is_zipfile(path):
            return _scan_xlsx(path, names, limit)
        if ext in (".json", ".geojson") and path.stat().st_size <= JSON_MAX:
            return _scan_json(path, names, limit)
        if ext in (".jsonl", ".ndjson"):
            return _scan_ndjson(path, names, limit)
    except (pa.ArrowException, ValueError, KeyError, IndexError, zipfile.BadZipFile, csv.Error) as exc:
        log.info("upload scan: %s read as text (%s)", filename, exc)
    if zipfile.is_zipfile(path):
        return _scan_zip(path, names, limit)
    with open(path, "rb") as f:
        return _scan_text(f, names, limit)


def _scan_csv(path: Path, delimiter: bytes | None, names: NameSet, limit: int) -> list[Hit]:
    with open(path, "rb") as f:
        first = f.readline(1 << 20)
    if delimiter is None:
        delimiter = max(_SEPARATORS, key=first.count)
    sep = delimiter.decode()
    with open(path, encoding="utf-8-sig", newline="") as text:
        header = next(csv.reader(text, delimiter=sep), [])
    if not header:
        return []
    keys = [f"c{i}" for i in range(len(header))]
    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(column_names=keys, skip_rows=1, block_size=CHUNK),
        parse_options=pa_csv.ParseOptions(delimiter=sep, newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(keys, pa.string())),
    )
    hits: list[Hit] = []
    row = 1  # the header
    for batch in reader:
        found = [
            Hit(kind, row=row + 1 + i, column=header[c])
            for c, col in enumerate(batch.columns)
            for i, kind in _kinds(col, names)
        ]
        hits += sorted(found, key=lambda h: h.row or 0)
        row += batch.num_rows
        if len(hits) >= limit:
            break
    return hits[:limit]


def _scan_json(path: Path, names: NameSet, limit: int) -> list[Hit]:
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return _scan_ndjson(path, names, limit)
    prefix, records = _records(doc)
    leaves: list[tuple[int, str, Any]] = []
    for i, record in enumerate(records):
        _leaves(record, "", i, leaves)
    hits: list[Hit] = []
    for start in range(0, len(leaves), 100_000):
        hits += _leaf_hits(leaves[start : start + 100_000], names, prefix)
        if len(hits) >= limit:
            break
    return hits[:limit]


def _records(doc: Any) -> tuple[str | None, list[Any]]:
    """The list of records of a JSON document and its pointer: the document itself, GeoJSON's
    ``features``, or the first list of objects under the root (``records``, ``data``, ``result``)."""
    if isinstance(doc, list):
        return "", doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value[:10]):
                return f"/{_escape(key)}", value
            if isinstance(value, dict):
                for k2, v2 in value.items():
                    if isinstance(v2, list) and v2 and all(isinstance(v, dict) for v in v2[:10]):
                        return f"/{_escape(key)}/{_escape(k2)}", v2
    return None, [doc]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _leaves(value: Any, path: str, row: int, out: list[tuple[int, str, Any]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _leaves(v, f"{path}/{_escape(str(k))}", row, out)
    elif isinstance(value, list):
        for j, v in enumerate(value):
            _leaves(v, f"{path}/{j}", row, out)
    elif isinstance(value, str) or (isinstance(value, int) and 10**10 <= value < 10**12):
        out.append((row, path, value))


def _leaf_hits(leaves: list[tuple[int, str, Any]], names: NameSet, prefix: str | None) -> list[Hit]:
    text = pa.array([v if isinstance(v, str) else f"{v:012d}" for _r, _p, v in leaves], pa.string())
    hits = []
    for i, kind in _kinds(text, names):
        row, path, _v = leaves[i]
        column = ".".join(p for p in path.split("/") if p and not p.isdigit()).replace("~1", "/")
        pointer = path if prefix is None else f"{prefix}/{row}{path}"
        hits.append(Hit(kind, row=row + 1, column=column or None, pointer=pointer or "/"))
    return hits


def _scan_ndjson(path: Path, names: NameSet, limit: int) -> list[Hit]:
    hits: list[Hit] = []
    leaves: list[tuple[int, str, Any]] = []
    with open(path, "rb") as f:
        for n, line in enumerate(f):
            if line.strip():
                _leaves(orjson.loads(line), "", n, leaves)
            if len(leaves) >= 100_000:
                hits += _leaf_hits(leaves, names, None)
                leaves = []
                if len(hits) >= limit:
                    return hits[:limit]
    hits += _leaf_hits(leaves, names, None) if leaves else []
    return hits[:limit]


# --- XLSX ------------------------------------------------------------------------------------------

_TAG = r"<(?:\w+:)?{}\b[^>]*>"


def _attr(tag: str, name: str) -> str | None:
    found = re.search(rf'\s(?:\w+:)?{name}="([^"]*)"', tag)
    return html.unescape(found.group(1)) if found else None


def _sheets(zf: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(sheet name, member) of the workbook's sheets, in order (read with regular expressions: these
    small XML files need no parser that could expand entities)."""
    rels = zf.read("xl/_rels/workbook.xml.rels").decode("utf-8")
    targets = {
        _attr(t, "Id"): _attr(t, "Target") or "" for t in re.findall(_TAG.format("Relationship"), rels)
    }
    book = zf.read("xl/workbook.xml").decode("utf-8")
    out = []
    for tag in re.findall(_TAG.format("sheet"), book):
        target = targets.get(_attr(tag, "id"), "")
        member = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        if member in zf.namelist():
            out.append((_attr(tag, "name") or member, member))
    return out


def _blocks(zf: zipfile.ZipFile, member: str, tag: bytes) -> Iterator[bytes]:
    """``member`` in blocks of about ``CHUNK`` bytes, each cut where a ``<tag`` element starts."""
    carry = b""
    with zf.open(member) as f:
        while True:
            data = f.read(CHUNK)
            buf = carry + data
            if data:
                cut = max(
                    buf.rfind(b"<" + tag + b" "), buf.rfind(b"<" + tag + b">"), buf.rfind(b":" + tag + b" ")
                )
                cut = buf.rfind(b"<", 0, cut + 1) if cut > 0 else -1
                if cut <= 0:
                    carry = buf
                    continue
                buf, carry = buf[:cut], buf[cut:]
            if buf:
                yield buf
            if not data:
                return


def _split(buf: bytes, tag: bytes) -> pa.Array:
    """The text after each ``<tag`` element start of ``buf`` (namespace prefixes allowed)."""
    text = pa.array([_charrefs(buf.decode("utf-8"))])
    parts = pc.list_flatten(pc.split_pattern_regex(text, rf"<(?:\w+:)?{tag.decode()}[\s>]"))
    return parts.slice(1)  # what comes before the first element: the preamble, or nothing


def _texts(frags: pa.Array) -> pa.Array:
    """The text of XML fragments (tags removed, entities decoded)."""
    return _unescape(pc.replace_substring_regex(frags, r"<[^>]*>", ""))


def _shared_strings(zf: zipfile.ZipFile) -> pa.Array:
    if "xl/sharedStrings.xml" not in zf.namelist():
        return pa.array([], pa.string())
    chunks = []
    for buf in _blocks(zf, "xl/sharedStrings.xml", b"si"):
        frags = _split(buf, b"si")
        chunks.append(_texts(pc.replace_substring_regex(frags, r"<(?:\w+:)?rPh\b.*?</(?:\w+:)?rPh>", "")))
    return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())


_CELL = (
    r"^(?P<a>[^>]*)>?(?:<(?:\w+:)?f\b[^>]*/>|<(?:\w+:)?f\b[^>]*>[^<]*</(?:\w+:)?f>)?"
    r"(?:<(?:\w+:)?v>(?P<v>[^<]*)</|<(?:\w+:)?is>(?P<s>.*?)</(?:\w+:)?is>)?"
)
_NULL = pa.scalar(None, pa.string())


def _field(values: pa.Array, pattern: str, name: str) -> pa.Array:
    """Group ``name`` of ``pattern`` in each value; null when it does not match or is empty."""
    found = pc.struct_field(pc.extract_regex(values, pattern), name)
    return pc.if_else(pc.equal(found, ""), _NULL, found)


def _cells(frags: pa.Array, shared: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(column letters, row numbers, text) of the cells of a sheet's fragments."""
    parts = pc.extract_regex(frags, _CELL)
    attrs, v, inline = (pc.struct_field(parts, k) for k in ("a", "v", "s"))
    v = pc.if_else(pc.equal(v, ""), _NULL, v)
    col = _field(attrs, r'(?:^|\s)r="(?P<c>[A-Z]+)[0-9]+"', "c")
    row = pc.cast(_field(attrs, r'(?:^|\s)r="[A-Z]+(?P<r>[0-9]+)"', "r"), pa.int64())
    typ = pc.fill_null(_field(attrs, r'(?:^|\s)t="(?P<t>\w+)"', "t"), "n")
    index = pc.cast(pc.if_else(pc.equal(typ, "s"), v, _NULL), pa.int64())
    inside = pc.and_(pc.less(index, len(shared)), pc.greater_equal(index, 0))
    index = pc.if_else(inside, index, pa.scalar(None, pa.int64()))
    text = pc.case_when(
        pc.make_struct(pc.equal(typ, "s"), pc.equal(typ, "inlineStr"), pc.equal(typ, "str")),
        shared.take(index) if len(shared) else pa.nulls(len(frags), pa.string()),
        _texts(inline),
        _unescape(v),
        _lost_zero(v),
    )
    return col, row, text


def _scan_xlsx(path: Path, names: NameSet, limit: int) -> list[Hit]:
    """Shared strings are checked once each; a sheet's cells are located only where they refer to a
    shared string that holds personal data or hold an 11-12 digit number (a NumPy pass over the XML),
    except in blocks with inline or formula strings, whose cells are all read (slower)."""
    hits: list[Hit] = []
    with zipfile.ZipFile(path) as zf:
        shared = _shared_strings(zf)
        shared_kinds = dict(_kinds(shared, names))
        for sheet, member in _sheets(zf):
            header: dict[str, str] | None = None
            for buf in _blocks(zf, member, b"c"):
                if header is None:
                    end = buf.find(b"row>")
                    col, row, text = _cells(_split(buf[: end if end > 0 else len(buf)], b"c"), shared)
                    heads = zip(col.to_pylist(), row.to_pylist(), text.to_pylist(), strict=True)
                    header = {c: t for c, r, t in heads if c and r == 1 and t is not None}
                if b'"inlineStr"' in buf or b't="str"' in buf:
                    col, row, text = _cells(_split(buf, b"c"), shared)
                    found = [(col[i].as_py(), row[i].as_py(), kind) for i, kind in _kinds(text, names)]
                else:
                    found = _located(buf, shared_kinds)
                for c, r, kind in found:
                    c = c or "?"
                    hits.append(Hit(kind, row=r, column=header.get(c, c), part=sheet, cell=f"{c}{r}"))
                if len(hits) >= limit:
                    return hits[:limit]
    return hits


_CELL_TAG = re.compile(rb'\sr="([A-Z]+)([0-9]+)"|\st="(\w+)"')


def _located(buf: bytes, shared_kinds: dict[int, str]) -> list[tuple[str | None, int | None, str]]:
    """(column, row, kind) of the cells of ``buf`` (a block of a sheet without inline strings) whose
    value is a shared string of ``shared_kinds`` or a number that is a personal id."""
    b = np.frombuffer(buf, dtype=np.uint8)
    if len(b) < 4:
        return []
    starts = np.flatnonzero((b[:-3] == 60) & (b[1:-2] == 118) & (b[2:-1] == 62)) + 3  # after <v>
    digit = np.concatenate(((b >= 48) & (b <= 57), [False]))
    nondigit = np.flatnonzero(~digit)
    length = nondigit[np.searchsorted(nondigit, starts)] - starts
    candidates: list[tuple[int, str, bool]] = []  # position, kind, whether a shared string's index
    ids = (length == 11) | (length == 12)
    for pos, n in zip(starts[ids], length[ids], strict=True):
        value = buf[pos : pos + n].rjust(12, b"0")
        if _provinces()[int(value[:3])] and value[3] <= 51:
            candidates.append((int(pos), "personal_id", False))
    if shared_kinds:
        short = (length > 0) & (length <= 9)
        pos9, len9 = starts[short], length[short]
        values = np.zeros(len(pos9), dtype=np.int64)
        for k in range(9):
            inside = k < len9
            values[inside] = values[inside] * 10 + (b[pos9[inside] + k].astype(np.int64) - 48)
        wanted = np.isin(values, np.fromiter(shared_kinds, dtype=np.int64))
        candidates += [
            (int(p), shared_kinds[int(v)], True) for p, v in zip(pos9[wanted], values[wanted], strict=True)
        ]
    out: list[tuple[str | None, int | None, str]] = []
    for pos, kind, is_shared in sorted(candidates):
        start = max(buf.rfind(b"<c ", 0, pos), buf.rfind(b":c ", 0, pos))
        col, row, typ = None, None, "n"
        for m in _CELL_TAG.finditer(buf, start, buf.find(b">", start)):
            if m.group(1):
                col, row = m.group(1).decode(), int(m.group(2))
            else:
                typ = m.group(3).decode()
        if (typ == "s") == is_shared and (is_shared or typ == "n"):
            out.append((col, row, kind))
    return out


# --- text and archives -----------------------------------------------------------------------------


def _cut(buf: bytes) -> int:
    """Where a block of a file without a newline can be cut: after the last separator byte."""
    return max(buf.rfind(b) for b in (b" ", b",", b";", b"\t", b'"', b">", b"<")) + 1 or len(buf)


def _scan_text(f: Any, names: NameSet, limit: int, part: str | None = None) -> list[Hit]:
    hits: list[Hit] = []
    offset, line, carry = 0, 1, b""
    while True:
        data = f.read(CHUNK)
        buf = carry + data
        if data:
            cut = buf.rfind(b"\n") + 1 or _cut(buf)
            buf, carry = buf[:cut], buf[cut:]
        hits += _text_hits(buf, offset, line, names, part)
        offset, line = offset + len(buf), line + buf.count(b"\n")
        if not data or len(hits) >= limit:
            return hits[:limit]


def _text_hits(buf: bytes, offset: int, line: int, names: NameSet, part: str | None) -> list[Hit]:
    if not buf:
        return []
    b = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(b == 10)
    digit = np.concatenate(([False], (b >= 48) & (b <= 57), [False]))
    edges = np.flatnonzero(digit[1:] != digit[:-1])
    starts, ends = edges[0::2], edges[1::2]
    s = starts[(ends - starts) == 12]
    if len(s):
        d = [b[s + k].astype(np.int32) - 48 for k in range(4)]
        s = s[_provinces()[d[0] * 100 + d[1] * 10 + d[2]] & (d[3] <= 3)]
    found = [(int(p), "personal_id") for p in s]
    if len(names):
        lines = pc.list_flatten(pc.split_pattern(pa.array([buf.decode("utf-8", "replace")]), "\n"))
        line_starts = np.concatenate(([0], newlines + 1))
        found += [(int(line_starts[i]), "name") for i in np.flatnonzero(name_mask(lines, names))]
    return [
        Hit(
            kind,
            part=part,
            line=line + int(np.searchsorted(newlines, pos, side="right")),
            offset=offset + pos,
        )
        for pos, kind in sorted(found)
    ]


def _scan_zip(path: Path, names: NameSet, limit: int) -> list[Hit]:
    hits: list[Hit] = []
    left = ZIP_MAX
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            if left <= 0 or len(hits) >= limit:
                break
            try:
                member = zf.open(info)
            except (RuntimeError, NotImplementedError) as exc:  # encrypted, unknown compression
                log.info("upload scan: member %s of %s not read: %s", info.filename, path.name, exc)
                continue
            with member:
                capped = _Capped(member, left)
                hits += _scan_text(capped, names, limit, info.filename)
                left = capped.left
    return hits[:limit]


class _Capped:
    """Reads at most ``left`` bytes of ``f`` (a member whose declared size lies cannot exhaust the scan)."""

    def __init__(self, f: Any, left: int) -> None:
        self.f, self.left = f, left

    def read(self, n: int) -> bytes:
        data: bytes = self.f.read(min(n, self.left))
        self.left -= len(data)
        return data
