import codecs
import csv
import datetime as dt
import gzip
import io
import json
import tempfile
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketing.analytics.importing import ImportFileError, SourceInfo, iter_frames, sniff
from marketing.analytics.importing import formats as formats_module

MB = 1024 * 1024


def _write(tmp_path, name, content, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


def _frames(path, *, chunk_rows=100_000, **sniff_kwargs):
    info = sniff(path, name=path.name, max_bytes=sniff_kwargs.pop("max_bytes", 10 * MB))
    return info, list(iter_frames(path, info, name=path.name, chunk_rows=chunk_rows))


def _records(frames):
    return pd.concat(frames, ignore_index=True).to_dict("records")


# ------------------------------------------------------------------ file-level refusals


def test_empty_file(tmp_path):
    path = _write(tmp_path, "empty.csv", b"")
    with pytest.raises(ImportFileError) as exc:
        sniff(path, name="empty.csv", max_bytes=MB)
    assert str(exc.value) == "empty.csv: file is empty"


def test_whitespace_only_file_is_empty(tmp_path):
    path = _write(tmp_path, "blank.csv", "\ufeff \n\n  \n", "utf-8")
    with pytest.raises(ImportFileError, match="file is empty"):
        sniff(path, name="blank.csv", max_bytes=MB)


def test_file_over_the_limit_names_both_sizes(tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as fh:  # sparse: no disk space used
        fh.truncate(int(312.4 * MB))
    with pytest.raises(ImportFileError) as exc:
        sniff(path, name="huge.csv", max_bytes=200 * MB)
    assert exc.value.reason == "file is 312.4 MB, over the 200.0 MB limit"
    small = _write(tmp_path, "small.csv", "a\n" * 1024)
    with pytest.raises(ImportFileError, match=r"file is 2\.0 KB, over the 1\.0 KB limit"):
        sniff(small, name="small.csv", max_bytes=1024)


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), ""),
        (bytes(range(256)) * 4, ""),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, ".xls workbook"),
        (gzip.compress(b"a,b\n1,2\n"), "gzip"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
    ],
)
def test_binary_files_are_refused(tmp_path, content, hint):
    path = _write(tmp_path, "upload.csv", content)
    with pytest.raises(ImportFileError) as exc:
        sniff(path, name="upload.csv", max_bytes=MB)
    assert exc.value.reason.startswith("binary file, not CSV/JSON/XLSX")
    assert hint in exc.value.reason


def test_zip_that_is_not_a_workbook_is_refused(tmp_path):
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data.csv", "a,b\n1,2\n")
    with pytest.raises(ImportFileError, match="binary file, not CSV/JSON/XLSX"):
        sniff(path, name="data.zip", max_bytes=MB)


def test_xlsx_name_without_zip_content_is_refused(tmp_path):
    path = _write(tmp_path, "fake.xlsx", "sku,title\nA,B\n")
    with pytest.raises(ImportFileError, match="not a valid .xlsx workbook"):
        sniff(path, name="fake.xlsx", max_bytes=MB)


def test_duplicate_header_names(tmp_path):
    path = _write(tmp_path, "d.csv", "sku,title,sku\nA,B,C\n")
    with pytest.raises(ImportFileError) as exc:
        sniff(path, name="d.csv", max_bytes=MB)
    assert exc.value.column == "sku"
    assert exc.value.row == 1
    assert "duplicate column name 'sku'" in exc.value.reason


def test_first_row_of_numbers_means_no_header(tmp_path):
    path = _write(tmp_path, "n.csv", "1,2.5,3\n4,5,6\n")
    with pytest.raises(ImportFileError, match="no header row"):
        sniff(path, name="n.csv", max_bytes=MB)


def test_empty_first_line_means_no_header(tmp_path):
    path = _write(tmp_path, "n.csv", ",,\n1,2,3\n")
    with pytest.raises(ImportFileError, match="no header row"):
        sniff(path, name="n.csv", max_bytes=MB)


def test_header_without_data_rows(tmp_path):
    path = _write(tmp_path, "h.csv", "sku,title\n\n")
    with pytest.raises(ImportFileError, match="header row but no data rows"):
        sniff(path, name="h.csv", max_bytes=MB)


def test_reserved_column_name(tmp_path):
    path = _write(tmp_path, "r.csv", "_row,sku\n1,A\n")
    with pytest.raises(ImportFileError, match="reserved"):
        sniff(path, name="r.csv", max_bytes=MB)


