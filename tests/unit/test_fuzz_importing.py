"""Fuzzing the import core: whatever the bytes, sniff -> iter_frames -> Cleaner.clean either
stops with a clean `ImportFileError` or accounts for every row.

For every generated file and every import kind (with the automatic mapping and with every
field forced onto some column, so the parsers see garbage):

* the only exception that escapes is `ImportFileError`, whose message is short, with no
  traceback text, no NUL and no server path;
* every issue names a row the file has (one of the frames' `_row` numbers) and a column
  the file has ("" for a whole-row problem), and shows the value cut and NUL-free;
* rows kept + rows rejected + exact duplicate lines (+ lines the invoice layout skips)
  == rows read, and no row is both kept and rejected;
* what is kept fits the database: no NUL or lone surrogate in any text, no text longer
  than its column.

Set TAILOR_FUZZ_EXAMPLES=500 (say) to search harder than the suite's quick run.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import random
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from marketing.analytics.importing import (
    FIELDS,
    KINDS,
    Cleaner,
    CleanOptions,
    ImportFileError,
    auto_map,
    iter_frames,
    sniff,
)
from marketing.analytics.importing.errors import VALUE_MAX_CHARS
from marketing.analytics.importing.formats import ROW_COLUMN
from tests.unit.conftest import UPLOAD_TIME

# A warning is a bug too: numpy's go to the worker's log, once per line of code.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

MAX_BYTES = 8 * 1024 * 1024
EXAMPLES = int(os.environ.get("TAILOR_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# Text columns of the cleaned frames with the width of their database column.
_OUTPUT_LIMITS = {
    "products": {"sku": 100, "title": 500, "category": 300, "brand": 200, "url": 1000,
                 "image_url": 1000},
    "customers": {"external_id": 100, "email": 254, "name": 200, "country": 100,
                  "language": 8},
    "events": {"customer": 100, "sku": 100, "source": 100},
    "results": {"customer": 100, "email": 254, "sku": 100},
}  # fmt: skip


# ------------------------------------------------------------------------ the property


def note_outcome(what: str) -> None:
    """Count what the generated files led to (pytest --hypothesis-show-statistics)."""
    if currently_in_test_context():
        event(what)


def _assert_clean_file_error(exc: ImportFileError, where: Path) -> None:
    message = str(exc)
    assert message.strip(), "an ImportFileError without a message"
    assert "Traceback" not in message and 'File "' not in message, message
    assert str(where) not in message, f"the server path leaks into {message!r}"
    assert "\x00" not in message, message
    assert len(message) < 2000, message[:300]


def forced_mapping(kind: str, columns: list[str], seed: int) -> dict[str, str | None]:
    """Every field of the kind on some column of the file (each column used once at most,
    the automatic guesses kept), so every parser meets whatever the file holds."""
    mapping = auto_map(columns, kind)
    free = [c for c in columns if c not in set(mapping.values())]
    random.Random(seed).shuffle(free)
    for name in mapping:
        if mapping[name] is None and free:
            mapping[name] = free.pop()
    return mapping


def _kept_rows(kind: str, parts) -> list[int]:
    if kind == "products":
        frames = [p.products for p in parts]
    elif kind == "customers":
        frames = [p.customers for p in parts]
    elif kind == "campaign_results":
        frames = [p.results for p in parts]
    else:  # events, reviews, online_retail: one event per kept row
        frames = [p.events for p in parts]
    return [int(r) for f in frames for r in f[ROW_COLUMN].tolist()]


def _assert_fits_database(kind: str, parts) -> None:
    outputs = {
        "products": [p.products for p in parts],
        "customers": [p.customers for p in parts],
        "events": [p.events for p in parts],
        "results": [p.results for p in parts],
    }
    for table, frames in outputs.items():
        for frame in frames:
            for column in frame.columns:
                if frame[column].dtype != object:
                    continue
                for value in frame[column].tolist():
                    # attributes: a dict of column name -> text
                    texts = [*value.keys(), *value.values()] if isinstance(value, dict) else [value]
                    for text in texts:
                        if not isinstance(text, str):
                            continue
                        assert "\x00" not in text, (kind, table, column)
                        text.encode("utf-8")  # a lone surrogate: no database can store it
                        limit = _OUTPUT_LIMITS.get(table, {}).get(column)
                        assert limit is None or len(text) <= limit, (kind, table, column)


def check_import(path: Path, name: str, *, chunk_rows: int = 3, seed: int = 0) -> None:
    """The whole property for one file (see the module docstring)."""
    try:
        info = sniff(path, name=name, max_bytes=MAX_BYTES)
        frames = list(iter_frames(path, info, name=name, chunk_rows=chunk_rows))
    except ImportFileError as exc:
        _assert_clean_file_error(exc, path)
        note_outcome(f"file refused: {exc.reason[:40]}")
        return
    note_outcome(f"read as {info.format}")
    assert info.format in ("csv", "json", "jsonl", "xlsx")
    columns = set(info.columns)
    file_rows: list[int] = [int(r) for f in frames for r in f[ROW_COLUMN].tolist()]
    assert len(file_rows) == len(set(file_rows)), "a row number given twice"
    assert all(r >= 1 for r in file_rows)
    for sample in info.sample:
        json.dumps(sample, ensure_ascii=False).encode("utf-8")  # stored on the upload
    for kind in KINDS:
        for mapping in (auto_map(info.columns, kind), forced_mapping(kind, info.columns, seed)):
            _check_kind(kind, mapping, frames, file_rows, columns, path)


def _check_kind(kind, mapping, frames, file_rows, columns, path) -> None:
    options = CleanOptions(catalog_id=1, default_time=UPLOAD_TIME, non_product_patterns=["^POST"])
    try:
        cleaner = Cleaner(kind, mapping, options)
        parts = [cleaner.clean(frame.copy()) for frame in frames]
    except ImportFileError as exc:
        _assert_clean_file_error(exc, path)
        return
    note_outcome(f"cleaned as {kind}")
    counts = cleaner.counts
    assert counts["rows_read"] == len(file_rows)
    known_rows = set(file_rows)
    issues = [i for p in parts for i in p.issues]
    for issue in issues:
        assert issue.row in known_rows, (kind, issue)
        assert issue.column == "" or issue.column in columns, (kind, issue, columns)
        assert issue.reason and "Traceback" not in issue.reason, issue
        assert issue.action in ("rejected", "kept as text"), issue
        assert len(issue.value) <= VALUE_MAX_CHARS and "\x00" not in issue.value, issue
    rejected = {i.row for i in issues if i.action == "rejected"}
    assert counts["rejected_rows"] == len(rejected), (kind, counts, sorted(rejected))
    kept = _kept_rows(kind, parts)
    assert len(kept) == len(set(kept)), (kind, "a row kept twice")
    assert not rejected & set(kept), (kind, "rows both kept and rejected")
    skipped = counts["non_product_lines"] + counts["zero_price_lines"]
    accounted = len(kept) + len(rejected) + counts["duplicate_lines"] + skipped
    assert accounted == counts["rows_read"], (kind, len(kept), dict(counts))
    kept_as_text = [i for i in issues if i.action == "kept as text"]
    assert not {i.row for i in kept_as_text} - set(kept), (kind, "annotated a row not kept")
    _assert_fits_database(kind, parts)


def check_bytes(content: bytes, name: str, **kwargs) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        check_import(path, name, **kwargs)


# ------------------------------------------------------------------------ strategies

NAMES = st.sampled_from(
    ["upload.csv", "upload.txt", "upload.tsv", "upload.json", "upload.jsonl", "upload",
     "upload.xlsx", "upload.dat"]
)  # fmt: skip

# Headers the kinds recognise, a few of everything, plus junk and blanks.
_ALIASES = sorted({a for specs in FIELDS.values() for s in specs for a in s.aliases[:2]})
HEADER = st.one_of(
    st.sampled_from(_ALIASES),
    st.sampled_from(["", " ", "colour", "note", "_row", "Σ", "sku ", " SKU", "id"]),
    st.text(max_size=6),
)

# Values the parsers care about, and text that breaks parsers and databases.
_SPECIAL = [
    "", " ", "0", "1", "-1", "2", "3.5", "1e308", "-1e309", "nan", "inf", "1,234.50",
    "12,5", "€ 12.50", "9" * 30, "yes", "no", "true", "x", "2024-03-01", "2024-03-01T10:00:00Z",
    "01/02/2024", "13/02/2024", "02/13/2024", "31.12.2023 23:59", "1709287200",
    "1709287200000", "0000-00-00", "9999-12-31 23:59:59", "purchase", "return", "view",
    "search", "rating", "C123", "POST", "A", "=HYPERLINK(\"http://x\")", "+1", "@SUM(A1)",
    "-2+3", "a@b.co", "not-an-email", "https://example.com/x", "en", "de-AT", "English",
    "\u200f\u202eevil", "👩‍👩‍👧", "e\u0301", "\ufeff", "\u0000", "a\u0000b", "\udc80",
    "\ud800", "\r", "\n", "\t", '"', "'", ",", ";", "|",
]  # fmt: skip
_TRICKY = list("ab1 .,;|\t\"'\r\n=-+@é€😀\u0301\u200f")
# In a CSV a NUL makes the whole file "binary": rare there (the specials hold two), common in
# JSON, where it rejects one row.
CSV_CELL = st.one_of(
    st.sampled_from(_SPECIAL),
    st.text(alphabet=st.sampled_from(_TRICKY), max_size=10),
    st.text(alphabet=st.characters(exclude_characters="\x00"), max_size=8),
)
CELL = st.one_of(CSV_CELL, st.text(alphabet=st.sampled_from([*_TRICKY, "\x00"]), max_size=6))

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"]  # mixed_encoding_files: more


def _encode(text: str, encoding: str) -> bytes:
    """Encode like a careless exporter: characters the codec lacks become ? (cp1252,
    latin-1); lone surrogates go through as the bytes they stand for."""
    if encoding.startswith("utf"):
        return text.encode(encoding, errors="surrogatepass")
    return text.encode(encoding, errors="replace")


@st.composite
def csv_files(draw) -> tuple[bytes, str]:
    """CSV of any shape: delimiters, quoting right or wrong, ragged rows, BOM, line ends,
    blank lines, duplicate and blank headers, every encoding."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    unique = draw(st.integers(0, 4)) > 0  # else duplicate headers now and then
    header = draw(st.lists(HEADER, min_size=1, max_size=8, unique=unique))
    width = len(header)
    rows = draw(
        st.lists(st.lists(CSV_CELL, min_size=max(0, width - 2), max_size=width + 2), max_size=12)
    )
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if draw(st.booleans()):  # well-formed, as the csv module quotes
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
        writer.writerow(header)
        for row in rows:
            if draw(st.integers(0, 9)) == 0:
                buffer.write(newline)  # a blank line
            writer.writerow(row)
        text = buffer.getvalue()
    else:  # naive joins: stray quotes, delimiters and line breaks inside cells
        lines = [delimiter.join(header)] + [delimiter.join(row) for row in rows]
        text = newline.join(lines) + draw(st.sampled_from(["", newline, newline * 3]))
    if draw(st.booleans()):
        text = "\ufeff" + text
    encoding = draw(st.sampled_from(ENCODINGS))
    name = draw(st.sampled_from(["upload.csv", "upload.txt", "upload"]))
    return _encode(text, encoding), name


