"""The fast lane of the xml connector gives the rows the lxml way gives, or leaves the block to it.

Each test reads a file twice through the connector, once as users do and once with the fast lane
switched off, and compares the tables (values, nulls, lines, errors), and checks which blocks the
lane took. Hypothesis writes flat files with the tricky parts of XML: entities, character
references, CDATA, comments, white space inside tags, line breaks, ``]]>``, control characters,
markup left unescaped, children in any order, twice or missing.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from connectors.xml import fastlane
from connectors.xml.connector import XmlConnector
from connectors.xml.ordered import map_in_order
from connectors.xml.splitter import Block
from hub.ingest.connector import ConnectorContext

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<list>\n'
FIELDS = {"id": "@id", "k": "@k", "a": "a", "b": "b", "cc": "cc", "d_e": "d_e"}


@contextmanager
def lane_blocks() -> Iterator[list[tuple[int, int]]]:
    """The byte spans (in the file) of the blocks the fast lane took while the context is open."""
    taken: list[tuple[int, int]] = []
    real = fastlane.FastLane.read

    def counting(self: fastlane.FastLane, block: Any) -> Any:
        done = real(self, block)
        if done is not None:
            taken.append((block.offset, block.offset + len(block.data)))
        return done

    with mock.patch.object(fastlane.FastLane, "read", counting):
        yield taken


def read(path: Path, lane: bool = True, **config: Any) -> pa.Table:
    settings = {"path": str(path), "record": "r", "fields": FIELDS, **config}
    c = XmlConnector.from_dict(settings, ConnectorContext(base_dir=str(path.parent)))
    if lane:
        return pa.Table.from_batches(list(c.read(c.streams()[0].name, None)))
    with mock.patch.object(fastlane.FastLane, "build", classmethod(lambda cls, *a: None)):
        return pa.Table.from_batches(list(c.read(c.streams()[0].name, None)))


def both(path: Path, text: str, **config: Any) -> tuple[pa.Table, list[tuple[int, int]]]:
    """The table read as usual, checked equal to the lxml way's; and the blocks the lane took."""
    path.write_bytes((HEAD + text + "</list>\n").encode())
    with lane_blocks() as taken:
        fast = read(path, **config)
    slow = read(path, lane=False, **config)
    assert fast.schema == slow.schema
    assert fast.to_pylist() == slow.to_pylist()
    return fast, taken


def test_flat_records_take_the_lane_in_any_order(tmp_path: Path) -> None:
    rows = [
        '<r id="1" k="x"><a>Nguyễn Văn A</a><b>2</b><cc/><d_e></d_e></r>\n',
        '<r id="2"><b>3</b><a>Trần &amp; &lt;Lê&gt; &quot;q&quot; &apos;s&apos;</a></r>\n',
        '<r id="3" k=""><cc>c</cc></r>\n',
        '<r id="4" k="a &amp; b"/>\n',
        '<r\n   id="5"   k = "y" ><a>  </a><d_e>x &gt; y ]] z</d_e></r>\n',
    ]
    table, taken = both(tmp_path / "f.xml", "".join(rows) * 40, block_bytes=1024)
    assert taken
    assert table.num_rows == 200
    first = table.slice(0, 5).to_pylist()
    assert [r["id"] for r in first] == ["1", "2", "3", "4", "5"]
    assert first[0]["a"] == "Nguyễn Văn A"
    assert first[0]["cc"] is None  # <cc/>
    assert first[0]["d_e"] is None  # <d_e></d_e>
    assert first[1]["a"] == "Trần & <Lê> \"q\" 's'"
    assert first[1]["k"] is None  # absent
    assert first[2]["k"] == ""  # empty
    assert first[3]["k"] == "a & b"
    assert first[4]["a"] == "  "
    assert first[4]["d_e"] == "x > y ]] z"
    assert table.column("_hub_row").to_pylist()[:5] == [3, 4, 5, 6, 7]
    assert table.column("_hub_error").null_count == 200


