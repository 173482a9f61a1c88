"""The ``files`` connector: formats, encodings, globs, malformed CSV, incremental reads, conformance."""

from __future__ import annotations

import datetime as dt
import os
import unicodedata
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.files.connector import FilesConnector
from hub.errors import ConfigError, SourceDataError, SourceUnavailableError
from hub.ingest.connector import ERROR_COLUMN, ROW_COLUMN, SOURCE_COLUMN, ConnectorContext
from hub.testing.conformance import ConformanceCase, ConnectorConformance, check_conformance

NAMES = ["Nguyễn Văn Ấn", "Trần Thị Ngọc Hường", "Lê Đức Thọ", "Phạm Ưng Vỹ"]
TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}


def cp1258(text: str) -> bytes:
    """Encode like a Windows-1258 system does: base letters precomposed, tone marks combining."""
    out = bytearray()
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        parts = unicodedata.normalize("NFD", ch)
        base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in TONES))
        out += (base + "".join(c for c in parts if c in TONES)).encode("cp1258")
    return bytes(out)


def connector(base: Path, batch_rows: int = 131_072, **config: Any) -> FilesConnector:
    return FilesConnector.from_dict(config, ConnectorContext(base_dir=str(base), batch_rows=batch_rows))  # type: ignore[return-value]


def read(c: FilesConnector, state: dict[str, Any] | None = None) -> pa.Table:
    batches = list(c.read(c.config.stream, state))
    if not batches:
        return pa.table({})
    return pa.Table.from_batches(batches)


CSV_TEXT = "ma,ho_ten,ngay_sinh\n" + "".join(f"{i},{n},2024-01-0{i}\n" for i, n in enumerate(NAMES, 1))


# --- formats and encodings -----------------------------------------------------------------------------


def test_csv_utf8_reads_text_columns_with_positions(tmp_path: Path) -> None:
    (tmp_path / "births.csv").write_text(CSV_TEXT + '5,"Võ, Thị Sáu",\n', encoding="utf-8")
    t = read(connector(tmp_path, path="births.csv"))
    assert t.schema.names == ["ma", "ho_ten", "ngay_sinh", ROW_COLUMN, SOURCE_COLUMN]
    assert all(pa.types.is_string(t.schema.field(n).type) for n in ("ma", "ho_ten", "ngay_sinh"))
    assert t.column("ho_ten").to_pylist() == [*NAMES, "Võ, Thị Sáu"]
    assert t.column("ma").to_pylist()[0] == "1"  # text: the validator parses it against the contract
    assert t.column("ngay_sinh").to_pylist()[-1] is None  # an empty field is null
    assert t.column(ROW_COLUMN).to_pylist() == [2, 3, 4, 5, 6]
    assert set(t.column(SOURCE_COLUMN).to_pylist()) == {"births.csv"}


def test_csv_with_bom_has_clean_first_column(tmp_path: Path) -> None:
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + CSV_TEXT.encode("utf-8"))
    t = read(connector(tmp_path, path="bom.csv"))
    assert t.schema.names[0] == "ma"
    assert t.column("ho_ten").to_pylist() == NAMES


def test_csv_windows_1258_is_decoded_to_nfc(tmp_path: Path) -> None:
    raw = cp1258(CSV_TEXT)
    assert "\u0301".encode("cp1258") in raw  # the file really uses combining tone marks
    (tmp_path / "hotich.csv").write_bytes(raw)
    t = read(connector(tmp_path, path="hotich.csv", encoding="windows-1258"))
    names = t.column("ho_ten").to_pylist()
    assert names == NAMES
    assert all(unicodedata.is_normalized("NFC", n) for n in names)