# ---------------------------------------------------------------------------- encodings

TEXT = "sku;title;price\nA1;Crème brûlée bowl;12,50\nB2;Zoë's mug;3\n"


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
        (TEXT.encode("latin-1"), "latin-1"),
    ],
)
def test_encodings_are_detected_and_decoded(tmp_path, raw, encoding):
    path = _write(tmp_path, "enc.csv", raw)
    info, frames = _frames(path)
    assert info.encoding == encoding
    assert info.delimiter == ";"
    assert info.columns == ["sku", "title", "price"]  # no BOM glued to the first name
    assert _records(frames) == [
        {"sku": "A1", "title": "Crème brûlée bowl", "price": "12,50", "_row": 2},
        {"sku": "B2", "title": "Zoë's mug", "price": "3", "_row": 3},
    ]


def test_windows_1252_is_picked_when_its_extra_characters_appear(tmp_path):
    text = "sku,title\nA1,“Smart” price €5\n"
    path = _write(tmp_path, "w.csv", text.encode("cp1252"))
    info, frames = _frames(path)
    assert info.encoding == "cp1252"
    assert frames[0]["title"].tolist() == ["“Smart” price €5"]


def test_invalid_utf8_late_in_the_file_falls_back_for_the_whole_file(tmp_path):
    body = "sku,title\n" + "".join(f"S{i},plain\n" for i in range(20_000))
    raw = body.encode() + "Z1,caf\xe9\n".encode("latin-1")
    path = _write(tmp_path, "late.csv", raw)
    info, frames = _frames(path)
    assert info.encoding == "latin-1"  # past the 64 KB sniff window, still found
    assert _records(frames)[-1] == {"sku": "Z1", "title": "café", "_row": 20_002}


def test_utf16_is_streamed_in_chunks(tmp_path):
    rows = "".join(f"S{i},title {i}\n" for i in range(25))
    path = _write(
        tmp_path, "u16.csv", codecs.BOM_UTF16_LE + f"sku,title\n{rows}".encode("utf-16-le")
    )
    info, frames = _frames(path, chunk_rows=10)
    assert [len(f) for f in frames] == [10, 10, 5]
    assert frames[2]["sku"].tolist()[-1] == "S24"
    assert frames[2]["_row"].tolist()[-1] == 26


# --------------------------------------------------------------------------- delimiters


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters_are_sniffed(tmp_path, delimiter):
    lines = [["sku", "title", "price"], ["A1", "Mug, blue", "12.50"], ["B2", "Plate", "3"]]
    text = "\n".join(delimiter.join(f'"{c}"' if "," in c else c for c in line) for line in lines)
    info, frames = _frames(_write(tmp_path, "d.txt", text + "\n"))
    assert info.delimiter == delimiter
    assert frames[0]["title"].tolist() == ["Mug, blue", "Plate"]


def test_commas_inside_quotes_do_not_fool_the_sniffer(tmp_path):
    text = 'name;note;price\n"Shirt, blue, large";"a, b, c";12,50\n"Hat, red";"x, y";3\n'
    info, frames = _frames(_write(tmp_path, "q.csv", text))
    assert info.delimiter == ";"
    assert frames[0]["name"].tolist() == ["Shirt, blue, large", "Hat, red"]


def test_single_column_file(tmp_path):
    info, frames = _frames(_write(tmp_path, "one.csv", "sku\nA\nB\n"))
    assert info.delimiter == ","
    assert info.columns == ["sku"]
    assert frames[0]["sku"].tolist() == ["A", "B"]


def test_sniffing_helper_falls_back_to_counting():
    assert formats_module.sniff_delimiter("a|b|c\n1|2|3\n4|5|6\n") == "|"
    assert formats_module.sniff_delimiter("only\nvalues\n") == ","


# ------------------------------------------------------------------- CSV record handling


def test_quoted_newlines_keep_record_numbering(tmp_path):
    text = 'sku,text\nA,"line one\r\nline two"\nB,"x\n\ny"\nC,plain\n'
    info, frames = _frames(_write(tmp_path, "nl.csv", text))
    rows = _records(frames)
    assert [r["text"] for r in rows] == ["line one\r\nline two", "x\n\ny", "plain"]
    assert [r["_row"] for r in rows] == [2, 3, 4]  # records, not physical lines