@pytest.mark.parametrize(
    ("name", "record", "error"),
    [
        ("]]> in text", "<r><a>x]]>y</a></r>", True),
        ("control character", "<r><a>x\x01y</a></r>", True),
        ("U+FFFE", "<r><a>x\ufffey</a></r>", True),
        ("undeclared entity", "<r><a>x&nbsp;y</a></r>", True),
        ("unescaped markup", "<r><a>x<b>y</b></a></r>", False),
        ("mismatched end tag", "<r><a>x</b></r>", True),
        ("child twice", "<r><a>1</a><a>2</a></r>", False),
        ("child with an attribute", '<r><a n="1">x</a></r>', False),
        ("space in a child tag", "<r><a >x</a ><b/></r>", False),
        ("tab in an attribute", '<r id="a\tb"><a>x</a></r>', False),
        ("line break in an attribute", '<r id="a\nb"><a>x</a></r>', False),
        ("> in an attribute", '<r id="a>b"><a>x</a></r>', False),
        ("single quotes", "<r id='1'><a>x</a></r>", False),
        ("attributes in another order", '<r k="1" id="1"><a>x</a></r>', False),
        ("attribute twice", '<r id="1" id="2"><a>x</a></r>', True),
        ("attribute without quotes", "<r id=1><a>x</a></r>", True),
        ("undeclared prefix", "<r><p:a>x</p:a></r>", True),
        ("character reference", "<r><a>caf&#233; &#x1F600;</a></r>", False),
        ("CDATA", "<r><a><![CDATA[<b> & ]]></a></r>", False),
        ("comment", "<r><!-- note --><a>x</a></r>", False),
        ("processing instruction", "<r><?pi x?><a>x</a></r>", False),
        ("carriage return in a value", "<r><a>x\r\ny</a></r>", False),
        ("text in the record", "<r>loose<a>x</a></r>", False),
        ("unknown child", "<r><zz>x</zz></r>", False),
        ("nested child", "<r><a><i>x</i></a></r>", False),
        ("record with no end tag", "<r><a>x</a>", True),
    ],
)
def test_what_lxml_reads_differently_goes_the_lxml_way(
    tmp_path: Path, name: str, record: str, error: bool
) -> None:
    good = "".join(f'<r id="{i}" k="k"><a>v{i}</a><b>{i}</b></r>\n' for i in range(30))
    table, taken = both(tmp_path / "f.xml", good + record + "\n" + good, block_bytes=256)
    at = len((HEAD + good).encode())
    assert taken, name  # the lane took the good blocks ...
    assert not any(start <= at < end for start, end in taken), name  # ... and not this one
    assert table.num_rows == 61
    assert (table.column("_hub_error")[30].as_py() is not None) == error


def test_line_breaks_in_values_and_windows_line_ends(tmp_path: Path) -> None:
    rows = "".join(f'<r id="{i}">\r\n  <a>line\n{i}</a>\r\n  <b>{i}</b>\r\n</r>\r\n' for i in range(50))
    table, taken = both(tmp_path / "f.xml", rows, block_bytes=512)
    assert taken
    assert table.column("a")[1].as_py() == "line\n1"
    assert table.column("_hub_row").to_pylist()[:3] == [3, 8, 13]


def test_namespaces_and_records_without_children(tmp_path: Path) -> None:
    body = "".join(
        f'<hs:KhaiSinh so="{i}"><hs:HoTen>Nguyễn {i}</hs:HoTen><hs:GioiTinh>1</hs:GioiTinh></hs:KhaiSinh>\n'
        for i in range(40)
    )
    path = tmp_path / "ns.xml"
    path.write_text(f'<hs:DanhSach xmlns:hs="urn:hotich:1">\n{body}</hs:DanhSach>\n', encoding="utf-8")
    config = {"path": str(path), "record": "hs:KhaiSinh"}
    c = XmlConnector.from_dict(config, ConnectorContext(base_dir=str(tmp_path)))
    with lane_blocks() as taken:
        table = pa.Table.from_batches(list(c.read(c.streams()[0].name, None)))
    assert taken
    assert table.column("HoTen").to_pylist()[:2] == ["Nguyễn 0", "Nguyễn 1"]
    only_attributes = "".join(f'<r id="{i}" k="{i % 3}"/>\n' for i in range(40))
    table, taken = both(tmp_path / "a.xml", only_attributes, block_bytes=256)
    assert taken
    assert table.column("k").to_pylist()[:4] == ["0", "1", "2", "0"]
    assert table.column("a").null_count == 40


