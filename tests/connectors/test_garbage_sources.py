"""Sources that turned to garbage: a file that is not of its declared format fails naming the file
(and the line where there is one); lone-CR line ends are read as lines; a quote never closed under
``on_error: quarantine`` swallows nothing: every source line is loaded or quarantined."""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pytest

from connectors.files.connector import FilesConnector
from connectors.xml.connector import XmlConnector
from hub.errors import SourceDataError
from hub.ingest.connector import ERROR_COLUMN, ROW_COLUMN, ConnectorContext

CSV = "ma,ho_ten,ngay_sinh\n" + "".join(f"{i},Nguyễn Văn {i},2024-01-{i:02d}\n" for i in range(1, 6))
XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<export>\n'
    + "".join(f'  <record id="{i}"><name>Lê Thị {i}</name></record>\n' for i in range(1, 4))
    + "</export>\n"
)


def files(base: Path, batch_rows: int = 131_072, **config: Any) -> pa.Table:
    c = FilesConnector.from_dict(config, ConnectorContext(base_dir=str(base), batch_rows=batch_rows))
    batches = list(c.read(c.streams()[0].name, None))
    return pa.Table.from_batches(batches) if batches else pa.table({})


def xml(base: Path, **config: Any) -> pa.Table:
    c = XmlConnector.from_dict(config, ConnectorContext(base_dir=str(base)))
    batches = list(c.read(c.streams()[0].name, None))
    return pa.Table.from_batches(batches) if batches else pa.table({})


def garbage(n: int, seed: int = 10) -> bytes:
    return random.Random(seed).randbytes(n)


# --- not of the declared format ----------------------------------------------------------------------


@pytest.mark.parametrize("on_error", ["fail", "quarantine"])
@pytest.mark.parametrize("encoding", ["utf-8", "windows-1258"])
def test_gzip_named_csv_fails_naming_the_file(tmp_path: Path, on_error: str, encoding: str) -> None:
    (tmp_path / "khai_sinh.csv").write_bytes(gzip.compress(CSV.encode()))
    with pytest.raises(SourceDataError) as info:
        files(tmp_path, path="khai_sinh.csv", on_error=on_error, encoding=encoding)
    assert info.value.details["file"] == "khai_sinh.csv"
    assert "khai_sinh.csv: the file is gzip-compressed, not CSV text" in info.value.message


def test_gzip_named_jsonl_fails_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_bytes(gzip.compress(b'{"a": 1}\n'))
    with pytest.raises(SourceDataError, match=r"^rows\.jsonl: the file is gzip-compressed"):
        files(tmp_path, path="rows.jsonl")


def test_random_bytes_as_csv_fail_naming_file_and_line(tmp_path: Path) -> None:
    data = b"ma,ten\n1,An\n" + garbage(3000).replace(b"\x00", b"x") + b"\x00" + garbage(50)
    (tmp_path / "rac.csv").write_bytes(data)
    with pytest.raises(SourceDataError) as info:
        files(tmp_path, path="rac.csv")
    assert info.value.details["file"] == "rac.csv"
    assert info.value.details["line"] == data[: data.index(b"\x00")].count(b"\n") + 1
    assert "binary" in info.value.message


def test_truncated_workbook_fails_naming_the_file(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["ma", "ten"])
    for i in range(2000):
        ws.append([i, f"Trần {i}"])
    wb.save(tmp_path / "full.xlsx")
    data = (tmp_path / "full.xlsx").read_bytes()
    (tmp_path / "cut.xlsx").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceDataError) as info:
        files(tmp_path, path="cut.xlsx")
    assert info.value.details["file"] == "cut.xlsx"
    assert "cut.xlsx: not a readable .xlsx workbook (not a zip archive: truncated" in info.value.message
    (tmp_path / "gz.xlsx").write_bytes(gzip.compress(data))
    with pytest.raises(SourceDataError, match=r"^gz\.xlsx: .*the file is gzip-compressed"):
        files(tmp_path, path="gz.xlsx")