def test_blank_lines_are_dropped_but_counted_in_row_numbers(tmp_path):
    text = "sku,title\nA,one\n\n,\nB,two\n"
    _info, frames = _frames(_write(tmp_path, "b.csv", text))
    assert [(r["sku"], r["_row"]) for r in _records(frames)] == [("A", 2), ("B", 5)]


def test_missing_trailing_fields_are_blank_and_extra_fields_are_kept_aside(tmp_path):
    text = "sku,title,price\nA,one\nB,two,3,oops,more\nC,three,4\n"
    _info, frames = _frames(_write(tmp_path, "r.csv", text))
    rows = _records(frames)
    assert rows[0] == {"sku": "A", "title": "one", "price": "", "_row": 2, "_extra": ""}
    assert rows[1]["_extra"] == "oops,more"
    assert rows[2]["_extra"] == ""


def test_far_too_many_fields_stop_the_import(tmp_path):
    text = "a,b\n" + "1,2\n" * 10 + ",".join(["x"] * 12) + "\n"
    path = _write(tmp_path, "bad.csv", text)
    info = sniff(path, name="bad.csv", max_bytes=MB)  # the sample is fine
    with pytest.raises(ImportFileError, match="line 12 has 12 fields but the header has 2"):
        list(iter_frames(path, info, name="bad.csv"))


def test_unbalanced_quote_stops_the_import(tmp_path):
    text = 'sku,title\nA,"never closed\nB,two\n'
    path = _write(tmp_path, "q.csv", text)
    with pytest.raises(ImportFileError, match="never closed"):
        info = sniff(path, name="q.csv", max_bytes=MB)
        list(iter_frames(path, info, name="q.csv"))


def test_chunks_are_streamed_with_continuous_row_numbers(tmp_path):
    text = "sku\n" + "".join(f"S{i}\n" for i in range(5))
    _info, frames = _frames(_write(tmp_path, "c.csv", text), chunk_rows=2)
    assert [f["_row"].tolist() for f in frames] == [[2, 3], [4, 5], [6]]
    assert all(f["sku"].dtype == object for f in frames)


def test_blank_header_cells_are_named_by_position(tmp_path):
    info, frames = _frames(_write(tmp_path, "p.csv", ",sku,title,\n0,A,Mug,\n"))
    assert info.columns == ["column_1", "sku", "title"]
    assert frames[0]["column_1"].tolist() == ["0"]


def test_sample_is_the_first_five_records(tmp_path):
    text = "sku,qty\n" + "".join(f"S{i},{i}\n" for i in range(9))
    info = sniff(_write(tmp_path, "s.csv", text), name="s.csv", max_bytes=MB)
    assert info == SourceInfo(
        format="csv",
        encoding="utf-8",
        delimiter=",",
        columns=["sku", "qty"],
        sample=[{"sku": f"S{i}", "qty": str(i)} for i in range(5)],
    )


# --------------------------------------------------------------------------------- JSON

RECORDS = [
    {"sku": "A1", "price": 12.5, "in_stock": True, "tags": ["x", "y"]},
    {"sku": "B2", "price": 3, "in_stock": None, "brand": "Acme"},
    {"sku": "C3", "price": 4.0},
]


def test_json_array_of_objects(tmp_path):
    path = _write(tmp_path, "p.json", json.dumps(RECORDS, indent=2))
    info, frames = _frames(path)
    assert (info.format, info.encoding, info.delimiter) == ("json", "utf-8", None)
    assert info.columns == ["sku", "price", "in_stock", "tags", "brand"]
    rows = _records(frames)
    assert rows[0] == {
        "sku": "A1",
        "price": "12.5",
        "in_stock": "true",
        "tags": '["x", "y"]',
        "brand": "",
        "_row": 1,
    }
    assert rows[1]["in_stock"] == "" and rows[1]["brand"] == "Acme"
    assert rows[2]["price"] == "4"
    assert [r["_row"] for r in rows] == [1, 2, 3]


def test_json_array_is_read_incrementally(tmp_path, monkeypatch):
    monkeypatch.setattr(formats_module, "_BLOCK", 7)  # objects straddle every buffer edge
    records = [{"sku": f"S{i}", "n": i * 1000, "t": "x" * (i % 5)} for i in range(40)]
    path = _write(tmp_path, "p.json", json.dumps(records))
    info, frames = _frames(path, chunk_rows=16)
    assert [len(f) for f in frames] == [16, 16, 8]
    rows = _records(frames)
    assert [r["n"] for r in rows] == [str(i * 1000) for i in range(40)]
    assert rows[-1]["_row"] == 40


