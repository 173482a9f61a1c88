"""Byte-level fast paths over Arrow string buffers (numpy), for fixed-width ASCII shapes.

Many contract patterns describe codes of a fixed width (``^[0-9]{12}$``, ``^KS-[0-9]{2}-[0-9]{4}-[0-9]{6}$``)
and dates are ``YYYY-MM-DD``. For those, reading the bytes of every value straight from the Arrow buffers
into a (rows x width) matrix and checking each position against a 256-entry table is several times faster
than a regular expression per value. Python's ``$`` also accepts one final newline; so does this.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_DIM = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int32)
_SPECIAL = set("\\.^$*+?{}[]|()")
_DIGIT_TABLE = np.zeros(256, dtype=bool)
_DIGIT_TABLE[48:58] = True


def byte_lengths(s: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.binary_length(s), -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def byte_matrix(s: pa.Array, width: int) -> np.ndarray:
    """The first ``width`` bytes of every value, as an (n, width) ``uint8`` matrix; zeros past the end of
    a shorter value, and for a null (callers check the length).

    A view of the Arrow data buffer when every value has at least that length; otherwise of a copy in
    which every value is padded and cut to that length (Arrow kernels: faster than gathering bytes).
    """
    s = s if s.type == pa.string() else s.cast(pa.string())
    n = len(s)
    if n == 0 or width == 0:
        return np.zeros((n, width), dtype=np.uint8)
    uniform = _uniform(s)
    if uniform is not None and uniform[1] >= width:
        return uniform[0][:, :width]
    fill = pa.scalar(b"\0" * width, pa.binary())
    padded = pc.binary_join_element_wise(s.cast(pa.binary()), fill, pa.scalar(b"", pa.binary()))
    cut = pc.fill_null(pc.binary_slice(padded, 0, width), fill)
    got = _uniform(cut)
    assert got is not None
    return got[0]


def _uniform(s: pa.Array) -> tuple[np.ndarray, int] | None:
    """(the values as an (n, size) matrix, size) when all n values are non-null and ``size`` bytes."""
    bufs = s.buffers()
    n = len(s)
    if bufs[2] is None or s.null_count:
        return None
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=s.offset * 4)
    first, end = int(offsets[0]), int(offsets[-1])
    size = (end - first) // n
    if size == 0 or size * n != end - first or not bool(np.all(np.diff(offsets) == size)):
        return None
    return np.frombuffer(bufs[2], dtype=np.uint8)[first:end].reshape(n, size), size


def byte_columns(s: pa.Array, positions: range | list[int]) -> list[np.ndarray]:
    """Byte ``p`` of every value, for each ``p`` in ``positions`` (see ``byte_matrix``)."""
    matrix = byte_matrix(s, max(positions, default=0) + 1)
    return [matrix[:, p] for p in positions]


class FixedPattern:
    """A pattern ``^(literal|[ascii class]){n}...$`` as per-position byte tables."""

    def __init__(self, tables: list[np.ndarray]) -> None:
        self.width = len(tables)
        self.tables = np.stack(tables) if tables else np.zeros((0, 256), dtype=bool)

    @property
    def digits_only(self) -> bool:
        return self.width > 0 and bool(np.all(self.tables == _DIGIT_TABLE))

    def match(self, s: pa.Array) -> np.ndarray:
        """Per row: ``re.search(pattern, value)`` is not None (null -> False)."""
        lengths = byte_lengths(s)
        if self.digits_only and not (lengths == self.width + 1).any():
            decimal = np.asarray(pc.fill_null(pc.ascii_is_decimal(s), False).to_numpy(zero_copy_only=False))
            out: np.ndarray = (lengths == self.width) & decimal
            return out
        ok = (lengths == self.width) | (lengths == self.width + 1)
        cols = byte_columns(s, range(self.width + 1))
        for pos in range(self.width):
            ok &= self.tables[pos][cols[pos]]
        result: np.ndarray = ok & ((lengths == self.width) | (cols[self.width] == 10))
        return result


def _class(body: str) -> np.ndarray | None:
    table = np.zeros(256, dtype=bool)
    i = 0
    while i < len(body):
        c = body[i]
        if c in "\\[^" or ord(c) > 127:
            return None
        if i + 2 < len(body) and body[i + 1] == "-":
            hi = body[i + 2]
            if hi in "\\[" or ord(hi) > 127 or hi < c:
                return None
            table[ord(c) : ord(hi) + 1] = True
            i += 3
        else:
            table[ord(c)] = True
            i += 1
    return table


@functools.cache
def fixed_pattern(pattern: str) -> FixedPattern | None:
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        return None
    body = pattern[1:-1]
    tables: list[np.ndarray] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "[":
            end = body.find("]", i + 2)
            if end < 0:
                return None
            table = _class(body[i + 1 : end])
            i = end + 1
        elif c == "\\" and i + 1 < len(body) and body[i + 1] in _SPECIAL | {"-", "/"}:
            table = np.zeros(256, dtype=bool)
            table[ord(body[i + 1])] = True
            i += 2
        elif c in _SPECIAL or ord(c) > 127:
            return None
        else:
            table = np.zeros(256, dtype=bool)
            table[ord(c)] = True
            i += 1
        if table is None:
            return None
        count = 1
        if i < len(body) and body[i] == "{":
            end = body.find("}", i)
            if end < 0 or not body[i + 1 : end].isdigit():
                return None
            count = int(body[i + 1 : end])
            i = end + 1
        if i < len(body) and body[i] in "*+?{":
            return None
        tables.extend([table] * count)
    return FixedPattern(tables) if 0 < len(tables) <= 64 else None


_YMD_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9]


def parse_ymd(
    s: pa.Array, rows: np.ndarray, matrix: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For ``rows`` (values of >= 10 bytes): (is a real YYYY-MM-DD date in bytes 0-9, days since epoch).

    ``matrix``: the values' bytes (``byte_matrix``) when the caller has them."""
    m = byte_matrix(s, 10) if matrix is None else matrix
    digits = ((m[:, _YMD_DIGITS] - 48) < 10).all(axis=1)  # uint8: bytes below "0" wrap around
    dashes = (m[:, 4] == 45) & (m[:, 7] == 45)
    v = m[:, :10].astype(np.int32) - 48
    y = v[:, 0] * 1000 + v[:, 1] * 100 + v[:, 2] * 10 + v[:, 3]
    mo = v[:, 5] * 10 + v[:, 6]
    d = v[:, 8] * 10 + v[:, 9]
    mo_ok = (mo >= 1) & (mo <= 12)
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    dim = _DIM[np.clip(mo, 1, 12) - 1] + ((mo == 2) & leap)
    good = rows & digits & dashes & (y >= 1) & mo_ok & (d >= 1) & (d <= dim)
    # days from civil (H. Hinnant's algorithm), vectorized
    yy = y - (mo <= 2)
    era = np.floor_divide(yy, 400)
    yoe = yy - era * 400
    mp = (mo + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return good, np.where(good, era * 146097 + doe - 719468, 0).astype(np.int32)


def parse_dates_fast(s: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """``YYYY-MM-DD`` strings -> (date32 with nulls where invalid, invalid mask of non-null values)."""
    lengths = byte_lengths(s)
    ok, days = parse_ymd(s, lengths == 10)
    typed = pa.array(days, pa.int32(), mask=~ok).cast(pa.date32())
    return typed, (lengths >= 0) & ~ok


_CLOCK_DIGITS = [11, 12, 14, 15, 17, 18]
_OFFSET_DIGITS = [20, 21, 23, 24]


def parse_datetimes_fixed(s: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """RFC 3339 date-times of the two common shapes, ``YYYY-MM-DDTHH:MM:SSZ`` (20 bytes) and
    ``YYYY-MM-DDTHH:MM:SS+HH:MM`` (25 bytes), from the bytes: (valid, microseconds since the epoch, UTC).

    ``valid`` is True only for values of those shapes that ``jsonschema``'s ``date-time`` format accepts
    (``t``/``z`` in either case, a real calendar day, year 1 or later); any other value, valid or not,
    is False and left to the exact parser.
    """
    lengths = byte_lengths(s)
    short, long = lengths == 20, lengths == 25
    rows = short | long
    n = len(s)
    if not rows.any():
        return rows, np.zeros(n, dtype=np.int64)
    m = byte_matrix(s, 25)
    ok, days = parse_ymd(s, rows, m)
    v = m[:, 11:25].astype(np.int32) - 48  # v[:, k] is byte 11 + k
    hh, mi, ss = v[:, 0] * 10 + v[:, 1], v[:, 3] * 10 + v[:, 4], v[:, 6] * 10 + v[:, 7]
    clock = ((m[:, _CLOCK_DIGITS] - 48) < 10).all(axis=1)
    clock &= ((m[:, 10] | 0x20) == ord("t")) & (m[:, 13] == ord(":")) & (m[:, 16] == ord(":"))
    clock &= (hh <= 23) & (mi <= 59) & (ss <= 59)
    zulu = short & ((m[:, 19] | 0x20) == ord("z"))
    oh, om = v[:, 9] * 10 + v[:, 10], v[:, 12] * 10 + v[:, 13]
    offset_ok = long & ((m[:, 19] == ord("+")) | (m[:, 19] == ord("-"))) & (m[:, 22] == ord(":"))
    offset_ok &= ((m[:, _OFFSET_DIGITS] - 48) < 10).all(axis=1) & (oh <= 23) & (om <= 59)
    valid = ok & clock & (zulu | offset_ok)
    offset = np.where(offset_ok, np.where(m[:, 19] == ord("-"), -1, 1) * (oh * 60 + om), 0)
    seconds = days.astype(np.int64) * 86400 + (hh * 3600 + mi * 60 + ss - offset * 60)
    return valid, np.where(valid, seconds * 1_000_000, 0)


# --- ^\S(.*\S)?$ : "no leading or trailing whitespace" --------------------------------------------
TRIMMED = r"^\S(.*\S)?$"
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True  # Python's \s below 0x80
# the other code points of Python's \s, as UTF-8 (2 bytes: C2 xx; 3 bytes: E1-E3 xx xx), as tables
# over the 2-byte code and over the low 2 bytes of the 3-byte code, per lead byte E0-E3
_SPACE2 = np.zeros(1 << 16, dtype=bool)
_SPACE3 = np.zeros(4 << 16, dtype=bool)
for _ch in map(chr, range(0x80, 0x3001)):
    if _ch.isspace():
        _b = _ch.encode()
        if len(_b) == 2:
            _SPACE2[_b[0] << 8 | _b[1]] = True
        else:
            _SPACE3[(_b[0] - 0xE0) << 16 | _b[1] << 8 | _b[2]] = True


def _is_space(b0: np.ndarray, b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """Per row: the bytes ``b0 b1 b2`` begin with one of Python's whitespace characters."""
    b0, b1, b2 = (b.astype(np.int32) for b in (b0, b1, b2))
    three = (b0 >= 0xE0) & (b0 <= 0xE3)
    out: np.ndarray = (
        _ASCII_SPACE[b0] | _SPACE2[b0 << 8 | b1] | (three & _SPACE3[((b0 - 0xE0) & 3) << 16 | b1 << 8 | b2])
    )
    return out


def match_trimmed(s: pa.Array) -> np.ndarray:
    """Per row: ``re.search(r"^\\S(.*\\S)?$", value)`` is not None (null -> False), from the bytes.

    A value matches when, after one final newline is dropped, it is not empty, starts and ends with a
    non-space character and holds no newline (``.`` does not match one)."""
    s = s if s.type == pa.string() else s.cast(pa.string())
    n = len(s)
    bufs = s.buffers()
    if bufs[2] is None or n == 0:
        return np.zeros(n, dtype=bool)
    lengths = byte_lengths(s)  # -1 for null
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=s.offset * 4).astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8)
    first, end = int(offsets[0]), int(offsets[-1])
    padded = np.zeros(end - first + 8, dtype=np.uint8)
    padded[: end - first] = data[first:end]
    starts = offsets[:-1] - first
    at = np.flatnonzero(padded[: end - first] == 10)  # newlines: each counted in its value
    newlines = np.bincount(np.searchsorted(starts, at, side="right") - 1, minlength=n) if len(at) else 0
    last = np.maximum(starts + lengths - 1, 0)  # the last byte (of a non-empty value)
    ends_nl = (lengths > 0) & (padded[last] == 10)
    length = lengths - ends_nl  # without the final newline
    ok = (length > 0) & (newlines == ends_nl)
    stop = starts + length  # one past the last byte kept
    lead = _is_space(padded[starts], padded[starts + 1], padded[starts + 2])
    # the last character is a space if its last byte is an ASCII one, or its last 2 (3) bytes are a
    # 2 (3) byte space: a lead byte is never a continuation byte, so that is the whole character
    t1, t2, t3 = (padded[np.maximum(stop - k, 0)].astype(np.int32) for k in (1, 2, 3))
    trail = (
        (_ASCII_SPACE[t1] & (t1 < 0x80))
        | ((length >= 2) & _SPACE2[t2 << 8 | t1])
        | ((length >= 3) & (t3 >= 0xE0) & (t3 <= 0xE3) & _SPACE3[((t3 - 0xE0) & 3) << 16 | t2 << 8 | t1])
    )
    result: np.ndarray = ok & ~lead & ~trail
    return result