_TYPED = {
    "str": ["A1", "C1", "Mug", "POST", "=SUM(1)", "  padded  ", "x" * 120],
    "decimal": ["2.5", "0", "-3", "1,5", "1e308", "abc", "€ 12.50"],
    "int": ["1", "2", "-1", "0", "2.5", "x", "3000000000"],
    "bool": ["yes", "no", "1", "0", "maybe", "3"],
    "datetime": ["2024-03-01 10:00", "01/02/2024", "13/02/2024", "garbage", "1709287200",
                 "2024-03-01T10:00:00+02:00", "1677-01-01"],
    "email": ["a@b.co", "A@B.CO", "bad", "a@b"],
    "url": ["https://x.test/a", "ftp://x", "http://"],
    "kind": ["view", "purchase", "return", "search", "rating", "bogus"],
}  # fmt: skip


@st.composite
def kind_files(draw, kind: str) -> tuple[bytes, str]:
    """A file shaped like the kind: its required headers and some optional ones (as the
    aliases spell them), values mostly of the field's type, some garbage, some repeats."""
    specs = FIELDS[kind]
    chosen = [s for s in specs if s.required or draw(st.booleans())]
    if not any(s.required for s in specs):  # campaign results: one of draft/customer/email
        chosen = chosen or [specs[0]]
    columns = {draw(st.sampled_from(s.aliases)): s.type for s in reversed(chosen)}
    for extra in draw(st.lists(st.sampled_from(["colour", "note", "Σ", ""]), max_size=2)):
        columns.setdefault(extra, "str")
    header, types = list(columns), list(columns.values())
    cell = {t: st.one_of(st.sampled_from(_TYPED[t] + [""]), st.sampled_from(_TYPED[t]), CSV_CELL)
            for t in set(types)}  # fmt: skip
    row = st.tuples(*(cell[t] for t in types)).map(list)
    rows = draw(st.lists(row, min_size=1, max_size=10))
    rows += draw(st.lists(st.sampled_from(rows), max_size=2))  # exact repeats
    if draw(st.booleans()):  # JSON Lines
        text = "\n".join(json.dumps(dict(zip(header, r, strict=True))) for r in rows)
        return _encode(text, "utf-8"), "upload.jsonl"
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=draw(st.sampled_from([",", ";", "\t", "|"]))).writerows(
        [header, *rows]
    )
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    return _encode(buffer.getvalue(), encoding), "upload.csv"


