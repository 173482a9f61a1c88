"""The fast lane of the xml connector: flat records straight from bytes to Arrow.

Most agency exports are flat: a record element with attributes and leaf children, the same layout in
every record. For those, one regular expression built from the first record's layout splits a whole
block into its values (``re.split`` runs in C) and each column becomes one Arrow array, with no
Python code per value. The expression only admits well-formed text (no markup or control
characters inside values, the five predefined entities), and a block passes only when every record in
it matched; any other block (a broken record, a comment, a nested element, another layout) goes the
lxml way, which quarantines what is broken.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

_CTRL = rb"\x00-\x08\x0b\x0c\x0e-\x1f"  # not allowed in XML 1.0 documents
_ENTITY = rb"&(?:lt|gt|amp|quot|apos);"
# Possessive quantifiers (*+, ++): what follows a run never starts with a character of the run, so
# giving none of it back changes no match, and the engine keeps no backtracking state (a third faster).
_VALUE = rb"(?:[^<&\r\n" + _CTRL + rb"]++|" + _ENTITY + rb")++"
_ATTR_VALUE = rb'(?:[^"<&\r\n' + _CTRL + rb"]++|" + _ENTITY + rb")*+"
_PLAIN_VALUE = rb"[^<&\r\n" + _CTRL + rb"]++"
_PLAIN_ATTR_VALUE = rb'[^"<&\r\n' + _CTRL + rb"]*+"
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))
_S = rb"[ \t\r\n]*+"  # white space between markup (XML's S)
_S1 = rb"[ \t\r\n]++"
_WS = np.frombuffer(b" \t\r\n>/", dtype=np.uint8)


class FastLane:
    """Built from the first record; ``read(block)`` gives columns or None (use the lxml way)."""

    def __init__(
        self,
        pattern: re.Pattern[bytes],
        plain: re.Pattern[bytes],
        groups: list[int],
        n_groups: int,
        names: list[str],
        tag: bytes,
    ) -> None:
        self.pattern = pattern
        self.plain = plain
        self.groups = groups
        self.stride = n_groups + 1
        self.names = names
        self.tag = tag
        self.blocks = 0

    @classmethod
    def build(cls, tag: str, records: list[etree._Element], fields: dict[str, str]) -> FastLane | None:
        """A lane for records laid out like ``records`` (attributes and children in the order they
        show, each optional), or None when they are not flat."""
        attrs: list[str] = []
        children: list[str] = []
        for record in records:
            if any(not isinstance(c.tag, str) or len(c) for c in record):
                return None
            names = [(f"{c.prefix}:" if c.prefix else "") + etree.QName(c).localname for c in record]
            if len(set(names)) != len(names) or any(a.startswith("{") for a in record.attrib):
                return None
            if not (_merge(attrs, list(record.attrib)) and _merge(children, names)):
                return None
        parts = [rb"<" + re.escape(tag.encode())]
        group_of: dict[str, int] = {}
        for a in attrs:
            group_of["@" + a] = len(group_of) + 1
            parts.append(
                rb"(?:" + _S1 + re.escape(a.encode()) + _S + b"=" + _S + b'"(' + _ATTR_VALUE + b')")?'
            )
        parts.append(_S + rb"(?:/>" + _S + b"|>" + _S)
        for child in children:
            group_of[child] = len(group_of) + 1
            name = re.escape(child.encode())
            parts.append(
                rb"(?:<"
                + name
                + b">("
                + _VALUE
                + b")</"
                + name
                + _S
                + b">"
                + _S
                + b"|<"
                + name
                + b"></"
                + name
                + _S
                + b">"
                + _S
                + b"|<"
                + name
                + _S
                + b"/>"
                + _S
                + b")?"
            )
        parts.append(rb"</" + re.escape(tag.encode()) + _S + b">" + _S + b")")
        groups: list[int] = []
        for path in fields.values():
            local = path.rsplit(":", 1)[-1] if not path.startswith("@") else path
            key = path if path in group_of else local
            if key not in group_of:
                matches = [k for k in group_of if k.rsplit(":", 1)[-1] == local]
                if len(matches) != 1:
                    return None
                key = matches[0]
            groups.append(group_of[key])
        full = b"".join(parts)
        plain = full.replace(_VALUE, _PLAIN_VALUE).replace(_ATTR_VALUE, _PLAIN_ATTR_VALUE)
        return cls(re.compile(full), re.compile(plain), groups, len(group_of), list(fields), tag.encode())

    def read(self, data: bytes) -> tuple[list[pa.Array], list[int]] | None:
        """Columns (text, empty = null) and the byte offsets where the records start."""
        parts = (self.pattern if b"&" in data else self.plain).split(data)
        starts = self.starts(data)
        if len(parts) != 1 + len(starts) * self.stride or any(parts[:: self.stride]):
            return None  # something between or inside the records did not match
        # All the parts in one array (an empty element gave None: null, as lxml's ``text``; an empty
        # attribute b""), built as binary and cast to text (UTF-8 checked in C), then each column
        # taken from it by index: no Python list per column.
        try:
            whole = pa.array(parts, type=pa.binary()).cast(pa.string())
        except pa.ArrowInvalid:  # not UTF-8
            return None
        first = np.arange(len(starts), dtype=np.int64) * self.stride
        columns = [whole.take(pa.array(first + g)) for g in self.groups]
        if b"&" in data:
            columns = [_unescape(c) for c in columns]
        self.blocks += 1
        return columns, starts

    def starts(self, data: bytes) -> list[int]:
        """Byte offsets of ``<tag`` followed by a space, ``>`` or ``/`` (vectorized)."""
        arr = np.frombuffer(data, dtype=np.uint8)
        n = len(self.tag)
        lt = np.flatnonzero(arr[: max(0, len(arr) - n - 1)] == 60)
        mask = np.ones(len(lt), dtype=bool)
        for j, ch in enumerate(self.tag):
            mask &= arr[lt + 1 + j] == ch
        mask &= np.isin(arr[lt + 1 + n], _WS)
        found: list[int] = lt[mask].tolist()
        return found


def _merge(order: list[str], seen: list[str]) -> bool:
    """Fold ``seen`` (one record's names in document order) into ``order``; False if they disagree."""
    position = -1
    for name in seen:
        if name in order:
            at = order.index(name)
            if at < position:
                return False
            position = at
        else:
            position += 1
            order.insert(position, name)
    return True


def _unescape(column: pa.Array) -> pa.Array:
    for entity, char in _ENTITIES:
        column = pc.replace_substring(column, entity, char)
    return column
