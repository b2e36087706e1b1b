"""Export row path, pure core: each fast path against the plain rule it replaced.

The CSV writer checks a whole row for the formula guard with one search and writes the
record with `csv_line` instead of ``csv.writer``; `Preset._check_limits` measures only
values that could be over the limit; Mailchimp tags are cached per (segment, brief) and
look for emoji with a regex; `normalize_email` looks for whitespace with a regex. The
references below are the code as it was before, so a change that makes a fast path differ
from its rule fails here.
"""

import csv
import io
import json
import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copygen.exporting import ExportRow, normalize_email, open_writer, preset_for
from copygen.exporting.presets import PRESETS, mailchimp
from copygen.exporting.presets.base import Skip, too_long
from copygen.exporting.split import measure
from copygen.exporting.writers import csv_line
from marketing.csvsafe import safe_cell

# Text that is likely to hit the special cases: formula starts, separators, quotes, line
# breaks, NUL (the writer's own joiner), non-ASCII (byte limits), emoji (Mailchimp tags).
TRICKY = st.text(alphabet=st.sampled_from(list('=+-@\t\r\n,";\0 aZ9é€😀☀')), max_size=12)
CELL = st.one_of(
    TRICKY,
    st.text(max_size=8),
    st.none(),
    st.integers(min_value=-99, max_value=99),
    st.lists(TRICKY, max_size=3),
    st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True),  # E.164: left alone in raw columns
)


def _reference_csv(columns, raw, records) -> bytes:
    """The writer as it was: csv.writer, and per cell E.164-or-guard."""
    e164 = re.compile(r"\+[1-9][0-9]{1,14}")

    def text(value):
        if value is None:
            return ""
        if isinstance(value, (list, tuple)):
            return json.dumps(list(value), ensure_ascii=False)
        return str(value)

    def cell(column, value):
        t = text(value)
        return t if column in raw and e164.fullmatch(t) else safe_cell(t)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([safe_cell(c) for c in columns])
    for rec in records:
        writer.writerow([cell(c, rec.get(c)) for c in columns])
    return out.getvalue().encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(["klaviyo", "braze_csv", "google_customer_match"]),
    data=st.data(),
)
def test_csv_writer_writes_what_the_per_cell_rule_writes(key, data):
    preset = preset_for(key, None if key == "google_customer_match" else "email")
    columns = preset.columns
    records = data.draw(
        st.lists(st.dictionaries(st.sampled_from(columns), CELL, max_size=len(columns)), max_size=4)
    )
    buf = io.BytesIO()
    with open_writer(preset, buf) as writer:
        for rec in records:
            writer.write(rec)
    assert buf.getvalue() == _reference_csv(columns, preset.raw_columns, records)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(TRICKY, st.text()), min_size=2, max_size=6))
def test_csv_line_is_what_csv_writer_writes(texts):
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerow(texts)
    assert csv_line(texts) == out.getvalue()


def test_a_formula_in_the_last_or_first_cell_is_still_guarded():
    # The fast check joins the row: the first cell has no joiner before it of its own.
    preset = preset_for("generic_csv", "sms")
    first = dict.fromkeys(preset.columns, "x") | {preset.columns[0]: "=1+1"}
    last = dict.fromkeys(preset.columns, "x") | {preset.columns[-1]: "@SUM(A1)"}
    buf = io.BytesIO()
    with open_writer(preset, buf) as writer:
        writer.write(first)
        writer.write(last)
    rows = list(csv.reader(io.StringIO(buf.getvalue().decode(), newline="")))
    assert rows[1][0] == "'=1+1" and rows[1][-1] == "x"
    assert rows[2][0] == "x" and rows[2][-1] == "'@SUM(A1)"


def _reference_limits(preset, record) -> tuple[str, str] | None:
    """`Preset._check_limits` as it was: every str value measured, in column order."""
    for unit, limit in (("bytes", preset.field_limit_bytes), ("chars", preset.field_limit_chars)):
        if limit is None:
            continue
        for column, value in record.items():
            if isinstance(value, str) and column not in preset.limit_exempt:
                size = measure(value, unit)
                if size > limit:
                    return column, too_long(size, limit, unit, preset.label)
    return None