def _nested(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=3) | st.dictionaries(HEADER, inner, max_size=3)


JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), CELL), _nested, max_leaves=6
)


@st.composite
def json_files(draw) -> tuple[bytes, str]:
    """JSON arrays and JSON Lines of records of any shape (and a few non-records)."""
    record = st.dictionaries(HEADER, JSON_VALUE, max_size=6)
    records = draw(st.lists(st.one_of(record, record, JSON_VALUE), min_size=0, max_size=8))
    if draw(st.booleans()):
        text = json.dumps(records, ensure_ascii=draw(st.booleans()))
        name = draw(st.sampled_from(["upload.json", "upload"]))
    else:
        newline = draw(st.sampled_from(["\n", "\r\n"]))
        text = newline.join(json.dumps(r, ensure_ascii=draw(st.booleans())) for r in records)
        name = draw(st.sampled_from(["upload.jsonl", "upload.json", "upload"]))
    return _encode(text, draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))), name


@st.composite
def mixed_encoding_files(draw) -> tuple[bytes, str]:
    """UTF-8 with Latin-1 bytes spliced in, and UTF-16 with or without its BOM."""
    header = ",".join(draw(st.lists(st.sampled_from(_ALIASES), min_size=2, max_size=6)))
    rows = draw(st.lists(st.lists(CSV_CELL, min_size=2, max_size=6), min_size=1, max_size=8))
    text = header + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    how = draw(st.sampled_from(["latin1-in-utf8", "utf16-bom", "utf16-no-bom", "cut"]))
    if how == "latin1-in-utf8":
        data = bytearray(text.encode("utf-8", errors="surrogatepass"))
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.sampled_from([b"\xe9", b"\xfc\xdf", b"\x80", b"\xa0"]))
        return bytes(data), "mixed.csv"
    if how == "utf16-bom":
        bom = draw(st.sampled_from([codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE]))
        codec = "utf-16-le" if bom == codecs.BOM_UTF16_LE else "utf-16-be"
        return bom + text.encode(codec, errors="surrogatepass"), "utf16.csv"
    if how == "utf16-no-bom":
        codec = draw(st.sampled_from(["utf-16-le", "utf-16-be"]))
        return text.encode(codec, errors="surrogatepass"), "utf16.csv"
    data = text.encode("utf-16", errors="surrogatepass")  # cut inside a code unit
    return data[: draw(st.integers(1, len(data)))], "cut.csv"