@pytest.mark.parametrize(
    ("content", "message", "row"),
    [
        ('{"sku": "A"}', "list of objects", None),
        ('{\n "data": [{"sku": "A"}]\n}', "list of objects", None),
        ('[{"sku": "A"}, 5]', "record 2 is a number", 2),
        ('[{"sku": "A"}, {"sku": ]', "invalid JSON in record 2", 2),
        ('[{"sku": "A"}', "never closed", None),
        ("[]", "file has no records", None),
        ("[{}, {}]", "records have no fields", None),
    ],
)
def test_json_that_is_not_a_list_of_objects(tmp_path, content, message, row):
    path = _write(tmp_path, "bad.json", content)
    with pytest.raises(ImportFileError, match=message) as exc:
        sniff(path, name="bad.json", max_bytes=MB)
    assert exc.value.row == row


def test_json_lines(tmp_path):
    lines = [json.dumps(r) for r in RECORDS]
    path = _write(tmp_path, "p.jsonl", lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n")
    info, frames = _frames(path)
    assert info.format == "jsonl"
    rows = _records(frames)
    assert [r["sku"] for r in rows] == ["A1", "B2", "C3"]
    assert [r["_row"] for r in rows] == [1, 3, 4]  # line numbers; the blank line is skipped


def test_json_lines_detected_by_content(tmp_path):
    path = _write(tmp_path, "export.json", '{"sku": "A"}\n{"sku": "B"}\n')
    info, frames = _frames(path)
    assert info.format == "jsonl"
    assert _records(frames)[1]["sku"] == "B"


def test_json_lines_keys_first_seen_late_still_load(tmp_path, monkeypatch):
    monkeypatch.setattr(formats_module, "_SNIFF_JSON_RECORDS", 2)
    path = _write(tmp_path, "p.jsonl", '{"a": 1}\n{"a": 2}\n{"a": 3, "late": "x"}\n')
    info, frames = _frames(path)
    assert info.columns == ["a"]
    assert _records(frames)[2]["late"] == "x"


def test_bad_json_line_after_the_sniffed_part_stops_the_import(tmp_path, monkeypatch):
    monkeypatch.setattr(formats_module, "_SNIFF_JSON_RECORDS", 2)
    good = "".join(f'{{"a": {i}}}\n' for i in range(10))
    path = _write(tmp_path, "p.jsonl", good + "[1, 2]\n")
    info = sniff(path, name="p.jsonl", max_bytes=MB)
    with pytest.raises(ImportFileError) as exc:
        list(iter_frames(path, info, name="p.jsonl"))
    assert exc.value.row == 11
    assert "must be a JSON object, found a list" in exc.value.reason


def test_json_lines_line_that_is_not_an_object_is_reported_at_sniff(tmp_path):
    path = _write(tmp_path, "p.jsonl", '{"a": 1}\n"text"\n')
    with pytest.raises(ImportFileError) as exc:
        sniff(path, name="p.jsonl", max_bytes=MB)
    assert (exc.value.row, exc.value.file) == (2, "p.jsonl")


# --------------------------------------------------------------------------------- XLSX


def _workbook(path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Products"
    ws.append(["sku", "title", "price", "added", "customer"])
    ws.append(["A1", "Mug", 12.5, dt.datetime(2024, 3, 1, 9, 30), 17850.0])
    ws.append(["B2", '=HYPERLINK("http://x","Plate")', "=SUM(C2:C2)", dt.date(2024, 3, 2), None])
    ws.append([])  # an empty row: skipped, numbering continues
    ws.append(["C3", "Bowl", 3, None, 12, "stray"])
    other = wb.create_sheet("Ignored")
    other.append(["nothing", "here"])
    wb.save(path)
    return path


def test_xlsx_first_sheet_values_as_text_and_formulas_never_evaluated(tmp_path):
    path = _workbook(tmp_path / "products.xlsx")
    info, frames = _frames(path)
    assert (info.format, info.encoding, info.delimiter) == ("xlsx", None, None)
    assert info.columns == ["sku", "title", "price", "added", "customer"]
    rows = _records(frames)
    assert rows[0] | {"_extra": ""} == {
        "sku": "A1",
        "title": "Mug",
        "price": "12.5",
        "added": "2024-03-01 09:30:00",
        "customer": "17850",
        "_row": 2,
        "_extra": "",
    }
    assert rows[1]["title"] == '=HYPERLINK("http://x","Plate")'
    assert rows[1]["price"] == "=SUM(C2:C2)"
    assert rows[1]["added"].startswith("2024-03-02")
    assert rows[2]["sku"] == "C3" and rows[2]["_row"] == 5
    assert rows[2]["_extra"] == "stray"


def test_xlsx_detected_by_content_even_with_another_name(tmp_path):
    path = _workbook(tmp_path / "upload.bin")
    info = sniff(path, name="upload.bin", max_bytes=10 * MB)
    assert info.format == "xlsx"
    assert info.sample[0]["sku"] == "A1"


def test_xlsx_zip_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"\x00" * (8 * MB))  # ~1000:1
    with pytest.raises(ImportFileError, match="zip bomb"):
        sniff(path, name="bomb.xlsx", max_bytes=10 * MB)


def test_xlsx_expanding_far_beyond_the_upload_limit_is_refused(tmp_path):
    path = tmp_path / "big.xlsx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        for i in range(3):  # each part under the ratio check's 1 MB floor
            zf.writestr(f"xl/worksheets/sheet{i}.xml", b"<row/>" * 150_000)
    with pytest.raises(ImportFileError, match=r"expands to 2\.6 MB, over 20× the upload limit"):
        sniff(path, name="big.xlsx", max_bytes=path.stat().st_size + 1)


def test_damaged_xlsx(tmp_path):
    good = _workbook(tmp_path / "good.xlsx").read_bytes()
    path = _write(tmp_path, "bad.xlsx", good[: len(good) // 2])
    with pytest.raises(ImportFileError, match="xlsx|workbook"):
        sniff(path, name="bad.xlsx", max_bytes=10 * MB)


# ------------------------------------------------------------------ property: CSV round trip

_CELL = st.text(alphabet=st.sampled_from("ab Z09é€\"\n\r'.-"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.from_regex(r"[A-Z][0-9]{1,4}", fullmatch=True), _CELL, _CELL),
        min_size=1,
        max_size=12,
    ),  # fmt: skip
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
)
def test_csv_round_trip(rows, delimiter, encoding):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["sku", "title", "note"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "round.csv"
        path.write_bytes(buffer.getvalue().encode(encoding))
        info, frames = _frames(path, chunk_rows=5)
    assert info.delimiter == delimiter
    got = [(r["sku"], r["title"], r["note"]) for r in _records(frames)]
    assert got == rows
    assert [r["_row"] for r in _records(frames)] == list(range(2, len(rows) + 2))


# --------------------------------------------------------------- hostile and odd input

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("name", "content", "row"),
    [
        ("deep.json", DEEP, 1),
        ("deep.json", '[{"sku": "A"}, {"sku": ' + DEEP + "}]", 2),
        ("deep.jsonl", '{"sku": "A"}\n{"sku": ' + DEEP + "}\n", 2),
        ("deep.jsonl", DEEP + "\n", 1),
    ],
)
def test_deeply_nested_json_is_a_file_error_naming_the_record(tmp_path, name, content, row):
    path = _write(tmp_path, name, content)
    with pytest.raises(ImportFileError, match="nested too deeply") as exc:
        sniff(path, name=name, max_bytes=10 * MB)
    assert (exc.value.file, exc.value.row) == (name, row)


def test_deeply_nested_json_line_after_the_sniffed_part_stops_the_import(tmp_path, monkeypatch):
    monkeypatch.setattr(formats_module, "_SNIFF_JSON_RECORDS", 1)
    good = "".join(f'{{"a": {i}}}\n' for i in range(10))
    path = _write(tmp_path, "p.jsonl", good + '{"a": ' + DEEP + "}\n")
    info = sniff(path, name="p.jsonl", max_bytes=10 * MB)
    with pytest.raises(ImportFileError, match="nested too deeply") as exc:
        list(iter_frames(path, info, name="p.jsonl"))
    assert exc.value.row == 11


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("big.json", '[{"a": 1}, {"a": ' + "9" * 5000 + "}]"),
        ("big.jsonl", '{"a": 1}\n{"a": ' + "9" * 5000 + "}\n"),
    ],
)
def test_number_with_thousands_of_digits_is_a_file_error(tmp_path, name, content):
    path = _write(tmp_path, name, content)
    with pytest.raises(ImportFileError, match="a number has too many digits") as exc:
        sniff(path, name=name, max_bytes=MB)
    assert exc.value.row == 2


