"""What a file really is, from its first bytes: checked once per file, before a text reader starts.

A source that turned to garbage must fail naming the file, not load nothing or fail somewhere deep in
a parser. ``require_text`` refuses, with a ``SourceDataError`` naming the file, a file declared as text
(CSV, JSON lines, XML) whose first bytes are those of a compressed file (gzip, bzip2, xz, zstd), an
archive (zip: also an .xlsx workbook; 7-Zip), another known format (Parquet, PDF, an old Office file),
UTF-16 text, or that holds a NUL byte in its first 64 KiB (binary data: the message gives the line).
No compression is read transparently: decompress the export first.

``lone_cr`` tells a file whose lines end in a lone CR (classic Mac OS exports); ``CrLines`` reads such
a file with its line ends as LF, so that every reader after it counts lines the usual way.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from hub.errors import SourceDataError

HEAD_BYTES = 64 << 10

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"PK\x03\x04", "a zip archive (an .xlsx workbook, or a zipped export)"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"PAR1", "a Parquet file"),
    (b"%PDF-", "a PDF document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office file (.xls, .doc)"),
    (b"\xff\xfe", "UTF-16 text (export it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (export it as UTF-8)"),
)


def head_of(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of a file."""
    with path.open("rb") as fh:
        return fh.read(size)


def kind_of(head: bytes) -> str | None:
    """What the file is when its first bytes say it is not plain text; None when they do not."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"BZh") and head[3:4].isdigit() and head[4:10] == b"1AY&SY":
        return "bzip2-compressed"
    return None


def require_text(path: Path, display: str, fmt: str) -> bytes:
    """The file's first bytes, after checking that they can be ``fmt`` text; raises naming the file."""
    head = head_of(path)
    kind = kind_of(head)
    if kind is not None:
        raise SourceDataError(
            f"the file is {kind}, not {fmt} text; decompress or convert it, or point the path at the "
            f"{fmt} file itself",
            file=display,
        )
    nul = head.find(b"\x00")
    if nul >= 0:
        end = b"\r" if lone_cr(head) else b"\n"
        line = head.count(end, 0, nul) + 1
        start = head.rfind(end, 0, nul) + 1
        raise SourceDataError(
            f"a NUL byte: the file is binary data (or UTF-16), not {fmt} text",
            file=display,
            line=line,
            column=nul - start + 1,
        )
    return head


def lone_cr(head: bytes) -> bool:
    """Whether lines end in a lone CR: the first line end of ``head`` is a CR not followed by LF."""
    cr = head.find(b"\r")
    if cr < 0 or cr == len(head) - 1:
        return False
    lf = head.find(b"\n")
    return (lf < 0 or cr < lf) and head[cr + 1 : cr + 2] != b"\n"


class CrLines(io.RawIOBase):
    """``raw`` with every line end (CR, CRLF) read as LF: a whole chunk at a time, no per-line work."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._after_cr = False  # the last chunk ended in CR: an LF starting the next belongs to it

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        while True:
            data = self._raw.read(-1 if size is None else size)
            if self._after_cr and data.startswith(b"\n"):
                self._after_cr = False
                data = data[1:]
                if not data:
                    continue  # that chunk was the LF of a CRLF only: read on
            if not data:
                return b""
            self._after_cr = data.endswith(b"\r")
            return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
