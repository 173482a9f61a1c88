"""The fast lane of the xml connector: flat records straight from bytes to Arrow.

Most agency exports are flat: a record element with attributes and leaf children, the same names in
every record. For those, a block is read with no parser and no Python code per record or per value:
each step below is a few numpy or Arrow operations over the whole block.

1. **Markup.** In a well-formed block every ``<`` opens a tag, which ends at the next ``>``; the text
   is what lies between a tag's end and the next ``<``. One pass finds both characters; tags and
   texts tile the block, so one Arrow binary array whose offsets are those boundaries and whose data
   buffer is the block itself holds them all, with no copy.
2. **Tags.** Every tag but the record start tags must be one of a few exact strings of the layout
   (``<name>``, ``</name>`` and ``<name/>`` of each child, ``</record>``), looked up whole in a hash
   table (``pc.index_in``), which numbers them. Anything else (a comment, CDATA, a processing
   instruction, an unknown or nested child, a child with attributes or a namespace declaration, white
   space inside a child's tag) is not found, and the block goes the lxml way. The record start tags
   are found by their name, as the splitter finds them.
3. **Structure.** On the tag numbers: each record ends with ``</record>`` (or its start tag closes
   itself), each ``<name>`` is followed by its ``</name>``, no child occurs twice in a record; the
   children may come in any order and any may be missing.
4. **Text.** The text after a ``<name>`` is that child's value; all other text must be white space.
   The block must hold no control character, no ``]]>``, no U+FFFE/U+FFFF, no carriage return in a
   value (lxml would turn it into a line feed), and every ``&`` must start one of the five predefined
   entities (unescaped at the end); character references and other entities go the lxml way.
5. **Attributes.** The record start tags alone (short strings) are matched by RE2
   (``pc.extract_regex``): first by a pattern with every attribute of the layout in order (one-pass,
   fast), else by one where each is optional. Attribute values hold no tab or line break (lxml would
   turn them into blanks) and no ``>`` (step 1 would cut the tag there).
6. **Columns.** One ``take`` gathers the value of every child of every record (a missing child,
   ``<name/>`` and ``<name></name>`` give null, as lxml's ``text``), and casting it to string checks
   the UTF-8; each column is a slice of it. Tags and white space being ASCII, that covers the block.

A block that fails a check gives None and is read the lxml way, which quarantines the broken records
with their line, so the lane gives the rows lxml gives, or none. Both ways are compared on generated
files in ``tests/connectors/test_xml_fastlane.py``. numpy's and Arrow's kernels release the GIL, so
blocks are read in parallel threads (``ordered.py``); the passes over a whole block write into
scratch arrays kept per thread, as fresh memory would be faulted in page by page for every block.
"""

from __future__ import annotations

import re
import threading
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

from connectors.xml.splitter import Block

_LT, _GT, _SLASH, _AMP, _CR, _TAB, _NL = 60, 62, 47, 38, 13, 9, 10
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))
_ENTITY_TAILS = [np.frombuffer(e[1:].encode(), dtype=np.uint8) for e, _ in _ENTITIES]
_SPACE = np.zeros(256, dtype=bool)  # XML's white space (S)
_SPACE[[0x20, _TAB, _NL, _CR]] = True
_NAME_END = np.zeros(256, dtype=bool)  # what can follow a record tag's name in its start tag
_NAME_END[[0x20, _TAB, _NL, _CR, _GT, _SLASH]] = True
_S = "[ \t\r\n]"
# An attribute value: no quote, markup, or white space other than the blank (lxml turns tabs and
# line breaks into blanks). Every "&" is checked to start a predefined entity, on the whole block.
_ATTR_VALUE = '[^"<\t\r\n]*'
_NAME = re.compile(r"[A-Za-z_][\w.-]*")  # an XML name without a prefix
_MAX_BLOCK = (1 << 31) - 1  # 32-bit offsets of an Arrow string array

IntArray = npt.NDArray[np.int64]
Bytes = npt.NDArray[np.uint8]
Flags = npt.NDArray[np.bool_]
_scratch = threading.local()  # per thread: buffers for the passes over a whole block