# --- generated files ---------------------------------------------------------------------------
# No "r" in text: the splitter finds records by their tag at the byte level (a documented limit).
TEXT = st.text(alphabet="aZ0 ạễĐ\t\n\r<>&\"']é\x01\ufffe", max_size=8)
CLEAN_TEXT = st.text(alphabet="aZ0 ạễĐ\t\n<>&\"']é", max_size=8)
SPACE = st.sampled_from(["", " ", "\n", "\r\n", "\t", "  "])


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def value_xml(draw: st.DrawFn, clean: bool) -> str:
    if clean:
        return escape(draw(CLEAN_TEXT))
    text = draw(TEXT)
    how = draw(st.sampled_from(["escaped", "escaped", "escaped", "raw", "cdata", "charref", "entity"]))
    if how == "raw":
        return text
    if how == "cdata":
        return f"<![CDATA[{text}]]>"
    if how == "charref":
        return escape(text) + "&#233;&#x1EA1;"
    if how == "entity":
        return escape(text) + draw(st.sampled_from(["&quot;", "&apos;", "&gt;", "&amp;lt;", "&bogus;"]))
    return escape(text)


@st.composite
def child_xml(draw: st.DrawFn, name: str, clean: bool) -> str:
    forms = ["value", "value", "value", "empty", "closed"]
    form = draw(st.sampled_from(forms if clean else [*forms, "closed_space", "spaced"]))
    if form == "empty":
        return f"<{name}></{name}>"
    if form == "closed":
        return f"<{name}/>"
    if form == "closed_space":
        return f"<{name} />"
    if form == "spaced":
        return f"<{name}>{draw(value_xml(clean))}</{name} >"
    return f"<{name}>{draw(value_xml(clean))}</{name}>"


@st.composite
def record_xml(draw: st.DrawFn, clean: bool) -> str:
    """A record; a clean one is of the kind the lane takes (any child order, any missing)."""
    attrs = ""
    orders = [["id", "k"], ["id"], ["k"], []]
    for attr in draw(st.sampled_from(orders if clean else [*orders, ["k", "id"]])):
        quote = '"' if clean else draw(st.sampled_from(['"', '"', '"', "'"]))
        value = escape(draw(CLEAN_TEXT if clean else TEXT)).replace(quote, "")
        if clean:
            value = value.replace("\t", "").replace("\n", "")
        else:
            value += draw(st.sampled_from(["", "", "&quot;", "&#65;", "&bogus;"]))
        equals = "=" if clean else draw(st.sampled_from(["=", "=", " = ", "\n="]))
        attrs += f"{draw(st.sampled_from([' ', ' ', chr(10), '  ']))}{attr}{equals}{quote}{value}{quote}"
    names = ["a", "b", "cc", "d_e"]
    if clean:
        children = [
            draw(child_xml(n, clean)) for n in draw(st.permutations(names))[: draw(st.integers(0, 4))]
        ]
    else:
        children = draw(
            st.lists(st.sampled_from([*names, "zz"]).flatmap(lambda n: child_xml(n, clean)), max_size=5)
        )
    if draw(st.booleans()) and not children:
        return f"<r{attrs}/>"
    parts = [draw(SPACE) + c for c in children]
    if not clean and draw(st.integers(0, 9)) == 0:
        parts.append("<!-- c -->")
    return f"<r{attrs}{draw(SPACE) if attrs else ''}>{''.join(parts)}{draw(SPACE)}</r>"