def test_nul_in_a_json_cell_marks_the_row_and_the_sample_shows_no_nul(tmp_path):
    path = _write(
        tmp_path,
        "p.jsonl",
        '{"sku": "A\\u00001", "title": "Mug\\u0000"}\n{"sku": "B", "title": "Pl\\u0000ate"}\n'
        '{"sku": "C", "title": "ok", "tags": ["x\\u0000"]}\n',
    )
    info, frames = _frames(path)
    assert info.sample[0] == {"sku": "A\u24001", "title": "Mug\u2400", "tags": ""}
    assert not any("\x00" in str(v) for r in info.sample for v in r.values())
    rows = _records(frames)
    assert [r["_nul"] for r in rows] == ["sku", "title", ""]  # the first such column
    assert rows[2]["tags"] == '["x\\u0000"]'  # nested values are JSON text: NUL stays escaped


def test_no_nul_column_without_nul(tmp_path):
    _, frames = _frames(_write(tmp_path, "p.jsonl", '{"sku": "A"}\n'))
    assert "_nul" not in frames[0]


def test_nul_in_a_json_key_is_a_file_error(tmp_path):
    path = _write(tmp_path, "p.json", '[{"sku\\u0000": "A", "title": "B"}]')
    with pytest.raises(ImportFileError, match="name of column 1 contains a NUL character"):
        sniff(path, name="p.json", max_bytes=MB)


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        (codecs.BOM_UTF8 + b"sku,title\nA\x001,Mug\n", "NUL bytes"),
        (codecs.BOM_UTF16_LE + "sku,title\nA1,Mug\n".encode("utf-16-le") + b"\x00\x00", "NUL"),
        (
            codecs.BOM_UTF16_LE
            + ("sku,title\n" + "A1,Mug\n" * 5000 + "B\x00,x\n").encode("utf-16-le"),
            "NUL",
        ),
    ],
)
def test_nul_in_a_csv_with_byte_order_mark_makes_it_binary(tmp_path, content, hint):
    """As without a BOM: pandas' parser would silently cut the cell at the NUL."""
    path = _write(tmp_path, "bom.csv", content)
    with pytest.raises(ImportFileError, match="binary file") as exc:
        sniff(path, name="bom.csv", max_bytes=MB)
    assert hint in exc.value.reason