# ------------------------------------------------------------------------ the tests


@FUZZ
@given(content=st.binary(max_size=3000), name=NAMES)
@example(content=b"PK\x03\x04" + b"\x00" * 40, name="upload.xlsx")
@example(content=b"\xff\xfe" + "sku,title\nA,\udc80\n".encode("utf-16-le", "surrogatepass"),
         name="upload.csv")  # fmt: skip
def test_random_bytes(content, name):
    check_bytes(content, name)


_RETAIL = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


@FUZZ
@given(file=csv_files(), chunk_rows=st.integers(1, 4), seed=st.integers(0, 3))
@example(  # price × quantity overflowed to inf, with a RuntimeWarning, before being rejected
    file=((_RETAIL + "1,A1,Mug,1e308,2024-01-01,9e307,C1,UK\n").encode(), "r.csv"),
    chunk_rows=1,
    seed=0,
)
def test_random_csv_shapes(file, chunk_rows, seed):
    check_bytes(file[0], file[1], chunk_rows=chunk_rows, seed=seed)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(KINDS), chunk_rows=st.integers(1, 4))
def test_files_shaped_like_each_kind(data, kind, chunk_rows):
    content, name = data.draw(kind_files(kind))
    check_bytes(content, name, chunk_rows=chunk_rows, seed=data.draw(st.integers(0, 3)))


