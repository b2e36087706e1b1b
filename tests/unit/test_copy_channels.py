"""Channels: fields, grapheme counting, SMS encodings and segments."""

from __future__ import annotations

import json

import pytest

from copygen.engine.channels import (
    FIELDS,
    GSM7,
    UCS2,
    field_spec,
    fields_as_dict,
    google_length,
    grapheme_len,
    graphemes,
    measure,
    non_gsm_chars,
    sms_encoding,
    sms_segments,
)
from copygen.engine.types import CHANNELS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("hello", 5),
        ("👩\u200d👩\u200d👧", 1),  # ZWJ family
        ("e\u0301", 1),  # decomposed é
        ("🇩🇪", 1),  # flag
        ("🇩🇪🇫🇷", 2),  # two flags, not a "E🇫" mix
        ("👍🏽", 1),  # skin tone modifier
        ("1\ufe0f\u20e3", 1),  # keycap
        ("🏳\ufe0f\u200d🌈", 1),  # rainbow flag
        ("🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", 1),  # Scotland (tags)
        ("한국어", 3),  # precomposed Hangul
        ("\u1100\u1161\u11a8", 1),  # conjoining jamo
        ("a\r\nb", 3),  # CR LF is one
        ("Straße €12,50", 13),
        ("你好，世界", 5),
        ("Ça va? 👋🏻", 8),
    ],
)
def test_grapheme_len(text, expected):
    assert grapheme_len(text) == expected
    assert len(graphemes(text)) == expected
    assert "".join(graphemes(text)) == text


def test_google_counts_double_width_as_two():
    assert google_length("Linen shirt") == 11
    assert google_length("亚麻衬衫") == 8
    assert google_length("亚麻 shirt") == 10


def test_every_channel_has_fields_and_ui_spec_is_json():
    assert set(FIELDS) == set(CHANNELS)
    data = json.loads(json.dumps(fields_as_dict()))
    assert data["email"][0]["name"] == "subject"
    assert field_spec("email", "subject").max_len == 60
    assert field_spec("email", "preheader").min_len == 40
    assert field_spec("email", "preheader").max_len == 110
    assert field_spec("push", "title").max_len == 40
    assert field_spec("push", "body").max_len == 120
    heads = field_spec("google_ads", "headlines")
    assert (heads.kind, heads.min_items, heads.max_items, heads.max_len) == ("list", 3, 15, 30)
    descs = field_spec("google_ads", "descriptions")
    assert (descs.min_items, descs.max_items, descs.max_len) == (2, 4, 90)
    assert field_spec("meta_ads", "primary_text").max_len == 125
    assert field_spec("meta_ads", "headline").max_len == 40
    assert field_spec("meta_ads", "description").required is False
    assert field_spec("product_text", "long").disclaimer is True
    assert field_spec("sms", "text").kind == "sms"
    assert field_spec("email", "nope") is None


def test_measure_uses_field_count():
    assert measure("亚麻衬衫", field_spec("google_ads", "headlines")) == 8
    assert measure("亚麻衬衫", field_spec("meta_ads", "headline")) == 4


def test_sms_160_gsm7_chars_are_one_segment_161_are_two():
    assert sms_segments("a" * 160) == (GSM7, 1, 160)
    assert sms_segments("a" * 161) == (GSM7, 2, 161)
    assert sms_segments("a" * 306) == (GSM7, 2, 306)
    assert sms_segments("a" * 307) == (GSM7, 3, 307)
    assert sms_segments("") == (GSM7, 0, 0)


def test_gsm7_extension_chars_count_two():
    assert sms_encoding("Price: 12€ [new] {x} ~ ^ | \\") == GSM7
    assert sms_segments("€" * 80) == (GSM7, 1, 160)
    assert sms_segments("a" * 159 + "€") == (GSM7, 2, 161)
    # an escape sequence is never split across parts: 152 'a' + '€' does not fit in 153
    assert sms_segments("a" * 152 + "€" + "a" * 153) == (GSM7, 3, 307)


def test_gsm7_accented_letters_stay_gsm7_but_others_switch():
    assert sms_encoding("Ça coûte") == UCS2  # û is not in GSM-7
    assert sms_encoding("Çà é è ù ì ò ñ ü ö ä ß") == GSM7


def test_an_emoji_pushes_sms_into_ucs2():
    text = "Your linen shirt is back in stock at 29.99 EUR. Shop now before it is gone again!"
    assert sms_segments(text)[:2] == (GSM7, 1)
    encoding, segments, units = sms_segments(text + " 😍")
    assert encoding == UCS2
    assert units == len(text) + 1 + 2  # the emoji is a surrogate pair
    assert segments == 2  # 85 UTF-16 units > 70
    assert non_gsm_chars(text + " 😍") == ["😍"]


def test_ucs2_limits():
    assert sms_segments("你" * 70) == (UCS2, 1, 70)
    assert sms_segments("你" * 71) == (UCS2, 2, 71)
    assert sms_segments("你" * 134) == (UCS2, 2, 134)
    assert sms_segments("你" * 135) == (UCS2, 3, 135)