@settings(max_examples=200, deadline=None)
@given(
    st.booleans().flatmap(
        lambda clean: st.tuples(st.just(clean), st.lists(record_xml(clean), min_size=1, max_size=30))
    ),
    st.lists(SPACE, min_size=30, max_size=30),
    st.sampled_from([64, 256, 4096]),
)
def test_the_lane_and_lxml_agree_on_generated_files(
    clean_records: tuple[bool, list[str]], gaps: list[str], block_bytes: int
) -> None:
    clean, records = clean_records
    text = "".join(r + gap for r, gap in zip(records, gaps, strict=False)) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        _table, taken = both(Path(tmp) / "g.xml", text, block_bytes=block_bytes)
    if clean:
        assert taken  # at least the first block, whose records the lane was built from


def test_names_that_are_not_ascii(tmp_path: Path) -> None:
    rows = "".join(f'<hồsơ mã="{i}"><họtên>Lê {i}</họtên><ghi.chú/></hồsơ>\n' for i in range(40))
    path = tmp_path / "vi.xml"
    path.write_text(HEAD + rows + "</list>\n", encoding="utf-8")
    config = {"path": str(path), "record": "hồsơ", "block_bytes": 512}
    c = XmlConnector.from_dict(config, ConnectorContext(base_dir=str(tmp_path)))
    with lane_blocks() as taken:
        table = pa.Table.from_batches(list(c.read(c.streams()[0].name, None)))
    assert taken
    assert table.column_names[:3] == ["mã", "họtên", "ghi.chú"]
    assert table.column("họtên").to_pylist()[:2] == ["Lê 0", "Lê 1"]
    assert table.column("mã").to_pylist()[39] == "39"
    assert table.column("ghi.chú").null_count == 40


def test_batches_come_in_file_order_from_parallel_threads(tmp_path: Path) -> None:
    rows = "".join(f'<r id="{i}"><a>{i}</a></r>\n' for i in range(3000))
    table, taken = both(tmp_path / "o.xml", rows, block_bytes=1024)
    assert len(taken) > 20
    assert table.column("id").to_pylist() == [str(i) for i in range(3000)]
    assert table.column("_hub_row").to_pylist() == list(range(3, 3003))


def test_map_in_order_keeps_order_raises_in_place_and_stops_early() -> None:
    def slow_square(i: int) -> int:
        time.sleep(0.002 * (i % 3))
        if i == 7:
            raise ValueError("seven")
        return i * i

    squares = map_in_order(slow_square, range(20), workers=2)
    got = [next(squares) for _ in range(7)]
    assert got == [i * i for i in range(7)]
    with pytest.raises(ValueError, match="seven"):
        next(squares)
    started: list[int] = []

    def record(i: int) -> int:
        started.append(i)
        return i

    results = map_in_order(record, range(1000), workers=2)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    results.close()
    assert len(started) < 10  # the rest was never started
    heads: list[int] = []
    in_parallel = map_in_order(slow_square, range(7), workers=2, first=lambda i: heads.append(i) is None)
    assert list(in_parallel) == [i * i for i in range(7)]
    assert heads == [0]


def test_records_with_attributes_only(tmp_path: Path) -> None:
    rows = "".join(f'<r id="{i}" k="{i % 3}"/>\n<r id="x{i}"></r>\n' for i in range(40))
    table, taken = both(tmp_path / "a.xml", rows, block_bytes=256, fields={"id": "@id", "k": "@k"})
    assert taken
    assert table.column("k").to_pylist()[:4] == ["0", None, "1", None]
    assert table.num_rows == 80


def test_a_block_is_taken_whole_or_not_at_all() -> None:
    sample = etree.fromstring(b'<list><r id="1"><a>v</a></r></list>')
    lane = fastlane.FastLane.build("r", list(sample), {"id": "@id", "a": "a"})
    assert lane is not None
    done = lane.read(Block(b'<r id="1"><a>v</a></r>\n<r id="2"/>', line=7, offset=0))
    assert done is not None
    columns, lines = done
    assert [c.to_pylist() for c in columns] == [["1", "2"], ["v", None]]
    assert lines.tolist() == [7, 8]
    for data in (b'x<r id="1"><a>v</a></r>', b'<r id="1"><a>v</a></r>x', b'<r id="1"><a>v</a>'):
        assert lane.read(Block(data, line=1, offset=0)) is None
