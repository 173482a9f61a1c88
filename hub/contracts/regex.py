"""Translating a contract's ``pattern`` into RE2 (the engine of ``pyarrow.compute``) with Python semantics.

The reference verdict is ``jsonschema``, which runs ``re.search(pattern, value)`` with Python's ``re``.
``to_re2`` returns an RE2 pattern that accepts exactly the same strings, or ``None`` when the pattern
uses a construct whose meaning differs or that RE2 lacks; such a pattern is then evaluated with Python's
``re`` once per distinct value (still exact, slower). What is translated:

- literals, ``.``, groups ``(...)``, ``(?:...)``, ``(?P<name>...)``, alternation, greedy and lazy
  quantifiers (``{,m}`` becomes ``{0,m}``), ``^``, ``\\A``, ``\\Z`` (-> ``\\z``);
- ``$`` (Python: end of text *or before a final newline*) when nothing can follow it: it becomes
  ``(?:\\n?\\z)``;
- ``\\d``, ``\\s``, ``\\w`` and their negations (Python's Unicode sets, computed from ``re`` itself and
  written out as code-point ranges) — negated ones not inside a character class;
- escapes ``\\n \\t \\r \\f \\v \\xhh \\uhhhh \\Uhhhhhhhh`` and escaped punctuation.

Refused (-> Python per distinct value): look-around, back-references, ``\\b``/``\\B``, inline flags,
possessive quantifiers, atomic groups, repetition counts over 1000, ``[:`` inside a class, and set
operations (``&&``, ``--``, ``||``, ``~~``) inside a class.
"""

from __future__ import annotations

import functools
import re

import numpy as np

_SIMPLE_ESCAPES = {"n": "\\n", "t": "\\t", "r": "\\r", "f": "\\f", "v": "\\v"}
_QUANT = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")


@functools.cache
def _class_ranges(name: str) -> str:
    """Python's Unicode set for ``\\d``/``\\s``/``\\w`` as RE2 class items (no brackets).

    ``re`` finds the runs of matching code points itself (a loop over 1.1 million code points in
    Python cost a third of a second per process); surrogates are left out."""
    rx = re.compile("\\" + name + "+")
    items: list[str] = []
    for lo, hi in ((0, 0xD800), (0xE000, 0x110000)):
        chars = np.arange(lo, hi, dtype="<u4").tobytes().decode("utf-32-le")
        for m in rx.finditer(chars):
            start, prev = lo + m.start(), lo + m.end() - 1
            items.append(f"\\x{{{start:x}}}" if start == prev else f"\\x{{{start:x}}}-\\x{{{prev:x}}}")
    return "".join(items)


def _lit(ch: str) -> str:
    return ch if ch.isalnum() and ord(ch) < 128 else f"\\x{{{ord(ch):x}}}"


class _Unsupported(Exception):
    pass


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.depth = 0
        self.out: list[str] = []

    def escape(self, in_class: bool) -> str:
        """Translate the escape at self.i (pointing after the backslash)."""
        if self.i >= len(self.p):
            raise _Unsupported
        c = self.p[self.i]
        self.i += 1
        if c in "dsw":
            return _class_ranges(c) if in_class else f"[{_class_ranges(c)}]"
        if c in "DSW":
            if in_class:
                raise _Unsupported
            return f"[^{_class_ranges(c.lower())}]"
        if c in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[c]
        if c in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[c]
            digits = self.p[self.i : self.i + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise _Unsupported
            self.i += width
            return f"\\x{{{int(digits, 16):x}}}"
        if not in_class and c == "A":
            return "\\A"
        if not in_class and c == "Z":
            return "\\z"
        if c.isascii() and c.isalnum():
            raise _Unsupported  # \b, \B, back-references, octal, unknown
        return _lit(c)

    def char_class(self) -> str:
        self.i += 1  # '['
        parts = ["["]
        if self.i < len(self.p) and self.p[self.i] == "^":
            parts.append("^")
            self.i += 1
        first = True
        while True:
            if self.i >= len(self.p):
                raise _Unsupported
            c = self.p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            if self.p.startswith(("[:", "&&", "--", "||", "~~"), self.i) or c == "[":
                raise _Unsupported
            first = False
            self.i += 1
            item = self.escape(True) if c == "\\" else _lit(c)
            if (
                self.i + 1 < len(self.p)
                and self.p[self.i] == "-"
                and self.p[self.i + 1] != "]"
                and not (c == "\\" and len(item) > 12)
            ):
                self.i += 1
                c2 = self.p[self.i]
                self.i += 1
                hi = self.escape(True) if c2 == "\\" else _lit(c2)
                if len(hi) > 12 or c2 == "[":
                    raise _Unsupported
                item = f"{item}-{hi}"
            parts.append(item)
        parts.append("]")
        return "".join(parts)

    def quantifier(self) -> bool:
        """Translate a quantifier at self.i, if any."""
        c = self.p[self.i]
        if c in "*+?":
            self.out.append(c)
            self.i += 1
        elif c == "{":
            m = _QUANT.match(self.p, self.i)
            if not m or (m.group(1) == "" and not m.group(2)) or (m.group(1) == "" and m.group(3) == ""):
                return False
            lo = int(m.group(1) or 0)
            hi = m.group(3)
            if lo > 1000 or (hi and int(hi) > 1000):
                raise _Unsupported
            self.out.append(f"{{{lo}{',' if m.group(2) else ''}{hi or ''}}}")
            self.i = m.end()
        else:
            return False
        if self.i < len(self.p) and self.p[self.i] == "?":
            self.out.append("?")
            self.i += 1
        elif self.i < len(self.p) and self.p[self.i] in "+*{":
            raise _Unsupported  # possessive or repeated quantifier
        return True

    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            if c == "\\":
                self.i += 1
                self.out.append(self.escape(False))
            elif c == "[":
                self.out.append(self.char_class())
            elif c == "(":
                if p.startswith("(?:", self.i):
                    self.out.append("(?:")
                    self.i += 3
                elif p.startswith("(?P<", self.i):
                    end = p.find(">", self.i)
                    if end < 0:
                        raise _Unsupported
                    self.out.append(p[self.i : end + 1])
                    self.i = end + 1
                elif p.startswith("(?", self.i):
                    raise _Unsupported
                else:
                    self.out.append("(")
                    self.i += 1
                self.depth += 1
            elif c == ")":
                self.depth -= 1
                self.out.append(")")
                self.i += 1
            elif c == "|":
                self.out.append("|")
                self.i += 1
            elif c == "^":
                self.out.append("^")
                self.i += 1
            elif c == "$":
                rest = p[self.i + 1 :]
                if not (set(rest) <= {")"} or (self.depth == 0 and rest.startswith("|"))):
                    raise _Unsupported
                self.out.append("(?:\\n?\\z)")
                self.i += 1
            elif c == ".":
                self.out.append(".")
                self.i += 1
            elif c in "*+?{" and self.quantifier():
                continue
            else:
                self.out.append(_lit(c))
                self.i += 1
            if self.i < len(p) and p[self.i] in "*+?{" and c not in "(|^":
                self.quantifier()
        return "".join(self.out)


@functools.cache
def to_re2(pattern: str) -> str | None:
    """The RE2 pattern accepting exactly what ``re.search(pattern, s)`` accepts, or None."""
    try:
        re.compile(pattern)
        return _Translator(pattern).run()
    except (_Unsupported, re.error, IndexError):
        return None
