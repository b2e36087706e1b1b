"""Fuzzing export escaping: whatever the copy and contact data hold, the files parse back.

CSV (every CSV preset): the csv module reads back exactly the header and one row per
record written, each as wide as the header; a cell whose text starts with a formula
character (= + - @ tab CR LF) comes back with a leading apostrophe, every other cell comes
back exactly (E.164 phone numbers in a preset's raw columns stay as they are). JSON Lines:
one valid JSON object per record, holding exactly the values given; Braze's JSON body parses
whole. Values come from the database, which holds no lone surrogates, so none are generated.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copygen.engine.channels import FIELDS
from copygen.exporting import PRESETS, ExportProduct, ExportRow, export_rows, open_writer
from copygen.exporting.presets.base import copy_fields
from marketing.csvsafe import _FORMULA_START

EXAMPLES = int(os.environ.get("TAILOR_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
CSV_PRESETS = sorted(k for k, p in PRESETS.items() if p.format == "csv")

_CHARS = st.characters(exclude_categories=["Cs"])  # no lone surrogates (see the docstring)
_TRIGGERS = list(_FORMULA_START)
TEXT = st.one_of(
    st.text(_CHARS, max_size=30),
    # a formula character first, or after leading whitespace
    st.builds(
        lambda lead, trigger, rest: lead + trigger + rest,
        st.sampled_from(["", "", " ", "  ", "\u00a0", "\u3000", "\t", "\n"]),
        st.sampled_from(_TRIGGERS),
        st.text(_CHARS, max_size=15),
    ),
    st.text(st.sampled_from(list("=+-@\t\r\n,\";\x00 'aZ9é€😀\u200f\u0301")), max_size=15),
    st.from_regex(E164, fullmatch=True),
    st.sampled_from(["x" * 100_000, '"' * 1000, "\r\n" * 500, "=1+1" * 5000, "", " "]),
)
VALUE = st.one_of(TEXT, TEXT, st.none(), st.integers(), st.lists(TEXT, max_size=3))


def _text(value) -> str:
    """A record value as the CSV writer turns it into text (before the guard)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return json.dumps(list(value), ensure_ascii=False)
    return str(value)


def _expected_cell(column: str, value, raw: frozenset[str]) -> str:
    text = _text(value)
    if column in raw and E164.fullmatch(text):
        return text
    return "'" + text if text.startswith(_FORMULA_START) else text


def _read_csv(data: bytes, *, bom: bool) -> list[list[str]]:
    text = data.decode("utf-8")  # strict: the file is valid UTF-8
    if bom:
        assert text.startswith("\ufeff")
        text = text[1:]
    limit = csv.field_size_limit(2**31 - 1)  # a cell may hold several 100,000-character values
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    finally:
        csv.field_size_limit(limit)


def _assert_no_live_formula(rows: list[list[str]], columns, raw) -> None:
    for row in rows:
        for column, cell in zip(columns, row, strict=True):
            if cell.startswith(_FORMULA_START):
                assert column in raw and E164.fullmatch(cell), (column, cell[:40])


def _bound(key: str, channel: str | None = None):
    preset = PRESETS[key]
    channel = channel or preset.channels[0]
    return preset.for_channel(channel) if preset.channel is None else preset


# ------------------------------------------------------------------ the CSV writer itself


@FUZZ
@given(data=st.data(), key=st.sampled_from(CSV_PRESETS), bom=st.booleans())
def test_csv_writer_round_trips_every_cell(data, key, bom):
    preset = _bound(key, data.draw(st.sampled_from(PRESETS[key].channels)))
    columns = list(preset.columns)
    raw = frozenset(preset.raw_columns)
    records = data.draw(
        st.lists(st.dictionaries(st.sampled_from(columns), VALUE, max_size=6), max_size=6)
    )
    out = io.BytesIO()
    with open_writer(preset, out, excel_bom=bom) as writer:
        for record in records:
            writer.write(record)
    rows = _read_csv(out.getvalue(), bom=bom)
    assert len(rows) == 1 + len(records)
    assert all(len(row) == len(columns) for row in rows)
    assert rows[0] == [_expected_cell(c, c, frozenset()) for c in columns]
    for record, row in zip(records, rows[1:], strict=True):
        assert row == [_expected_cell(c, record.get(c), raw) for c in columns]
    _assert_no_live_formula(rows, columns, raw)


@FUZZ
@given(records=st.lists(st.dictionaries(st.text(_CHARS, max_size=8), VALUE, max_size=5),
                        max_size=6))  # fmt: skip
