"""The xml connector: field mapping, namespaces, XSD, and a malformed record quarantined by line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from connectors.xml.connector import XmlConnector
from hub.errors import ConfigError
from hub.ingest.connector import ConnectorContext
from hub.testing.conformance import ConformanceCase, ConnectorConformance


def record_xml(i: int) -> str:
    return (
        f'  <record id="KS-{i:05d}" ward="{i % 9:05d}">\n'
        f"    <name>Trần Thị {i}</name>\n"
        f"    <birth><date>2024-01-{1 + i % 28:02d}</date></birth>\n"
        f"    <weight>{3000 + i}</weight>\n"
        "  </record>\n"
    )


def write(
    path: Path, body: str, head: str = "<export><records>\n", tail: str = "</records></export>\n"
) -> Path:
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n' + head + body + tail, encoding="utf-8")
    return path


def read(tmp_path: Path, **config: Any) -> pa.Table:
    c = XmlConnector.from_dict(config, ConnectorContext(base_dir=str(tmp_path)))
    batches = list(c.read(c.streams()[0].name, None))
    return pa.Table.from_batches(batches)


FIELDS = {"id": "@id", "ward": "@ward", "name": "name", "date": "birth/date", "weight": "weight"}


@pytest.mark.parametrize("block_bytes", [256, 1 << 20])
def test_reads_every_record_with_mapping_and_lines(tmp_path: Path, block_bytes: int) -> None:
    write(tmp_path / "births.xml", "".join(record_xml(i) for i in range(1, 301)))
    table = read(
        tmp_path, path="births.xml", record="export/records/record", fields=FIELDS, block_bytes=block_bytes
    )
    assert table.num_rows == 300
    assert table.column("id").to_pylist()[:2] == ["KS-00001", "KS-00002"]
    assert table.column("name")[0].as_py() == "Trần Thị 1"
    assert table.column("date")[1].as_py() == "2024-01-03"
    assert table.column("_hub_row").to_pylist()[:3] == [3, 8, 13]  # line of each <record>
    assert set(table.column("_hub_source").to_pylist()) == {"births.xml"}
    assert table.column("_hub_error").null_count == 300


def test_one_malformed_record_is_quarantined_with_its_line(tmp_path: Path) -> None:
    body = [record_xml(i) for i in range(1, 101)]
    body[49] = (
        '  <record id="KS-00050" ward="00005">\n    <name>Lê Văn <b>50</name>\n'
        "    <weight>1</weight>\n  </record>\n"
    )
    write(tmp_path / "births.xml", "".join(body))
    table = read(tmp_path, path="births.xml", record="record", fields=FIELDS, block_bytes=2048)
    assert table.num_rows == 100
    errors = table.filter(pc.is_valid(table.column("_hub_error")))
    assert errors.num_rows == 1
    line = 3 + 49 * 5
    assert errors.column("_hub_row").to_pylist() == [line]
    message = errors.column("_hub_error")[0].as_py()
    assert message.startswith(f"line {line + 1}: malformed XML")
    assert errors.column("name")[0].as_py() is None
    ok = table.filter(pc.is_null(table.column("_hub_error")))
    assert ok.num_rows == 99
    assert "KS-00051" in ok.column("id").to_pylist()
    assert table.column("_hub_row").to_pylist() == sorted(table.column("_hub_row").to_pylist())


def test_broken_last_record_and_missing_values(tmp_path: Path) -> None:
    body = (
        record_xml(1)
        + '  <record id="KS-2"><name></name></record>\n'
        + '  <record id="KS-3"><name>x</name>\n'
    )
    write(tmp_path / "b.xml", body, tail="</records>")
    table = read(tmp_path, path="b.xml", record="record", fields=FIELDS)
    assert table.column("id").to_pylist() == ["KS-00001", "KS-2", None]
    assert table.column("name").to_pylist()[1] is None
    assert table.column("weight").to_pylist()[:2] == ["3001", None]
    assert table.column("_hub_row")[2].as_py() == 9
    message = table.column("_hub_error")[2].as_py()
    assert message.startswith(
        "line 10: malformed XML: Opening and ending tag mismatch: record line 9 and records"
    )


def test_fields_discovered_and_namespaces(tmp_path: Path) -> None:
    body = "".join(
        f'<hs:KhaiSinh so="{i}"><hs:HoTen>Nguyễn {i}</hs:HoTen><hs:GioiTinh>1</hs:GioiTinh></hs:KhaiSinh>\n'
        for i in range(3)
    )
    write(tmp_path / "ns.xml", body, head='<hs:DanhSach xmlns:hs="urn:hotich:1">\n', tail="</hs:DanhSach>")
    table = read(tmp_path, path="ns.xml", record="hs:KhaiSinh")
    assert table.column_names[:3] == ["so", "HoTen", "GioiTinh"]
    assert table.column("HoTen").to_pylist() == ["Nguyễn 0", "Nguyễn 1", "Nguyễn 2"]
    write(tmp_path / "d.xml", "<r><a>1</a></r><r><a>2</a></r>", head='<list xmlns="urn:x">', tail="</list>")
    assert read(tmp_path, path="d.xml", record="r", fields={"a": "a"}).column("a").to_pylist() == ["1", "2"]


def test_xsd_failures_are_quarantined(tmp_path: Path) -> None:
    (tmp_path / "r.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="record"><xs:complexType>'
        '<xs:sequence><xs:element name="weight" type="xs:int"/></xs:sequence>'
        '<xs:attribute name="id" type="xs:string"/></xs:complexType></xs:element></xs:schema>'
    )
    write(
        tmp_path / "x.xml",
        '<record id="1"><weight>5</weight></record>\n<record id="2"><weight>x</weight></record>\n',
    )
    table = read(
        tmp_path, path="x.xml", record="record", fields={"id": "@id", "weight": "weight"}, xsd="r.xsd"
    )
    assert table.column("_hub_error")[0].as_py() is None
    assert "XSD" in table.column("_hub_error")[1].as_py()
    assert table.column("_hub_row").to_pylist() == [3, 4]


def test_check_says_what_is_wrong(tmp_path: Path) -> None:
    c = XmlConnector.from_dict({"path": "none.xml", "record": "r"}, ConnectorContext(base_dir=str(tmp_path)))
    assert "no such file" in c.check().message
    write(tmp_path / "a.xml", "<other/>")
    c = XmlConnector.from_dict({"path": "a.xml", "record": "r"}, ConnectorContext(base_dir=str(tmp_path)))
    result = c.check()
    assert not result.ok
    assert "no <r> element" in result.message
    with pytest.raises(ConfigError):
        XmlConnector.from_dict({"path": "a.xml", "record": "<r>"})


def test_fast_lane_agrees_with_the_lxml_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        f'<r id="{i}" k="a&amp;b"><name>Phạm &lt;{i}&gt; &quot;x&quot;</name><note/><v>{i}</v></r>\n'
        for i in range(50)
    ]
    rows[10] = '<r id="10" k=""><name></name><note>n</note><v>10</v></r>\n'
    rows[20] = '<r id="20" k="z"><v>20</v><name>order changed</name><note/></r>\n'  # another layout
    write(tmp_path / "f.xml", "".join(rows), head="<list>\n", tail="</list>\n")
    config = {
        "path": "f.xml",
        "record": "r",
        "fields": {"id": "@id", "k": "@k", "name": "name", "note": "note"},
    }
    fast = read(tmp_path, block_bytes=300, **config)
    from connectors.xml import connector as module

    monkeypatch.setattr(module.FastLane, "build", classmethod(lambda cls, *a: None))
    slow = read(tmp_path, block_bytes=300, **config)
    assert fast.equals(slow)
    assert fast.column("name")[0].as_py() == 'Phạm <0> "x"'
    assert fast.column("k")[0].as_py() == "a&b"
    assert fast.column("note").to_pylist()[:2] == [None, None]
    assert fast.column("name")[10].as_py() is None
    assert fast.column("k")[10].as_py() == ""
    assert fast.column("name")[20].as_py() == "order changed"
    assert fast.column("_hub_row").to_pylist() == list(range(3, 53))


class TestXmlConformance(ConnectorConformance):
    @pytest.fixture
    def case(self, tmp_path: Path) -> ConformanceCase:
        def body(n: int) -> str:
            return "".join(
                f'<record id="{i}"><name>N {i}</name><updated_at>2025-01-{i:02d}</updated_at></record>\n'
                for i in range(1, n + 1)
            )

        write(tmp_path / "c.xml", body(5))
        return ConformanceCase(
            XmlConnector,
            config={"path": "c.xml", "record": "record", "cursor_field": "updated_at", "primary_key": ["id"]},
            context=ConnectorContext(base_dir=str(tmp_path)),
            unreachable_config={"path": "missing.xml", "record": "record"},
            add_rows=lambda: write(tmp_path / "c.xml", body(7)) and None,
        )