def test_damaged_workbook_names_the_row_where_it_broke(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "hs"
    ws.append(["ma", "ten"])
    for i in range(20_000):
        ws.append([i, f"Trần {i}"])
    wb.save(tmp_path / "full.xlsx")
    data = bytearray((tmp_path / "full.xlsx").read_bytes())
    for k in range(len(data) // 3, len(data) // 3 + 2000):  # inside the sheet's compressed XML
        data[k] ^= 0x5A
    (tmp_path / "hong.xlsx").write_bytes(bytes(data))
    with pytest.raises(SourceDataError) as info:
        files(tmp_path, path="hong.xlsx")
    assert info.value.details["file"] == "hong.xlsx!hs"
    line = info.value.details["line"]
    assert isinstance(line, int)
    assert line > 2
    assert f"hong.xlsx!hs, line {line}: the workbook is damaged" in info.value.message


def test_random_bytes_as_xml_fail_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "rac.xml").write_bytes(garbage(5000))
    with pytest.raises(SourceDataError) as info:
        xml(tmp_path, path="rac.xml", record="record")
    assert info.value.details["file"] == "rac.xml"
    # without a NUL byte the same bytes are still not XML, and the error says why
    (tmp_path / "rac2.xml").write_bytes(b"\x8f" + garbage(5000).replace(b"\x00", b"").replace(b"<", b""))
    with pytest.raises(SourceDataError) as info:
        xml(tmp_path, path="rac2.xml", record="record")
    assert info.value.details == {"file": "rac2.xml", "line": 1, "column": None}
    assert "not XML: no <record> element, and the file starts with bytes 8f" in info.value.message


def test_xml_whose_record_tag_was_renamed_is_an_error_not_zero_rows(tmp_path: Path) -> None:
    (tmp_path / "khai_sinh.xml").write_text(XML.replace("record", "hoSo"), encoding="utf-8")
    with pytest.raises(SourceDataError) as info:
        xml(tmp_path, path="khai_sinh.xml", record="export/record")
    assert info.value.details["file"] == "khai_sinh.xml"
    message = info.value.message
    assert message.startswith("khai_sinh.xml: no <record> element found")
    assert "<export>, <hoSo>, <name>" in message
    assert xml(tmp_path, path="khai_sinh.xml", record="hoSo").num_rows == 3


def test_gzip_named_xml_fails_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.xml").write_bytes(gzip.compress(XML.encode()))
    with pytest.raises(SourceDataError, match=r"^x\.xml: the file is gzip-compressed, not XML text"):
        xml(tmp_path, path="x.xml", record="record")


# --- lone-CR line ends ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [{}, {"on_error": "quarantine"}, {"encoding": "windows-1258"}],
    ids=["utf-8", "quarantine", "windows-1258"],
)
def test_lone_cr_line_ends_are_lines(tmp_path: Path, config: dict[str, Any]) -> None:
    encoding = "cp1258" if config.get("encoding") else "utf-8"
    text = CSV.replace("Nguyễn", "Nguyen") if encoding == "cp1258" else CSV
    (tmp_path / "mac.csv").write_bytes(text.replace("\n", "\r").encode(encoding))
    t = files(tmp_path, path="mac.csv", **config)
    assert t.column("ma").to_pylist() == ["1", "2", "3", "4", "5"]
    assert t.column(ROW_COLUMN).to_pylist() == [2, 3, 4, 5, 6]
    assert t.column("ngay_sinh").to_pylist()[-1] == "2024-01-05"


def test_lone_cr_file_names_the_line_of_a_bad_record(tmp_path: Path) -> None:
    (tmp_path / "mac.csv").write_bytes(b"ma,ten,x\r1,a,b\r2,b,c\r3,d\r4,e,f\r")
    with pytest.raises(SourceDataError) as info:
        files(tmp_path, path="mac.csv")
    assert info.value.details == {"file": "mac.csv", "line": 4, "column": 2}


# --- a quote never closed under on_error: quarantine ---------------------------------------------------


def lines_of(t: pa.Table) -> tuple[dict[int, str], dict[int, str]]:
    """(line -> ma of loaded rows, line -> reason of quarantined rows)."""
    good: dict[int, str] = {}
    bad: dict[int, str] = {}
    for r in t.to_pylist():
        if r[ERROR_COLUMN] is None:
            good[r[ROW_COLUMN]] = r["ma"]
        else:
            bad[r[ROW_COLUMN]] = r[ERROR_COLUMN]
    return good, bad


def test_a_quote_never_closed_swallows_no_line(tmp_path: Path) -> None:
    body = 'ma,ten,x\n1,a,b\n2,"b,c\n3,d,e\n4,f,g\n5,5" pipe,h\n'
    (tmp_path / "q.csv").write_text(body, encoding="utf-8")
    good, bad = lines_of(files(tmp_path, path="q.csv", on_error="quarantine"))
    assert good == {2: "1", 4: "3", 5: "4", 6: "5"}  # a quote inside a value is text (line 6)
    assert set(bad) == {3}
    assert "a quote opened in column 2 is never closed" in bad[3]


def test_a_quote_never_closed_in_a_large_file_swallows_no_line(tmp_path: Path) -> None:
    """Over many blocks pyarrow alone lost its way (the whole run failed); now only the line is out."""
    rows = [f"{i},Phạm Văn {i},{'x' * 40}" for i in range(1, 200_001)]
    rows[99] = '100,"Phạm Văn 100,x'
    rows[150_000] = '150001,"a""b'
    (tmp_path / "big.csv").write_text("ma,ten,x\n" + "\n".join(rows) + "\n", encoding="utf-8")
    t = files(tmp_path, batch_rows=10_000, path="big.csv", on_error="quarantine")
    good, bad = lines_of(t)
    assert set(bad) == {101, 150_002}
    assert len(good) + len(bad) == 200_000  # every line is loaded or quarantined
    assert all(int(ma) == line - 1 for line, ma in good.items())


def test_a_quote_never_closed_with_newlines_in_values_quarantines_the_whole_span(tmp_path: Path) -> None:
    body = 'ma,ten,x\n1,a,b\n2,"b,c\n3,d,e\n4,f,g\n'
    (tmp_path / "q.csv").write_text(body, encoding="utf-8")
    t = files(tmp_path, path="q.csv", on_error="quarantine", newlines_in_values=True)
    good, bad = lines_of(t)
    assert good == {2: "1"}
    assert set(bad) == {3, 4, 5}
    assert "never closed" in bad[3]
    assert "lines 3 to 5; each is quarantined" in bad[3]
    assert bad[4] == "inside the broken record that starts on line 3: '3,d,e'"
    assert bad[5] == "inside the broken record that starts on line 3: '4,f,g'"


@pytest.mark.parametrize("config", [{}, {"newlines_in_values": True, "on_error": "quarantine"}])
def test_a_quote_left_open_across_blocks_names_its_line(tmp_path: Path, config: dict[str, Any]) -> None:
    rows = [f"{i},Phạm Văn {i},{'x' * 40}" for i in range(1, 200_001)]
    rows[120_000] = '120001,"Phạm,x'
    (tmp_path / "big.csv").write_text("ma,ten,x\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(SourceDataError) as info:
        files(tmp_path, batch_rows=10_000, path="big.csv", **config)
    assert info.value.details == {"file": "big.csv", "line": 120_002, "column": 2}
    assert "never closed" in info.value.message