def test_nul_column_name_is_reserved(tmp_path):
    path = _write(tmp_path, "r.csv", "sku,_nul\nA,1\n")
    with pytest.raises(ImportFileError, match="reserved"):
        sniff(path, name="r.csv", max_bytes=MB)


@pytest.mark.parametrize("complete", [True, False])
def test_old_mac_line_endings(tmp_path, monkeypatch, complete):
    if not complete:
        monkeypatch.setattr(formats_module, "SNIFF_BYTES", 40)  # the head ends mid-record
    content = 'sku;title;price\r"A1";Mug;12,50\rB2;"Plate; big";8\rC3;Bowl;3\r'
    info, frames = _frames(_write(tmp_path, "mac.csv", content))
    assert (info.delimiter, info.columns) == (";", ["sku", "title", "price"])
    assert [(r["sku"], r["title"], r["_row"]) for r in _records(frames)] == [
        ("A1", "Mug", 2),
        ("B2", "Plate; big", 3),
        ("C3", "Bowl", 4),
    ]


def test_workbook_cell_with_nul_marks_the_row():
    # XML cannot normally carry NUL (openpyxl refuses to write one): checked all the same.
    frame = formats_module._xlsx_frame(
        ["sku", "title"], [["A", "B\x00"], ["Mug", "Pan"]], [2, 3], ["", ""], False
    )
    assert frame["_nul"].tolist() == ["", "sku"]


def test_nul_in_a_json_key_first_seen_after_the_sniffed_records_stops_the_import(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(formats_module, "_SNIFF_JSON_RECORDS", 2)
    good = "".join(f'{{"a": {i}}}\n' for i in range(10))
    path = _write(tmp_path, "p.jsonl", good + '{"a": 11, "t\\u0000g": "x"}\n')
    info = sniff(path, name="p.jsonl", max_bytes=MB)
    with pytest.raises(ImportFileError, match="field name contains a NUL character") as exc:
        list(iter_frames(path, info, name="p.jsonl"))
    assert exc.value.row == 11
