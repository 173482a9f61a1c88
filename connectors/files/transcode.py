"""A streaming byte filter: any declared encoding in, valid (NFC) UTF-8 out, with line-exact errors.

Vietnamese text from Windows-1258 systems (and some UTF-8 exports) writes diacritics as combining
marks (``a`` + U+0301); the hub stores NFC so that equal names compare equal. The filter works on whole
lines (cut at ``\\n``, a byte that is never part of a multi-byte character in UTF-8 or Windows-1258),
so neither a character nor a combining sequence is split between two chunks.

Bytes that are not valid in the encoding raise ``SourceDataError`` naming the file, line and byte
column, or, with ``on_bad`` given, are replaced by U+FFFD and reported as ``(line, reason)``.

A ``guard`` sees every piece of whole lines on its way out (UTF-8, with the number of its first line)
and may rewrite lines of it: the CSV reader uses one to set apart lines where a quote is never closed.
"""

from __future__ import annotations

import codecs
import io
import unicodedata
from collections.abc import Callable
from typing import BinaryIO

from hub.errors import ConfigError, SourceDataError

CHUNK_BYTES = 4 << 20
ENCODING_ALIASES = {
    "utf8": "utf-8",
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "utf8-sig": "utf-8-sig",
    "cp1258": "cp1258",
    "windows-1258": "cp1258",
    "windows1258": "cp1258",
}
UTF8_BOM = b"\xef\xbb\xbf"


def canonical_encoding(name: str) -> str:
    """The Python codec name of a declared encoding; unknown names raise ``ConfigError``."""
    key = name.strip().lower().replace("_", "-")
    if key in ENCODING_ALIASES:
        return ENCODING_ALIASES[key]
    try:
        return codecs.lookup(key).name
    except LookupError as exc:
        raise ConfigError(f"unknown encoding {name!r}; use utf-8, utf-8-sig or windows-1258") from exc


class NormalizingReader(io.RawIOBase):
    """Read ``raw`` (bytes in ``encoding``) as UTF-8 without a byte-order mark; NFC unless ``normalize``
    is false (the CSV reader normalises column values instead, where that is cheaper)."""

    def __init__(
        self,
        raw: BinaryIO,
        encoding: str,
        file: str,
        *,
        on_bad: Callable[[int, str], None] | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        normalize: bool = True,
        guard: Callable[[bytes, int], bytes] | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._encoding = canonical_encoding(encoding)
        self._utf8 = self._encoding in ("utf-8", "utf-8-sig")
        self._file = file
        self._on_bad = on_bad
        self._chunk = chunk_bytes
        self._normalize = normalize
        self._guard = guard
        self._tail = b""
        self._out = bytearray()
        self._line = 1
        self._first = True
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        want = None if size is None or size < 0 else size
        while not self._eof and (want is None or len(self._out) < want):
            self._fill()
        if want is None or want >= len(self._out):
            out = bytes(self._out)
            self._out.clear()
            return out
        out = bytes(self._out[:want])
        del self._out[:want]
        return out

    def _fill(self) -> None:
        data = self._raw.read(self._chunk)
        if not data:
            self._eof = True
            if self._tail:
                self._emit(self._tail)
                self._tail = b""
            return
        buf = self._tail + data if self._tail else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._tail = buf
            return
        self._tail = buf[cut + 1 :]
        self._emit(buf[: cut + 1])

    def _emit(self, piece: bytes) -> None:
        if self._first:
            self._first = False
            if piece.startswith(UTF8_BOM) and self._utf8:
                piece = piece[len(UTF8_BOM) :]
        codec = "utf-8" if self._utf8 else self._encoding
        clean = True
        try:
            text = piece.decode(codec)
        except UnicodeDecodeError:
            text = self._decode_lines(piece, codec)
            clean = False
        if self._normalize and not text.isascii() and not unicodedata.is_normalized("NFC", text):
            out = unicodedata.normalize("NFC", text).encode("utf-8")
        elif self._utf8 and clean:
            out = piece
        else:
            out = text.encode("utf-8")
        self._out += out if self._guard is None else self._guard(out, self._line)
        self._line += piece.count(b"\n")

    def _decode_lines(self, piece: bytes, codec: str) -> str:
        """Decode line by line to name the first bad byte; raise, or replace and report it."""
        parts: list[str] = []
        for offset, line in enumerate(piece.splitlines(keepends=True)):
            try:
                parts.append(line.decode(codec))
            except UnicodeDecodeError as exc:
                lineno = self._line + offset
                bad = line[exc.start : exc.end].hex(" ")
                reason = f"bytes {bad} are not valid {self._encoding} (byte column {exc.start + 1})"
                if self._on_bad is None:
                    raise SourceDataError(
                        f"bytes {bad} are not valid {self._encoding}; declare the file's encoding "
                        "(encoding: windows-1258 or utf-8) or fix the file",
                        file=self._file,
                        line=lineno,
                        column=exc.start + 1,
                    ) from None
                self._on_bad(lineno, reason)
                parts.append(line.decode(codec, errors="replace"))
        return "".join(parts)


def read_head(raw: BinaryIO, encoding: str, file: str, max_bytes: int = 1 << 20) -> str:
    """The first ``max_bytes`` of a file as NFC text (for the header and delimiter sniffing)."""
    reader = NormalizingReader(raw, encoding, file, on_bad=lambda _line, _reason: None, chunk_bytes=max_bytes)
    return reader.read(max_bytes).decode("utf-8", errors="replace")


def first_bad_byte(raw: BinaryIO, encoding: str, display: str) -> None:
    """Scan a file's bytes for bytes not valid in ``encoding``; raise ``SourceDataError`` at the first."""
    reader = NormalizingReader(raw, encoding, display, normalize=False)
    while reader.read(CHUNK_BYTES):
        pass
