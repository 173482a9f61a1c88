"""The byte-level check of ``^\\S(.*\\S)?$`` (full names) agrees with Python's ``re`` on every value."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.contracts.fastpath import TRIMMED, match_trimmed

PATTERN = re.compile(TRIMMED)
# spaces of every UTF-8 width, a zero-width non-space, Vietnamese letters, newlines, an emoji
SPACES = " \n\t\r\x0b\x1c\x1f\x85\xa0\u1680\u2000\u200a\u2028\u202f\u205f\u3000"
ALPHABET = [*"aÉễ\u200b\u3001", *SPACES, "\U0001f600"]
VALUES = st.lists(st.none() | st.text(alphabet=ALPHABET, max_size=6), max_size=60)


def expected(values: list[str | None]) -> list[bool]:
    return [v is not None and PATTERN.search(v) is not None for v in values]


@settings(max_examples=300, deadline=None)
@given(VALUES, st.integers(min_value=0, max_value=5))
def test_trimmed_fast_path_matches_re(values: list[str | None], cut: int) -> None:
    arr = pa.array(values, pa.string())
    assert match_trimmed(arr).tolist() == expected(values)
    part = arr.slice(min(cut, len(values)))  # offsets into a parent's buffer
    assert match_trimmed(part).tolist() == expected(values[min(cut, len(values)) :])


def test_trimmed_edge_cases() -> None:
    values = ["Lê Thị Hà", " Hà", "Hà ", "Hà\n", "Hà\n\n", "H\nà", "\n", "", "a", "a\u3000", "\u3000a", None]
    got = match_trimmed(pa.array(values, pa.string()))
    assert got.tolist() == [True, False, False, True, False, False, False, False, True, False, False, False]
    assert isinstance(got, np.ndarray)