def test_json_lines_hold_exactly_the_values(records):
    out = io.BytesIO()
    with open_writer(PRESETS["generic_jsonl"], out) as writer:
        for record in records:
            writer.write(record)
    text = out.getvalue().decode("utf-8")
    assert text.count("\n") == len(records) and (not records or text.endswith("\n"))
    lines = text.split("\n")[:-1]
    assert [json.loads(line) for line in lines] == records  # NUL, CR, LF, U+2028 included


# ------------------------------------------------------------------ through the presets


@st.composite
def export_rows_for(draw, channels) -> ExportRow:
    channel = draw(st.sampled_from(channels))
    fields = {}
    for spec in FIELDS[channel]:
        fields[spec.name] = draw(st.lists(TEXT, max_size=4)) if spec.kind == "list" else draw(TEXT)
    contact = st.one_of(TEXT, st.just(""))
    return ExportRow(
        customer_id=draw(st.one_of(st.just("C-17"), TEXT)),
        channel=channel,
        fields=fields,
        draft_id=draw(st.integers(1, 10**9)),
        brief_id=draw(st.integers(1, 10**9)),
        email=draw(st.one_of(st.just("anna@example.com"), st.just("=a@b.co"), contact)),
        name=draw(st.one_of(st.just("Anna Schmidt"), st.just("@Anna -Schmidt"), contact)),
        phone=draw(st.one_of(st.just("+49 151 12345678"), st.just("=1+2"), contact)),
        country=draw(st.one_of(st.just("DE"), st.just("Germany"), contact)),
        zip=draw(st.one_of(st.just("10115"), contact)),
        language=draw(st.one_of(st.just("de"), contact)),
        products=tuple(
            draw(
                st.lists(
                    st.builds(
                        ExportProduct, sku=TEXT, title=TEXT, url=TEXT, price=TEXT, image_url=TEXT
                    ),
                    max_size=4,
                )
            )
        ),
        segment=draw(TEXT),
        brief_name=draw(TEXT),
        variant=draw(st.integers(1, 5)),
        locale=draw(st.sampled_from(["en", "de", "zh"])),
        exported_at="2024-05-01T12:00:00+00:00",
    )


@FUZZ
@given(data=st.data(), key=st.sampled_from(CSV_PRESETS), bom=st.booleans())
def test_every_csv_preset_writes_a_file_that_parses_back(data, key, bom):
    channel = data.draw(st.sampled_from(PRESETS[key].channels))
    preset = _bound(key, channel)
    rows = data.draw(st.lists(export_rows_for((channel,)), max_size=5))
    out = io.BytesIO()
    summary = export_rows(preset, rows, out, excel_bom=bom)
    assert summary.written + summary.skipped == len(rows)
    parsed = _read_csv(out.getvalue(), bom=bom)
    columns = list(preset.columns)
    assert len(parsed) == 1 + summary.written
    assert all(len(row) == len(columns) for row in parsed)
    _assert_no_live_formula(parsed, columns, frozenset(preset.raw_columns))
    if key == "generic_csv":  # Tailor's own schema: the copy comes back exactly
        written = [r for r in rows if preset.render(r).record is not None]
        for row, cells in zip(written, parsed[1:], strict=True):
            by_column = dict(zip(columns, cells, strict=True))
            for name, value in copy_fields(row).items():
                assert by_column[name] == _expected_cell(name, value, frozenset())


@FUZZ
@given(rows=st.lists(export_rows_for(tuple(FIELDS)), max_size=5))
def test_generic_json_lines_carry_the_copy_exactly(rows):
    out = io.BytesIO()
    summary = export_rows(PRESETS["generic_jsonl"], rows, out)
    lines = out.getvalue().decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == summary.written
    records = [json.loads(line) for line in lines[:-1]]
    written = [r for r in rows if r.customer_id.strip()]  # the one identifier it needs
    assert len(records) == len(written)
    for row, record in zip(written, records, strict=True):
        assert record["customer_id"] == row.customer_id.strip()
        for name, value in copy_fields(row).items():
            assert record[name] == value  # never apostrophe-escaped: JSON is data
        assert record["product_titles"] == [p.title for p in row.products]


@FUZZ
@given(rows=st.lists(export_rows_for(PRESETS["braze_json"].channels), max_size=5))
def test_braze_json_body_parses_whole(rows):
    out = io.BytesIO()
    summary = export_rows(PRESETS["braze_json"], rows, out)
    body = json.loads(out.getvalue().decode("utf-8"))
    assert list(body) == ["attributes"] and len(body["attributes"]) == summary.written