_GOOD = {
    "sku": "A1", "title": "A1", "description": "A1", "category": "A1", "brand": "A1",
    "price": "2.5", "url": "https://x.test/a", "image_url": "https://x.test/a",
    "in_stock": "yes", "colour": "A1", "note": "A1",
}  # fmt: skip
_SURROGATE_NOTE = (json.dumps(_GOOD) + "\n" + json.dumps({**_GOOD, "note": "\udc80"})).encode()


@FUZZ
@given(file=json_files(), chunk_rows=st.integers(1, 4), seed=st.integers(0, 3))
@example(file=(b'[{"sku": "A", "title": "\\ud800"}]', "upload.json"), chunk_rows=1, seed=0)
@example(file=(b'{"\\udc80": "A", "title": "x"}\n{"sku": "B"}\n', "u.jsonl"), chunk_rows=1, seed=0)
@example(  # a rejected row's surrogate reached the hashing of a column's distinct values
    file=(_SURROGATE_NOTE, "u.jsonl"), chunk_rows=4, seed=0
)
def test_random_json_records(file, chunk_rows, seed):
    check_bytes(file[0], file[1], chunk_rows=chunk_rows, seed=seed)


@FUZZ
@given(file=mixed_encoding_files(), seed=st.integers(0, 3))
def test_mixed_encodings(file, seed):
    check_bytes(file[0], file[1], seed=seed)


# ------------------------------------------------------------------------ huge input

MB = 1024 * 1024


@pytest.mark.parametrize("kind", KINDS)
def test_a_one_megabyte_cell_is_rejected_or_kept_whole(tmp_path, kind):
    """A 1 MB cell in each field of the kind: the row is rejected where the column has a
    width, and the value is never cut silently where it has none."""
    specs = FIELDS[kind]
    header = [s.aliases[0] for s in specs]
    good = {
        "products": ["A1", "Mug"], "customers": ["C1"], "events": ["2024-03-01", "view"],
        "reviews": ["A1", "4"], "online_retail": ["536365", "A1", "Mug", "1",
                                                  "2024-03-01 10:00", "2.5", "17850", "UK"],
        "campaign_results": ["7"],
    }[kind]  # fmt: skip
    base = [*good, *[""] * (len(header) - len(good))]
    big = "x" * MB
    rows = [[*base[:i], big, *base[i + 1 :]] for i in range(len(header))]
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([header, *rows])
    path = tmp_path / "big.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    check_import(path, "big.csv", chunk_rows=4)