class FastLane:
    """Built from the first records; ``read(block)`` gives columns or None (use the lxml way)."""

    def __init__(self, tag: str, children: list[str], attrs: list[str], fields: dict[str, str]) -> None:
        self.tag = tag.encode()
        self.names = list(fields)
        self.children = children
        self.attrs = attrs
        m = len(children)
        # Tag numbers: <name> of child c is c, </name> m + c, <name/> 2m + c; then </tag>, <tag>, <tag/>.
        tokens = [f"<{c}>" for c in children] + [f"</{c}>" for c in children] + [f"<{c}/>" for c in children]
        tokens += [f"</{tag}>", f"<{tag}>", f"<{tag}/>"]
        self.tokens = pa.array([t.encode() for t in tokens], type=pa.binary())
        self.end, self.open_start, self.closed_start = 3 * m, 3 * m + 1, 3 * m + 2
        # Two patterns for the record start tags. Every attribute present, in the layout's order, is
        # the usual case and a one-pass pattern for RE2 (four times faster); otherwise each attribute
        # is optional and its group keeps the opening quote: absent gives "", empty gives '"'.
        head, every, some = "^<" + re.escape(tag), "", ""
        for j, attr in enumerate(attrs):
            name = f"{_S}+{re.escape(attr)}{_S}*={_S}*"
            every += f'{name}"(?P<a{j}>{_ATTR_VALUE})"'
            some += f'(?:{name}(?P<a{j}>"{_ATTR_VALUE})")?'
        self.every_attr = head + every + f"{_S}*/?>$"
        self.some_attrs = head + some + f"{_S}*/?>$"
        self.sources = [_locate(path, children, attrs) for path in fields.values()]

    @classmethod
    def build(cls, tag: str, records: list[etree._Element], fields: dict[str, str]) -> FastLane | None:
        """A lane for records laid out like ``records`` (attributes in the order they show, children
        in any order, each optional), or None when they are not flat or a field is not a child or an
        attribute. A field none of ``records`` has is expected as an unprefixed child (attribute,
        after the others) that may show up later."""
        orders: dict[tuple[str, ...], None] = {}  # the attribute orders seen, in document order
        children: list[str] = []
        shapes: set[tuple[tuple[str, ...], tuple[object, ...]]] = set()
        for record in records:
            shape = (tuple(record.attrib), tuple(c.tag for c in record))
            if shape in shapes:
                continue  # the same names as a record seen (reading checks every record anyway)
            shapes.add(shape)
            if any(not isinstance(c.tag, str) or len(c) or c.attrib for c in record):
                return None
            names = [(f"{c.prefix}:" if c.prefix else "") + etree.QName(c).localname for c in record]
            if len(set(names)) != len(names) or any(a.startswith("{") for a in record.attrib):
                return None
            orders[tuple(record.attrib)] = None
            children += [n for n in names if n not in children]
        attrs = _order(list(orders))
        if attrs is None:
            return None
        for path in fields.values():
            name = path.removeprefix("@")
            if _NAME.fullmatch(name) and name not in (attrs if path.startswith("@") else children):
                if path.startswith("@"):
                    attrs.append(name)
                elif not any(c.rsplit(":", 1)[-1] == name for c in children):
                    children.append(name)
        if tag in children:
            return None
        try:
            return cls(tag, children, attrs, fields)
        except LookupError:
            return None

    def read(self, block: Block) -> tuple[list[pa.Array], IntArray] | None:
        """Columns (text, null where lxml's text is None) and the line where each record starts."""
        data = block.data
        size = len(data)
        if not size or size > _MAX_BLOCK:
            return None
        arr = np.frombuffer(data, dtype=np.uint8)
        if not _clean(arr, data, block.newline_count):
            return None
        # 1. Markup: tag i spans lt[i]..ends[i], its text ends[i]..lt[i + 1].
        markup = _markup(arr)
        if markup is None:
            return None
        lt, ends = markup
        n = len(lt)
        text_ends = np.empty_like(lt)
        text_ends[:-1] = lt[1:]
        text_ends[-1] = size
        offsets = np.empty(2 * n + 1, dtype=np.int32)
        offsets[0:-1:2] = lt
        offsets[1::2] = ends
        offsets[-1] = size
        # Binary: the UTF-8 is checked on the values and the record start tags, all the rest being
        # tags of the layout or white space.
        pieces = pa.Array.from_buffers(pa.binary(), 2 * n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        # 2. Tags: each looked up whole; the record start tags (with attributes: not found) by name.
        tags = pieces.take(np.arange(0, 2 * n, 2, dtype=np.int64))
        found = pc.fill_null(pc.index_in(tags, value_set=self.tokens), -1)
        t = found.to_numpy(zero_copy_only=False).astype(np.int32)  # a writable copy
        starts = self._starts(arr, lt, np.flatnonzero((t < 0) | (t >= self.open_start)))
        if not len(starts) or starts[0] != 0:
            return None
        closed = arr[ends[starts] - 2] == _SLASH
        attributes: list[pa.Array] = []
        if self.attrs:
            read_attributes = self._attributes(tags.take(starts))
            if read_attributes is None:
                return None
            attributes = read_attributes
        elif not np.all((t[starts] == self.open_start) | (t[starts] == self.closed_start)):
            return None
        t[starts] = np.where(closed, self.closed_start, self.open_start)
        # 3. Structure (5. the attributes were read above, with the record starts).
        record = np.zeros(n, dtype=np.int32)  # the record of each tag
        record[starts[1:]] = 1
        np.cumsum(record, out=record)
        opens = self._structure(t, starts, closed, record)
        if opens is None:
            return None
        # 4. Text: the value after each <name>; white space elsewhere.
        text_length = text_ends - ends
        other = text_length > 0
        other[opens] = False
        newlines = _only_space(arr, ends[other], text_length[other])
        if newlines is None:
            return None
        if len(newlines) != block.newline_count:
            newlines = block.newlines  # line breaks in values or tags too
        if data.find(b"\r") >= 0:
            carriage = np.flatnonzero(arr == _CR)
            token = np.searchsorted(lt, carriage, side="right") - 1
            is_open = np.zeros(n, dtype=bool)
            is_open[opens] = True
            if np.any((carriage >= ends[token]) & is_open[token]):
                return None  # a value with a carriage return
        # 6. Columns: one take of the values of all children (the UTF-8 checked on the way), then a
        # slice each.
        m = len(self.children)
        n_records = len(starts)
        filled = opens[text_length[opens] > 0]
        where = np.full(m * n_records, -1, dtype=np.int64)
        where[t[filled].astype(np.int64) * n_records + record[filled]] = 2 * filled + 1
        try:
            values = pieces.take(pa.array(where, mask=where < 0)).cast(pa.string())
        except pa.ArrowInvalid:
            return None  # not UTF-8
        escaped = data.find(b"&") >= 0
        columns: list[pa.Array] = []
        for source, index in self.sources:
            column = attributes[index] if source == "attr" else values.slice(index * n_records, n_records)
            columns.append(_unescape(column) if escaped else column)
        return columns, block.line + np.searchsorted(newlines, lt[starts])

    def _starts(self, arr: Bytes, lt: IntArray, candidates: IntArray) -> IntArray:
        """Which ``candidates`` (indexes in ``lt``) are record start tags: ``<tag`` then white space,
        ``>`` or ``/``."""
        size = len(arr)
        for j, ch in enumerate(self.tag, 1):
            candidates = candidates[lt[candidates] + j < size]
            candidates = candidates[arr[lt[candidates] + j] == ch]
        after = lt[candidates] + len(self.tag) + 1
        candidates = candidates[after < size]
        found: IntArray = candidates[_NAME_END[arr[lt[candidates] + len(self.tag) + 1]]]
        return found

    def _attributes(self, start_tags: pa.Array) -> list[pa.Array] | None:
        """The attribute columns of the record start tags, or None when one does not match."""
        try:
            start_tags = start_tags.cast(pa.string())
        except pa.ArrowInvalid:
            return None  # not UTF-8
        found = pc.extract_regex(start_tags, self.every_attr)
        if not found.null_count:
            return [found.field(f"a{j}") for j in range(len(self.attrs))]
        found = pc.extract_regex(start_tags, self.some_attrs)
        if found.null_count:
            return None
        columns = []
        for j in range(len(self.attrs)):
            quoted = found.field(f"a{j}")
            present = pc.greater(pc.binary_length(quoted), 0)
            columns.append(pc.if_else(present, pc.utf8_slice_codeunits(quoted, 1), None))
        return columns

    def _structure(
        self, t: npt.NDArray[np.int32], starts: IntArray, closed: Flags, record: npt.NDArray[np.int32]
    ) -> IntArray | None:
        """The indexes of the ``<name>`` tags, or None unless the tags make records: each ``<tag>``,
        children, ``</tag>`` or ``<tag/>``; each ``<name>`` then ``</name>``; no child twice."""
        m = len(self.children)
        if np.any(t < 0):
            return None  # a tag that is not in the layout
        last = np.empty_like(starts)
        last[:-1] = starts[1:] - 1
        last[-1] = len(t) - 1
        if np.any(last[closed] != starts[closed]) or np.any(t[last[~closed]] != self.end):
            return None
        if np.count_nonzero(t >= self.end) != len(starts) + np.count_nonzero(~closed):
            return None  # </tag> or a start tag inside a record
        opens = np.flatnonzero(t < m)
        if np.count_nonzero(t < 2 * m) != 2 * len(opens) or np.any(t[opens + 1] != t[opens] + m):
            return None  # a <name> not followed by its </name>
        if not m:
            return opens
        items = opens
        if len(t) - 2 * len(opens) - np.count_nonzero(t >= self.end):  # some <name/>
            items = np.flatnonzero(t < self.end)
            items = items[t[items] // m != 1]
        once = np.bincount(record[items].astype(np.int64) * m + t[items] % m, minlength=len(starts) * m)
        if once.max() > 1:
            return None  # a child twice in a record
        return opens


def _markup(arr: Bytes) -> tuple[IntArray, IntArray] | None:
    """Where each tag starts (``<``) and ends (after its ``>``), or None when a tag does not end or
    holds a ``<``. One pass finds both characters ("<" | 2 == ">" | 2 == ">")."""
    ored, flags = _buffers(len(arr))
    np.bitwise_or(arr, 2, out=ored)
    np.equal(ored, _GT, out=flags)
    marks = np.flatnonzero(flags)
    if not len(marks) or marks[0] != 0:
        return None  # a block starts with its first record's start tag
    opening = arr[marks] == _LT
    if len(marks) % 2 == 0 and opening[0::2].all() and not opening[1::2].any():
        return np.ascontiguousarray(marks[0::2]), marks[1::2] + 1  # no ">" in text: the usual case
    lt = marks[opening]
    gt = marks[~opening]
    after = np.searchsorted(gt, lt)
    if after[-1] == len(gt):
        return None  # a tag that does not end
    ends = gt[after] + 1
    if np.any(ends[:-1] > lt[1:]):
        return None  # a "<" inside a tag
    return lt, ends


def _buffers(size: int) -> tuple[Bytes, Flags]:
    """Two scratch arrays of ``size`` for this thread, kept between blocks (no fresh pages to fault
    in for each block)."""
    ored: Bytes | None = getattr(_scratch, "ored", None)
    if ored is None or len(ored) < size:
        ored = _scratch.ored = np.empty(size, dtype=np.uint8)
        _scratch.flags = np.empty(size, dtype=bool)
    flags: Flags = _scratch.flags
    return ored[:size], flags[:size]


def _clean(arr: Bytes, data: bytes, newlines: int) -> bool:
    """No control character, U+FFFE or U+FFFF, ``]]>``, and every ``&`` starts a predefined entity."""
    _, flags = _buffers(len(arr))
    np.less(arr, 0x20, out=flags)
    low = np.count_nonzero(flags)
    if low != newlines and low != np.count_nonzero(_SPACE[arr[flags]]):
        return False
    if data.find(b"\xef") >= 0 and (b"\xef\xbf\xbe" in data or b"\xef\xbf\xbf" in data):
        return False
    if data.find(b"]") >= 0 and b"]]>" in data:
        return False  # not allowed in text
    if data.find(b"&") < 0:
        return True
    amps = np.flatnonzero(arr == _AMP)
    ok = np.zeros(len(amps), dtype=bool)
    for tail in _ENTITY_TAILS:
        at = amps + 1
        fits = at + len(tail) <= len(arr)
        match = fits.copy()
        for k, ch in enumerate(tail):
            match[fits] &= arr[at[fits] + k] == ch
        ok |= match
    return bool(ok.all())


def _only_space(arr: Bytes, begins: IntArray, lengths: IntArray) -> IntArray | None:
    """None unless the bytes of the spans ``begins[i]..begins[i] + lengths[i]`` (in order) are all
    white space; else where the line breaks among them are."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(lengths) - lengths
    positions = np.repeat(begins - first, lengths) + np.arange(total)
    found = arr[positions]
    if not _SPACE[found].all():
        return None
    newlines: IntArray = positions[found == _NL]
    return newlines


def _locate(path: str, children: list[str], attrs: list[str]) -> tuple[str, int]:
    """Where a field's path points in the layout; LookupError when nowhere or ambiguous."""
    if path.startswith("@"):
        if path[1:] not in attrs:
            raise LookupError(path)
        return "attr", attrs.index(path[1:])
    if path in children:
        return "child", children.index(path)
    local = path.rsplit(":", 1)[-1]
    matches = [i for i, c in enumerate(children) if c.rsplit(":", 1)[-1] == local]
    if len(matches) != 1:
        raise LookupError(path)
    return "child", matches[0]


def _order(sequences: list[tuple[str, ...]]) -> list[str] | None:
    """All the names, in an order that keeps the order of each sequence; None when they disagree."""
    names = list(dict.fromkeys(name for sequence in sequences for name in sequence))
    before: dict[str, set[str]] = {name: set() for name in names}
    for sequence in sequences:
        for earlier, later in pairwise(sequence):
            before[later].add(earlier)
    order: list[str] = []
    while len(order) < len(names):
        ready = [n for n in names if n not in order and before[n] <= set(order)]
        if not ready:
            return None  # a cycle: a before b in one record, b before a in another
        order.append(ready[0])
    return order


def _unescape(column: pa.Array) -> pa.Array:
    if not pc.any(pc.match_substring(column, "&")).as_py():
        return column
    for entity, char in _ENTITIES:
        column = pc.replace_substring(column, entity, char)
    return column