def _outcome(preset, record) -> tuple[str, str] | None:
    try:
        preset._check_limits(record)
    except Skip as skip:
        assert skip.code == "too_long"
        return skip.column, skip.reason
    return None


# Values around the limits: 255 bytes of mixed 1- to 4-byte characters, 63/64 code points.
AROUND_LIMIT = st.one_of(
    st.text(alphabet=st.sampled_from(list("aé€😀")), min_size=50, max_size=270),
    st.integers(),
    st.none(),
    st.text(max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(PRESETS)), data=st.data())
def test_limit_check_skips_exactly_what_measuring_every_value_skips(key, data):
    preset = PRESETS[key]
    columns = ["Email Address", "Tags", "SUBJECT", "external_id", "tailor_email_cta", "x"]
    record = data.draw(st.dictionaries(st.sampled_from(columns), AROUND_LIMIT, max_size=6))
    assert _outcome(preset, record) == _reference_limits(preset, record)


def test_limit_check_measures_bytes_of_short_multibyte_values():
    # 64 emoji are 64 code points but 256 bytes: just over Mailchimp's 255.
    preset = PRESETS["mailchimp"]
    assert _outcome(preset, {"SUBJECT": "😀" * 63}) is None
    column, reason = _outcome(preset, {"SUBJECT": "😀" * 64})
    assert column == "SUBJECT" and reason.startswith("256 bytes")


@settings(max_examples=500, deadline=None)
@given(st.one_of(TRICKY, st.text()))
def test_emoji_regex_is_the_code_point_rule(text):
    reference = any(ord(ch) >= 0x1F000 or 0x2600 <= ord(ch) <= 0x27BF for ch in text)
    assert mailchimp._has_emoji(text) is reference


def test_a_rejected_tag_is_rejected_every_time_not_cached_as_a_value():
    row = ExportRow(
        customer_id="C-1",
        channel="email",
        fields={"subject": "Hi", "body": "Hello"},
        draft_id=1,
        brief_id=1,
        email="a@example.com",
        segment="Fans 🎉",
        brief_name="Spring",
    )
    for _ in range(2):
        result = PRESETS["mailchimp"].render(row)
        assert result.skipped
        assert [w.code for w in result.warnings] == ["bad_tag"]
    ok = PRESETS["mailchimp"].render(ExportRow(**{**row.__dict__, "segment": "Fans, old"}))
    assert ok.record["Tags"] == '"Fans, old",Spring'


def test_email_whitespace_check_is_str_isspace_for_every_code_point():
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    for ch in spaces:
        assert normalize_email(f"a{ch}b@example.com") is None, hex(ord(ch))
    # Characters next to whitespace that are not whitespace keep the address.
    for ch in ("\u200b", "\u180e", "\ufeff", "_"):
        assert normalize_email(f"a{ch}b@example.com") == f"a{ch}b@example.com"


def test_contact_values_are_computed_once_per_row(monkeypatch):
    from copygen.exporting.presets import base

    calls = []
    real = base.normalize_email
    monkeypatch.setattr(base, "normalize_email", lambda *a, **k: calls.append(a) or real(*a, **k))
    contact = base.Contact(
        ExportRow(
            customer_id="C", channel="email", fields={}, draft_id=1, brief_id=1, email="A@B.co"
        )
    )
    assert contact.email == contact.email == "a@b.co"
    assert len(calls) == 1
    assert isinstance(base.Contact.email, base._once)  # the class attribute stays the descriptor


@pytest.mark.parametrize("value", ["Germany", " germany ", "DEU", "Deutschland", "Narnia", "EIRE"])
def test_country_cache_gives_the_uncached_answer(value):
    from copygen.exporting import normalize

    expected = normalize._country_index().get(normalize._country_key(value.strip()))
    assert normalize.normalize_country(value) == expected
    assert normalize.normalize_country(value) == expected  # from the cache