def test_many_columns_and_a_huge_cell_in_an_unmapped_column(tmp_path):
    header = ["sku", "title", *(f"c{i}" for i in range(1500))]
    row = ["A1", "Mug", *("v" for _ in range(1500))]
    row[-1] = "=" + "y" * MB  # a 1 MB formula-looking attribute
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([header, row, row[:2] + ["w"] * 1500])
    path = tmp_path / "wide.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    check_import(path, "wide.csv")
    info = sniff(path, name="wide.csv", max_bytes=MAX_BYTES)
    cleaner = Cleaner("products", auto_map(info.columns, "products"), CleanOptions(catalog_id=1))
    out = [cleaner.clean(f) for f in iter_frames(path, info, name="wide.csv")]
    products = pd.concat([o.products for o in out])
    assert products["sku"].tolist() == ["A1"]  # the second row repeats SKU A1: rejected
    assert len(products["attributes"].iloc[0]["c1499"]) == MB + 1  # kept whole, as text
    issues = [i for o in out for i in o.issues]
    formula = [i for i in issues if i.action == "kept as text"]
    assert [(i.row, i.column) for i in formula] == [(2, "c1499")]
    assert len(formula[0].value) == VALUE_MAX_CHARS  # the report shows it cut


def test_a_huge_quoted_field_that_never_closes(tmp_path):
    path = tmp_path / "open.csv"
    path.write_bytes(b'sku,title\nA1,"' + b"z" * (2 * MB) + b"\n")
    check_import(path, "open.csv")
    with pytest.raises(ImportFileError, match="never closed|malformed|no data rows"):
        info = sniff(path, name="open.csv", max_bytes=MAX_BYTES)
        list(iter_frames(path, info, name="open.csv"))


@st.composite
def workbooks(draw) -> tuple[bytes, str]:
    """XLSX workbooks of random cells (text, numbers, dates, formulas), some damaged."""
    import datetime as dt

    import openpyxl

    value = st.one_of(
        st.none(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.datetimes(min_value=dt.datetime(1900, 3, 1), max_value=dt.datetime(2200, 1, 1)),
        CSV_CELL.filter(lambda t: not any(ord(c) < 32 and c not in "\t\r\n" for c in t)),
        st.sampled_from(["=1+1", '=HYPERLINK("http://x")', "=A1/0"]),
    )
    header = draw(st.lists(st.one_of(HEADER, value), min_size=1, max_size=6))
    rows = draw(st.lists(st.lists(value, max_size=8), max_size=8))
    wb = openpyxl.Workbook()
    sheet = wb.active
    for row in [header, *rows]:
        try:
            sheet.append(row)
        except Exception:  # openpyxl refuses some strings (surrogates): leave the row out
            continue
    buffer = io.BytesIO()
    wb.save(buffer)
    data = buffer.getvalue()
    # Where to damage it, as a share of its length: the size varies a little from run to run
    # (the zip's deflate output), and a strategy must draw the same way every time.
    damage = draw(st.sampled_from(["none", "none", "cut", "flip"]))
    at = 4 + draw(st.integers(0, 2**20)) % (len(data) - 4)
    if damage == "cut":
        data = data[:at]
    elif damage == "flip":
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    return data, draw(st.sampled_from(["upload.xlsx", "upload.csv", "upload"]))


@settings(FUZZ, max_examples=EXAMPLES or 15)
@given(file=workbooks(), seed=st.integers(0, 3))
def test_random_workbooks(file, seed):
    check_bytes(file[0], file[1], seed=seed)