def test_utf8_with_combining_marks_is_composed(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", CSV_TEXT)
    assert nfd != CSV_TEXT
    (tmp_path / "nfd.csv").write_text(nfd, encoding="utf-8")
    t = read(connector(tmp_path, path="nfd.csv"))
    assert t.column("ho_ten").to_pylist() == NAMES


def test_semicolon_delimiter_and_later_header_row(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("Báo cáo tháng 1\nma;ten\n1;An\n2;Bình\n", encoding="utf-8")
    t = read(connector(tmp_path, path="x.csv", delimiter=";", header_row=2))
    assert t.column("ten").to_pylist() == ["An", "Bình"]
    assert t.column(ROW_COLUMN).to_pylist() == [3, 4]


def test_xlsx_cells_become_text(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "KhaiSinh"
    ws.append(["ma", "ho_ten", "ngay_sinh", "can_nang"])
    ws.append([1, NAMES[0], dt.datetime(2024, 1, 2), 3.25])
    ws.append([2, NAMES[1], dt.date(2024, 1, 3), 3.0])
    ws.append([None, None, None, None])
    ws.append(["0003", NAMES[2], "2024-01-04", None])
    wb.save(tmp_path / "ks.xlsx")
    t = read(connector(tmp_path, path="ks.xlsx"))
    assert t.column("ma").to_pylist() == ["1", "2", "0003"]
    assert t.column("ho_ten").to_pylist() == NAMES[:3]
    assert t.column("ngay_sinh").to_pylist() == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert t.column("can_nang").to_pylist() == ["3.25", "3", None]
    assert t.column(ROW_COLUMN).to_pylist() == [2, 3, 5]  # the empty row 4 is skipped
    assert t.column(SOURCE_COLUMN).to_pylist()[0] == "ks.xlsx!KhaiSinh"


def test_jsonl_and_parquet_keep_their_types(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        '{"ma": 1, "ten": "An", "ok": true}\n{"ma": 2, "ten": "Bình", "ok": false}\n', encoding="utf-8"
    )
    t = read(connector(tmp_path, path="a.jsonl"))
    assert t.column("ma").type == pa.int64()
    assert t.column("ten").to_pylist() == ["An", "Bình"]
    assert t.column(ROW_COLUMN).to_pylist() == [1, 2]
    table = pa.table({"ma": pa.array([1, 2, 3], pa.int32()), "ten": ["a", "b", "c"]})
    pq.write_table(table, tmp_path / "p.parquet")
    t = read(connector(tmp_path, batch_rows=2, path="p.parquet"))
    assert t.column("ma").type == pa.int32()
    assert t.column(ROW_COLUMN).to_pylist() == [1, 2, 3]


def test_only_parquet_is_read_without_a_prefetch_thread(tmp_path: Path) -> None:
    pq.write_table(pa.table({"ma": [1]}), tmp_path / "p.parquet")
    (tmp_path / "c.csv").write_text("ma\n1\n", encoding="utf-8")
    assert connector(tmp_path, path="p.parquet").prefetch("p") is False  # Arrow decodes it in threads
    assert connector(tmp_path, path="*.*").prefetch("p") is True  # a CSV among the files
    assert connector(tmp_path, path="c.csv").prefetch("c") is True
    assert connector(tmp_path, path="none.parquet").prefetch("x") is True  # read() reports the error


def test_broken_jsonl_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"ma": 1}\n{"ma": 2\n', encoding="utf-8")
    with pytest.raises(SourceDataError) as info:
        read(connector(tmp_path, path="a.jsonl"))
    assert "a.jsonl, line 2" in info.value.message


def test_glob_over_a_folder_reads_every_file_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "2024-01.csv").write_text("ma,ten\n1,An\n2,Bình\n", encoding="utf-8")
    (folder / "2024-02.csv").write_text("ten,ma\nChâu,3\n", encoding="utf-8")  # other column order
    (folder / "notes.txt").write_text("not data", encoding="utf-8")
    t = read(connector(tmp_path, path="exports/*.csv"))
    assert t.column("ma").to_pylist() == ["1", "2", "3"]
    assert t.column(SOURCE_COLUMN).to_pylist() == ["exports/2024-01.csv"] * 2 + ["exports/2024-02.csv"]
    assert t.column(ROW_COLUMN).to_pylist() == [2, 3, 2]


def test_large_csv_comes_in_batches_of_about_batch_rows(tmp_path: Path) -> None:
    lines = "".join(f"{i},Tên {i},{i % 7}\n" for i in range(20_000))
    (tmp_path / "big.csv").write_text("a,b,c\n" + lines, encoding="utf-8")
    batches = list(connector(tmp_path, batch_rows=2_000, path="big.csv").read("rows", None))
    assert len(batches) > 3
    t = pa.Table.from_batches(batches)
    assert t.num_rows == 20_000
    assert t.column(ROW_COLUMN).to_pylist() == list(range(2, 20_002))


def test_missing_files_are_unavailable_and_unknown_extension_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailableError) as info:
        read(connector(tmp_path, path="incoming/*.csv"))
    assert info.value.retryable
    (tmp_path / "data.dat").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError):
        read(connector(tmp_path, path="data.dat"))
    with pytest.raises(ConfigError):
        connector(tmp_path, path="a.csv", encoding="klingon")


# --- malformed CSV ---------------------------------------------------------------------------------------

MALFORMED = (
    b"ma,ho_ten,ngay_sinh\n"
    b"1,An,2024-01-01\n"
    b"2,B\xc3\xacnh\n"  # line 3: a column short
    b"3,Ch\xc3\xa2u,2024-01-03,extra\n"  # line 4: a column too many
    b"4,D\xc5\xa9ng,2024-01-04\n"
    b"6,Giang,2024-01-06\n"
    b"7,Gi\xffa,2024-01-07\n"  # line 7: not UTF-8
    b"8,Hoa,2024-01-08\n"
    b'9,"Em,2024-01-09\n'  # line 9: a quote never closed (pyarrow alone would swallow line 10 with it)
    b"10,Khoa,2024-01-10\n"
)


@pytest.mark.parametrize(
    ("body", "line", "column", "words"),
    [
        ("ma,ten,x\n1,a,b\n2,b\n", 3, 2, "expected 3 columns, found 2"),
        ("ma,ten,x\n1,a,b\n2,b,c,d\n", 3, 4, "expected 3 columns, found 4"),
        ('ma,ten,x\n1,a,b\n2,"b,c\n3,d,e\n', 3, 2, "never closed"),
        ('ma,ten,x\n1,a,b\n2,"b\nc",d\n3,d,e\n', 3, 2, "line break"),
    ],
)
def test_malformed_csv_error_names_file_line_and_column(
    tmp_path: Path, body: str, line: int, column: int, words: str
) -> None:
    (tmp_path / "bad.csv").write_text(body, encoding="utf-8")
    with pytest.raises(SourceDataError) as info:
        read(connector(tmp_path, path="bad.csv"))
    assert info.value.details == {"file": "bad.csv", "line": line, "column": column}
    assert f"bad.csv, line {line}, column {column}: " in info.value.message
    assert words in info.value.message


@pytest.mark.parametrize(("encoding", "bad"), [("utf-8", b"\xc3\x28"), ("windows-1258", b"\x81")])
def test_invalid_bytes_name_line_and_byte_column(tmp_path: Path, encoding: str, bad: bytes) -> None:
    (tmp_path / "bad.csv").write_bytes(b"ma,ten\n1,An\n2,B" + bad + b"nh\n3,C\n")
    with pytest.raises(SourceDataError) as info:
        read(connector(tmp_path, path="bad.csv", encoding=encoding))
    assert info.value.details == {"file": "bad.csv", "line": 3, "column": 4}
    assert "not valid" in info.value.message


def test_quarantine_mode_hands_on_bad_rows_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_bytes(MALFORMED)
    t = read(connector(tmp_path, path="m.csv", on_error="quarantine"))
    rows = {r[ROW_COLUMN]: r for r in t.to_pylist()}
    assert t.column(ROW_COLUMN).to_pylist() == sorted(rows)
    good = {n: r["ho_ten"] for n, r in rows.items() if r[ERROR_COLUMN] is None}
    # line 10 loads: the quote left open on line 9 breaks line 9 only (every line is a record)
    assert good == {2: "An", 5: "Dũng", 6: "Giang", 8: "Hoa", 10: "Khoa"}
    bad = {n: r[ERROR_COLUMN] for n, r in rows.items() if r[ERROR_COLUMN] is not None}
    assert set(bad) == {3, 4, 7, 9}
    assert "expected 3 columns, found 2" in bad[3]
    assert "found 4" in bad[4]
    assert "not valid utf-8" in bad[7]
    assert "never closed" in bad[9]
    assert all(rows[n]["ma"] is None and rows[n]["ho_ten"] is None for n in bad)


# --- incremental -----------------------------------------------------------------------------------------


def test_incremental_by_mtime_reads_only_new_files(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    first = tmp_path / "in" / "a.csv"
    first.write_text("ma\n1\n2\n", encoding="utf-8")
    os.utime(first, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    c = connector(tmp_path, path="in/*.csv", incremental="mtime")
    assert c.streams()[0].write_mode.value == "append"
    assert read(c).num_rows == 2
    state = c.next_state("rows", None, None)
    assert state == {"mtime_ns": 1_700_000_000_000_000_000}
    assert read(connector(tmp_path, path="in/*.csv", incremental="mtime"), state).num_rows == 0
    (tmp_path / "in" / "b.csv").write_text("ma\n3\n", encoding="utf-8")
    t = read(connector(tmp_path, path="in/*.csv", incremental="mtime"), state)
    assert t.column("ma").to_pylist() == ["3"]


def test_incremental_by_cursor_column(tmp_path: Path) -> None:
    body = "ma,cap_nhat\n1,2024-01-01\n2,2024-02-01\n3,2024-03-01\n"
    (tmp_path / "a.csv").write_text(body, encoding="utf-8")
    c = connector(tmp_path, path="a.csv", cursor_field="cap_nhat", primary_key=["ma"])
    spec = c.streams()[0]
    assert (spec.cursor_field, spec.primary_key, spec.write_mode.value) == ("cap_nhat", ("ma",), "upsert")
    t = read(c, {"cursor": "2024-01-15"})
    assert t.column("ma").to_pylist() == ["2", "3"]
    # the dataset's cursor_field alone makes the read incremental
    ctx = ConnectorContext(base_dir=str(tmp_path), cursor_field="cap_nhat")
    by_dataset = FilesConnector.from_dict({"path": "a.csv"}, ctx)
    assert by_dataset.streams()[0].cursor_field == "cap_nhat"
    assert read(by_dataset, {"cursor": "2024-02-15"}).column("ma").to_pylist() == ["3"]  # type: ignore[arg-type]
    assert read(connector(tmp_path, path="a.csv"), {"cursor": "2024-02-15"}).num_rows == 3


def test_cursor_mode_skips_unchanged_files_so_bad_rows_do_not_come_back(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("ma,cap_nhat\n1,2024-01-01\n2,broken,row\n", encoding="utf-8")
    config = {"path": "a.csv", "cursor_field": "cap_nhat", "on_error": "quarantine"}
    c = connector(tmp_path, **config)
    first = read(c)
    assert first.column(ERROR_COLUMN).to_pylist() == [None, "expected 2 columns, found 3: '2,broken,row'"]
    state = c.next_state("rows", None, "2024-01-01")
    assert state == {"cursor": "2024-01-01", "mtime_ns": path.stat().st_mtime_ns}
    assert read(connector(tmp_path, **config), state).num_rows == 0
    with path.open("a", encoding="utf-8") as fh:
        fh.write("3,2024-01-03\n")
    later = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))
    again = read(connector(tmp_path, **config), state)
    assert again.column("ma").to_pylist() == [None, "3"]  # the changed file: its bad row comes again


def test_text_cursor_compares_as_the_contracts_type(tmp_path: Path) -> None:
    body = "ma,cap_nhat\n1,2024-01-01T08:00:00+07:00\n2,2024-01-01T09:30:00+07:00\n3,hôm qua\n"
    (tmp_path / "a.csv").write_text(body, encoding="utf-8")
    contract = pa.schema([("ma", pa.string()), ("cap_nhat", pa.timestamp("us", tz="UTC"))])
    ctx = ConnectorContext(base_dir=str(tmp_path), cursor_field="cap_nhat", arrow_schema=contract)
    c = FilesConnector.from_dict({"path": "a.csv"}, ctx)
    # the runner stores the typed maximum (UTC); as text it would sort before both rows
    t = read(c, {"cursor": "2024-01-01T01:00:00+00:00"})  # type: ignore[arg-type]
    assert t.column("ma").to_pylist() == ["2", "3"]  # 3 does not parse: kept for the validator to report
    assert t.column("cap_nhat").to_pylist()[0] == "2024-01-01T09:30:00+07:00"  # values stay text


# --- conformance -----------------------------------------------------------------------------------------


class TestCsvCursorConformance(ConnectorConformance):
    @pytest.fixture
    def case(self, tmp_path: Path) -> ConformanceCase:
        path = tmp_path / "ks.csv"
        path.write_text("ma,cap_nhat\n1,2024-01-01\n2,2024-01-02\n", encoding="utf-8")

        def add_rows() -> None:
            with path.open("a", encoding="utf-8") as fh:
                fh.write("3,2024-01-03\n")
            later = path.stat().st_mtime_ns + 1_000_000_000  # a later clock tick, however fast the test
            os.utime(path, ns=(later, later))

        return ConformanceCase(
            FilesConnector,
            config={"path": "ks.csv", "incremental": "cursor", "cursor_field": "cap_nhat"},
            context=ConnectorContext(base_dir=str(tmp_path)),
            unreachable_config={"path": "nowhere/*.csv"},
            add_rows=add_rows,
        )


@pytest.mark.parametrize("fmt", ["xlsx", "jsonl", "parquet"])
def test_other_formats_conform(tmp_path: Path, fmt: str) -> None:
    if fmt == "xlsx":
        wb = openpyxl.Workbook()
        wb.active.append(["ma", "ten"])
        wb.active.append([1, "An"])
        wb.save(tmp_path / "f.xlsx")
    elif fmt == "jsonl":
        (tmp_path / "f.jsonl").write_text('{"ma": 1, "ten": "An"}\n', encoding="utf-8")
    else:
        pq.write_table(pa.table({"ma": [1], "ten": ["An"]}), tmp_path / "f.parquet")
    check_conformance(
        ConformanceCase(
            FilesConnector,
            config={"path": f"f.{fmt}"},
            context=ConnectorContext(base_dir=str(tmp_path)),
            unreachable_config={"path": f"missing.{fmt}"},
        )
    )
