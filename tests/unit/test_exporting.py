"""Campaign exports, pure core: normalisation and hashing, presets, streaming writers."""

import csv
import io
import json
import re
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copygen.exporting import (
    PRESETS,
    ExportProduct,
    ExportRow,
    export_rows,
    normalize_country,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_zip,
    open_writer,
    phone_digits,
    preset_for,
    sha256_hex,
    split_name,
)
from copygen.exporting.split import split_text

SHIRT = ExportProduct(
    "SKU-1", "Linen shirt", "https://shop.example/p/1", "€49.00", "https://cdn.example/1.jpg"
)
EMAIL = {
    "subject": "Your linen shirt is back",
    "preheader": "Twelve colours, cut for warm days",
    "body": "Hello Jane, the shirt you liked is back in stock.",
    "cta": "Shop now",
}


def make_row(**kwargs) -> ExportRow:
    values = {
        "customer_id": "C-17",
        "channel": "email",
        "fields": EMAIL,
        "draft_id": 42,
        "brief_id": 3,
        "email": " Jane.Doe@Gmail.com ",
        "name": "Jane O'Brien",
        "phone": "030 1234567",
        "country": "Germany",
        "zip": "10115",
        "language": "de-DE",
        "products": (SHIRT,),
        "segment": "Loyal",
        "brief_name": "Spring linen",
        "variant": 1,
        "locale": "en",
        "exported_at": "2024-05-01T12:00:00+00:00",
    }
    values.update(kwargs)
    return ExportRow(**values)


def record(preset, row):
    result = preset.render(row)
    assert result.record is not None, [str(w) for w in result.warnings]
    return result.record


def write(preset, records, **kwargs) -> bytes:
    buf = io.BytesIO()
    with open_writer(preset, buf, **kwargs) as writer:
        for rec in records:
            writer.write(rec)
    return buf.getvalue()


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


# --- hashing and normalisation -----------------------------------------------------------------


def test_sha256_matches_published_vectors():
    # FIPS 180-2 example "abc", the empty string, and the vector from the export issue.
    assert sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert (
        sha256_hex("test@example.com")
        == "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    )


def test_email_is_trimmed_and_lower_cased_and_gmail_dots_go_only_when_asked():
    assert normalize_email("  Test@Example.COM ") == "test@example.com"
    assert normalize_email("Jane.Doe@Gmail.com") == "jane.doe@gmail.com"
    assert normalize_email("Jane.Doe@Gmail.com", gmail_dots=True) == "janedoe@gmail.com"
    assert normalize_email("j.d@googlemail.com", gmail_dots=True) == "jd@googlemail.com"
    assert normalize_email("jane.doe@example.com", gmail_dots=True) == "jane.doe@example.com"


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "no-at-sign", "a@b", "a@@b.com", "a@b@c.com", "@example.com", "a b@x.com"]
    + ["a@.com", "a@example.", "a@example..com", ".@gmail.com"],
)
def test_email_that_is_not_an_address_is_none(value):
    assert normalize_email(value, gmail_dots=True) is None


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("030 1234567", "DE", "+49301234567"),
        ("0049 30 1234567", "DE", "+49301234567"),
        ("+49 151 12345678", None, "+4915112345678"),
        ("+49 151 12345678", "US", "+4915112345678"),
        ("(650) 555-1234", "us", "+16505551234"),
        ("020 7946 0958", "GB", "+442079460958"),
    ],
)
def test_phone_becomes_e164(value, region, expected):
    assert normalize_phone(value, region) == expected


@pytest.mark.parametrize(
    ("value", "region"),
    [
        ("12", "DE"),
        ("", "DE"),
        (None, "DE"),
        ("call me", "DE"),
        ("030 1234567", None),  # national number, no country to place it
        ("030 1234567", "Germany"),  # region must be an alpha-2 code
    ],
)
def test_invalid_phone_is_none(value, region):
    assert normalize_phone(value, region) is None


def test_meta_phone_is_digits_with_country_code():
    assert phone_digits("+49301234567") == "49301234567"
    assert phone_digits("") == ""


def test_names_keep_letters_and_meta_drops_punctuation():
    assert normalize_name("  Ánna-Marie  O'Brien ") == "ánna-marie o'brien"
    assert normalize_name("Ánna-Marie O'Brien", strip_punctuation=True) == "ánnamarie obrien"
    assert normalize_name("Ame\u0301lie") == "amélie"  # decomposed accent -> NFC
    assert normalize_name("王小明") == "王小明"
    assert normalize_name("  ") is None
    assert normalize_name("'", strip_punctuation=True) is None


def test_name_split_is_first_token_and_rest():
    assert split_name("Anna Maria  Schmidt") == ("Anna", "Maria Schmidt")
    assert split_name("Cher") == ("Cher", "")
    assert split_name("") == ("", "")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Germany", "DE"),
        ("de", "DE"),
        ("DEU", "DE"),
        (" United Kingdom ", "GB"),
        ("UK", "GB"),
        ("EIRE", "IE"),
        ("USA", "US"),
        ("United States", "US"),
        ("RSA", "ZA"),
        ("Czech Republic", "CZ"),
        ("Hong Kong", "HK"),
        ("Bosnia and Herzegovina", "BA"),
        ("cote d'ivoire", "CI"),
        ("Deutschland", "DE"),
        ("Channel Islands", None),
        ("European Community", None),
        ("Unspecified", None),
        ("Atlantis", None),
        ("EU", None),
        ("", None),
        (None, None),
    ],
)
def test_country_becomes_iso_alpha2(value, expected):
    assert normalize_country(value) == expected


def test_zip_google_as_given_meta_normalised():
    assert normalize_zip(" 94043-1351 ", "US") == "94043-1351"
    assert normalize_zip("94043-1351", "US", meta=True) == "94043"
    assert normalize_zip("94043-1351", "United States", meta=True) == "94043"
    assert normalize_zip("SW1A 1AA", "GB", meta=True) == "sw1a1"
    assert normalize_zip("1012 AB", "NL", meta=True) == "1012ab"
    assert normalize_zip("", "DE", meta=True) is None


# --- presets: headers and rows -------------------------------------------------------------------

MAILCHIMP_HEADER = [
    "Email Address",
    "First Name",
    "Last Name",
    "SUBJECT",
    "PREHEADER",
    *[f"BODY_{i}" for i in range(1, 11)],
    "CTA",
    *[f"P{i}_{p}" for i in range(1, 4) for p in ("NAME", "URL", "PRICE", "IMAGE")],
    "Tags",
]
PRODUCT_PROPS = [
    f"tailor_product_{i}_{p}" for i in range(1, 4) for p in ("name", "url", "price", "image")
]
META_PROPS = [
    "tailor_segment",
    "tailor_brief",
    "tailor_brief_id",
    "tailor_draft_id",
    "tailor_variant",
    "tailor_locale",
]
EMAIL_PROPS = [
    "tailor_email_subject",
    "tailor_email_preheader",
    "tailor_email_body",
    "tailor_email_cta",
]
PROFILE = ["Email", "First Name", "Last Name", "Phone Number"]
BRAZE_PROFILE = ["external_id", "email", "first_name", "last_name", "phone", "country", "language"]
GENERIC_TAIL = [
    "product_skus",
    "product_titles",
    "product_urls",
    "product_prices",
    "product_image_urls",
    "segment",
    "brief_id",
    "draft_id",
    "variant",
    "exported_at",
]


@pytest.mark.parametrize(
    ("key", "channel", "header"),
    [
        ("mailchimp", None, MAILCHIMP_HEADER),
        ("klaviyo", "email", PROFILE + EMAIL_PROPS + PRODUCT_PROPS + META_PROPS),
        ("klaviyo", "sms", PROFILE + ["tailor_sms_text"] + PRODUCT_PROPS + META_PROPS),
        ("hubspot", None, PROFILE + EMAIL_PROPS + PRODUCT_PROPS + META_PROPS),
        (
            "braze_csv",
            "email",
            BRAZE_PROFILE
            + ["tailor_email_subject", "tailor_email_preheader"]
            + [f"tailor_email_body_{i}" for i in range(1, 13)]
            + ["tailor_email_body_parts", "tailor_email_cta"]
            + PRODUCT_PROPS
            + META_PROPS,
        ),
        (
            "braze_csv",
            "push",
            BRAZE_PROFILE + ["tailor_push_title", "tailor_push_body"] + PRODUCT_PROPS + META_PROPS,
        ),
        (
            "braze_csv",
            "sms",
            BRAZE_PROFILE
            + ["tailor_sms_text_1", "tailor_sms_text_2", "tailor_sms_text_3"]
            + ["tailor_sms_text_parts"]
            + PRODUCT_PROPS
            + META_PROPS,
        ),
        (
            "google_customer_match",
            None,
            ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"],
        ),
        (
            "meta_custom_audience",
            None,
            ["email", "phone", "fn", "ln", "zip", "ct", "st", "country"],
        ),
        (
            "generic_csv",
            "email",
            ["customer_id", "channel", "locale", "subject", "preheader", "body", "cta"]
            + GENERIC_TAIL,
        ),
        (
            "generic_csv",
            "google_ads",
            ["customer_id", "channel", "locale", "headlines", "descriptions"] + GENERIC_TAIL,
        ),
    ],
)
def test_csv_header_is_exact_and_written_for_zero_rows(key, channel, header):
    data = write(preset_for(key, channel), [])
    assert data.endswith(b"\r\n")
    assert read_csv(data) == [header]


def test_every_preset_is_listed_with_its_format():
    assert {k: p.format for k, p in PRESETS.items()} == {
        "mailchimp": "csv",
        "klaviyo": "csv",
        "braze_csv": "csv",
        "braze_json": "json",
        "hubspot": "csv",
        "google_customer_match": "csv",
        "meta_custom_audience": "csv",
        "generic_csv": "csv",
        "generic_jsonl": "jsonl",
    }


def test_mailchimp_row():
    rec = record(preset_for("mailchimp"), make_row(segment="Loyal, VIP"))
    assert rec == {
        "Email Address": "jane.doe@gmail.com",
        "First Name": "Jane",
        "Last Name": "O'Brien",
        "SUBJECT": "Your linen shirt is back",
        "PREHEADER": "Twelve colours, cut for warm days",
        "BODY_1": "Hello Jane, the shirt you liked is back in stock.",
        **{f"BODY_{i}": "" for i in range(2, 11)},
        "CTA": "Shop now",
        "P1_NAME": "Linen shirt",
        "P1_URL": "https://shop.example/p/1",
        "P1_PRICE": "€49.00",
        "P1_IMAGE": "https://cdn.example/1.jpg",
        **{f"P{i}_{p}": "" for i in (2, 3) for p in ("NAME", "URL", "PRICE", "IMAGE")},
        "Tags": '"Loyal, VIP",Spring linen',
    }
    # No phone, country or customer id: Mailchimp's email copy does not need them.
    assert "+49301234567" not in rec.values()


def test_klaviyo_rows_email_and_sms():
    rec = record(preset_for("klaviyo", "email"), make_row())
    assert [rec[c] for c in PROFILE] == ["jane.doe@gmail.com", "Jane", "O'Brien", "+49301234567"]
    assert rec["tailor_email_body"] == EMAIL["body"]
    assert rec["tailor_product_1_price"] == "€49.00"
    assert rec["tailor_product_2_name"] == ""
    assert [rec[c] for c in META_PROPS] == ["Loyal", "Spring linen", 3, 42, 1, "en"]

    sms = make_row(channel="sms", fields={"text": "Linen is back: shop.example"}, email="")
    rec = record(preset_for("klaviyo", "sms"), sms)
    assert rec["Email"] == ""
    assert rec["Phone Number"] == "+49301234567"
    assert rec["tailor_sms_text"] == "Linen is back: shop.example"


def test_hubspot_row():
    rec = record(preset_for("hubspot"), make_row())
    assert list(rec) == PROFILE + EMAIL_PROPS + PRODUCT_PROPS + META_PROPS
    assert rec["Email"] == "jane.doe@gmail.com"
    assert rec["tailor_email_subject"] == EMAIL["subject"]


def test_braze_csv_row_and_json_document():
    row = make_row()
    rec = record(preset_for("braze_csv", "email"), row)
    assert {k: rec[k] for k in BRAZE_PROFILE} == {
        "external_id": "C-17",
        "email": "jane.doe@gmail.com",
        "first_name": "Jane",
        "last_name": "O'Brien",
        "phone": "+49301234567",
        "country": "DE",
        "language": "de",
    }
    assert rec["tailor_email_body_1"] == EMAIL["body"]
    assert rec["tailor_email_body_2"] == ""
    assert rec["tailor_email_body_parts"] == 1
    line = read_csv(write(preset_for("braze_csv", "email"), [rec]))[1]
    assert line[:7] == ["C-17", "jane.doe@gmail.com", "Jane", "O'Brien", "+49301234567", "DE", "de"]

    json_preset = preset_for("braze_json")
    doc = json.loads(write(json_preset, [record(json_preset, make_row(name="", language=""))]))
    (attrs,) = doc["attributes"]
    assert attrs["external_id"] == "C-17"
    # Empty default attributes are left out (not overwritten); unused copy fields are null.
    assert "first_name" not in attrs and "language" not in attrs
    assert attrs["tailor_email_body_1"] == EMAIL["body"]
    assert attrs["tailor_email_body_2"] is None
    assert attrs["tailor_draft_id"] == 42


def test_braze_splits_sms_text_at_255_characters():
    text = " ".join(["Linen"] * 80)  # 479 characters
    rec = record(preset_for("braze_csv", "sms"), make_row(channel="sms", fields={"text": text}))
    parts = [rec[f"tailor_sms_text_{i}"] for i in (1, 2, 3)]
    assert all(len(p) <= 255 for p in parts)
    assert " ".join(p for p in parts if p) == text
    assert rec["tailor_sms_text_parts"] == 2


def test_google_customer_match_hashes_by_googles_rules():
    rec = record(preset_for("google_customer_match"), make_row())
    assert rec == {
        "Email": sha256_hex("janedoe@gmail.com"),  # gmail dots removed
        "Phone": sha256_hex("+49301234567"),
        "First Name": sha256_hex("jane"),
        "Last Name": sha256_hex("o'brien"),
        "Country": "DE",  # not hashed
        "Zip": "10115",  # not hashed
    }


def test_meta_custom_audience_hashes_everything_and_leaves_empty_empty():
    rec = record(
        preset_for("meta_custom_audience"), make_row(country="United States", zip="94043-1351")
    )
    assert rec == {
        "email": sha256_hex("jane.doe@gmail.com"),
        "phone": "",  # "030 1234567" is no valid US number
        "fn": sha256_hex("jane"),
        "ln": sha256_hex("obrien"),
        "zip": sha256_hex("94043"),
        "ct": "",
        "st": "",
        "country": sha256_hex("us"),
    }
    rec = record(preset_for("meta_custom_audience"), make_row())
    assert rec["phone"] == sha256_hex("49301234567")


def test_audience_presets_carry_no_plain_personal_data():
    row = make_row()
    plain = {"jane.doe@gmail.com", "Jane", "O'Brien", "jane", "+49301234567", "49301234567"}
    for key in ("google_customer_match", "meta_custom_audience"):
        rec = record(preset_for(key), row)
        assert not plain & set(rec.values())
        assert EMAIL["subject"] not in rec.values()


def test_generic_csv_and_jsonl_rows():
    ads = make_row(
        channel="google_ads",
        fields={
            "headlines": ["Linen, at last", 'Cool "summer"'],
            "descriptions": ["Twelve colours"],
        },
    )
    csv_preset = preset_for("generic_csv", "google_ads")
    header, line = read_csv(write(csv_preset, [record(csv_preset, ads)]))
    cells = dict(zip(header, line, strict=True))
    assert json.loads(cells["headlines"]) == ["Linen, at last", 'Cool "summer"']
    assert json.loads(cells["product_skus"]) == ["SKU-1"]
    assert cells["draft_id"] == "42"
    assert cells["customer_id"] == "C-17"
    assert not {"Jane", "jane.doe@gmail.com", "+49301234567"} & set(line)

    jsonl = preset_for("generic_jsonl")
    data = write(jsonl, [record(jsonl, ads), record(jsonl, make_row())])
    first, second = (json.loads(x) for x in data.decode().splitlines())
    assert first["headlines"] == ["Linen, at last", 'Cool "summer"']
    assert first["product_prices"] == ["€49.00"]
    assert first["variant"] == 1
    assert second["channel"] == "email" and second["body"] == EMAIL["body"]


# --- CSV safety ----------------------------------------------------------------------------------


def test_formula_is_neutralised_in_csv_and_unchanged_in_jsonl():
    formula = '=HYPERLINK("https://evil.example","Click")'
    row = make_row(fields={**EMAIL, "subject": formula})
    preset = preset_for("mailchimp")
    header, line = read_csv(write(preset, [record(preset, row)]))
    assert line[header.index("SUBJECT")] == "'" + formula

    jsonl = preset_for("generic_jsonl")
    assert json.loads(write(jsonl, [record(jsonl, row)]))["subject"] == formula


def test_e164_phone_stays_usable_but_other_plus_cells_are_guarded():
    preset = preset_for("klaviyo", "email")
    row = make_row(fields={**EMAIL, "cta": "+SUM(1,2)"})
    header, line = read_csv(write(preset, [record(preset, row)]))
    assert line[header.index("Phone Number")] == "+49301234567"
    assert line[header.index("tailor_email_cta")] == "'+SUM(1,2)"
    # A "phone" that is not a bare E.164 number is guarded like any other cell.
    rec = record(preset, make_row()) | {"Phone Number": "+1+cmd|' /C calc'!A0"}
    assert read_csv(write(preset, [rec]))[1][3].startswith("'+")


def test_rfc4180_quotes_round_trip():
    body = 'He said "hi", then\nleft; 10,5 € off\r\nsee you'
    preset = preset_for("generic_csv", "email")
    data = write(preset, [record(preset, make_row(fields={**EMAIL, "body": body}))])
    header, line = read_csv(data)
    assert line[header.index("body")] == body
    assert b'"He said ""hi"", then\nleft; 10,5 \xe2\x82\xac off\r\nsee you"' in data
    assert data.count(b"\r\n") == 3  # header, the row, and the one inside the quoted body


def test_bom_only_when_asked():
    preset = preset_for("mailchimp")
    assert write(preset, [], excel_bom=True).startswith(b"\xef\xbb\xbfEmail Address,")
    assert write(preset, []).startswith(b"Email Address,")


# --- limits: split or skip, never cut ------------------------------------------------------------


def _body(length: int) -> str:
    words = ("Our", "linen", "shirts", "are", "back", "in", "stock", "in", "twelve", "colours")
    text = ""
    i = 0
    while len(text) < length:
        text += ("" if not text else " ") + words[i % len(words)]
        i += 1
    text = text[:length]
    return text[:-1] + "x" if text.endswith(" ") else text


def test_mailchimp_splits_long_body_at_word_boundaries_within_255_bytes():
    body = _body(2000)
    assert len(body) == 2000
    rec = record(preset_for("mailchimp"), make_row(fields={**EMAIL, "body": body}))
    parts = [rec[f"BODY_{i}"] for i in range(1, 11)]
    used = [p for p in parts if p]
    assert 8 <= len(used) <= 10
    assert parts[len(used) :] == [""] * (10 - len(used))
    assert all(len(p.encode("utf-8")) <= 255 for p in used)
    assert all(p == p.strip() for p in used)
    assert " ".join(used) == body  # single spaces only, so the join is exact
    assert all(re.match(r"\w", p) for p in used)  # no part starts mid-word
    assert all(body.startswith(p) or f" {p}" in body for p in used)


def test_split_keeps_inner_whitespace_and_normalises_only_split_points():
    text = ("alpha beta\n\ngamma " * 20).strip()
    parts = split_text(text, 60, "bytes")
    assert parts is not None and len(parts) > 1
    assert all(len(p.encode()) <= 60 for p in parts)
    assert re.sub(r"\s+", " ", " ".join(parts)) == re.sub(r"\s+", " ", text)
    assert any("\n\n" in p for p in parts)  # paragraph breaks away from split points survive
    assert split_text("short text", 60, "bytes") == ["short text"]
    assert split_text("", 60, "bytes") == []


def test_mailchimp_body_beyond_ten_fields_is_skipped_with_sizes():
    result = preset_for("mailchimp").render(make_row(fields={**EMAIL, "body": _body(3000)}))
    assert result.record is None
    (warning,) = result.warnings
    assert (warning.draft_id, warning.customer_id, warning.column) == (42, "C-17", "BODY")
    assert warning.row_skipped and warning.code == "too_long"
    assert "3000 bytes" in warning.reason and "255 bytes" in warning.reason
    assert "BODY_1…BODY_10" in warning.reason
    assert str(warning).startswith("Draft 42, customer C-17, column BODY: ")


def test_mailchimp_counts_bytes_not_characters():
    chinese = "我们的亚麻衬衫回来了" * 20  # 200 characters, 600 bytes
    rec = record(
        preset_for("mailchimp"),
        make_row(locale="zh", fields={**EMAIL, "body": chinese}),
    )
    used = [rec[f"BODY_{i}"] for i in range(1, 11) if rec[f"BODY_{i}"]]
    assert len(used) == 3
    assert all(len(p.encode("utf-8")) <= 255 for p in used)
    assert "".join(used) == chinese  # zh parts join with nothing

    # 100 characters is well under 255 characters, but 300 bytes: left out, not clipped.
    preheader = "亚麻衬衫" * 25
    result = preset_for("mailchimp").render(
        make_row(locale="zh", fields={**EMAIL, "preheader": preheader})
    )
    assert result.record is None
    (warning,) = result.warnings
    assert warning.column == "PREHEADER"
    assert "300 bytes" in warning.reason and "255 bytes" in warning.reason


def test_word_longer_than_the_limit_is_skipped_not_cut():
    body = "See https://shop.example/" + "x" * 300 + " today"
    result = preset_for("mailchimp").render(make_row(fields={**EMAIL, "body": body}))
    assert result.record is None
    assert "cannot be split" in result.skip_reason


def test_over_long_product_url_is_skipped_not_cut():
    long_url = "https://shop.example/p/" + "a" * 300
    row = make_row(products=(ExportProduct("SKU-9", "Shirt", long_url, "€1", ""),))
    result = preset_for("mailchimp").render(row)
    assert result.record is None
    assert result.warnings[0].column == "P1_URL"
    assert "323 bytes" in result.skip_reason
    # Braze counts characters (255), HubSpot holds 65,536.
    assert preset_for("braze_csv", "email").render(row).warnings[0].column == "tailor_product_1_url"
    assert record(preset_for("hubspot"), row)["tailor_product_1_url"] == long_url


def test_mailchimp_tags_over_100_characters_skip_the_row():
    result = preset_for("mailchimp").render(make_row(segment="S" * 101))
    assert result.record is None
    assert result.warnings[0].column == "Tags" and result.warnings[0].code == "bad_tag"


# --- identifiers and channels --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "channel", "changes", "reason"),
    [
        ("mailchimp", None, {"email": ""}, "no valid email address"),
        ("mailchimp", None, {"email": "jane.doe@"}, "no valid email address"),
        ("hubspot", None, {"email": "not an email"}, "no valid email address"),
        ("klaviyo", "email", {"email": ""}, "no valid email address"),
        (
            "klaviyo",
            "sms",
            {"channel": "sms", "fields": {"text": "Hi"}, "phone": "12"},
            "no valid phone number",
        ),
        ("braze_csv", "email", {"customer_id": "  "}, "no customer id"),
        ("generic_jsonl", None, {"customer_id": ""}, "no customer id"),
        (
            "meta_custom_audience",
            None,
            {"email": "", "phone": ""},
            "no valid email address or valid phone number",
        ),
        (
            "google_customer_match",
            None,
            {"email": "", "phone": "", "zip": ""},
            "no valid email address, valid phone number or full name with country and zip",
        ),
    ],
)
def test_row_without_needed_identifier_is_skipped_with_reason(key, channel, changes, reason):
    result = preset_for(key, channel).render(make_row(**changes))
    assert result.record is None
    assert result.skip_reason == reason
    assert result.warnings[-1].code == "missing_identifier" and result.warnings[-1].row_skipped


def test_google_takes_a_full_mailing_address_without_email_or_phone():
    rec = record(preset_for("google_customer_match"), make_row(email="", phone=""))
    assert rec["Email"] == "" and rec["Phone"] == ""
    assert rec["Country"] == "DE" and rec["Zip"] == "10115"


def test_invalid_phone_and_unknown_country_are_warnings_not_skips():
    result = preset_for("braze_csv", "email").render(make_row(phone="12", country="Atlantis"))
    assert result.record is not None
    assert result.record["phone"] == "" and result.record["country"] == ""
    assert {w.code for w in result.warnings} == {"invalid_phone", "unknown_country"}
    assert not any(w.row_skipped for w in result.warnings)


def test_products_beyond_the_columns_are_named_in_a_warning():
    products = tuple(ExportProduct(f"SKU-{i}", f"P{i}") for i in range(1, 6))
    result = preset_for("mailchimp").render(make_row(products=products))
    assert result.record["P3_NAME"] == "P3"
    (warning,) = result.warnings
    assert warning.code == "extra_products" and "SKU-4, SKU-5" in warning.reason


def test_wrong_channel_and_unknown_preset():
    result = preset_for("mailchimp").render(make_row(channel="sms", fields={"text": "Hi"}))
    assert result.record is None and result.warnings[0].code == "wrong_channel"
    result = preset_for("klaviyo", "email").render(make_row(channel="sms", fields={"text": "Hi"}))
    assert result.record is None and "this file holds email copy" in result.skip_reason
    with pytest.raises(ValueError, match="Mailchimp takes email copy, not 'sms'"):
        preset_for("mailchimp", "sms")
    with pytest.raises(ValueError, match="unknown export preset 'mailchump'.*mailchimp"):
        preset_for("mailchump")
    with pytest.raises(ValueError, match="bind one"):
        open_writer(preset_for("klaviyo"), io.BytesIO())


# --- writers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 3])
def test_braze_json_is_valid_json_for_0_1_3_records(count):
    preset = preset_for("braze_json")
    rows = [make_row(customer_id=f"C-{i}", name="Zoë 王") for i in range(count)]
    data = write(preset, [record(preset, r) for r in rows])
    doc = json.loads(data)
    assert [a["external_id"] for a in doc["attributes"]] == [f"C-{i}" for i in range(count)]
    if count:
        assert "Zoë".encode() in data  # UTF-8, not \u escapes


def test_json_left_unterminated_when_the_export_fails():
    buf = io.BytesIO()
    with pytest.raises(RuntimeError), open_writer(preset_for("braze_json"), buf) as writer:
        writer.write({"external_id": "C-1"})
        raise RuntimeError("database went away")
    with pytest.raises(json.JSONDecodeError):
        json.loads(buf.getvalue())


def test_writer_rejects_unknown_columns_and_writes_after_close_and_leaves_file_open():
    buf = io.BytesIO()
    writer = open_writer(preset_for("mailchimp"), buf)
    with pytest.raises(ValueError, match="not in the header: Nope"):
        writer.write({"Nope": "x"})
    writer.close()
    assert not buf.closed
    with pytest.raises(ValueError, match="closed"):
        writer.write({"Email Address": "a@b.co"})
    assert writer.bytes_written == len(buf.getvalue())


class _Sink:
    """A binary file that keeps nothing, so memory measured is the writer's own."""

    def __init__(self):
        self.size = 0

    def write(self, data):
        self.size += len(data)


@pytest.mark.parametrize(("key", "channel"), [("generic_csv", "email"), ("braze_json", None)])
def test_writer_memory_stays_flat(key, channel):
    preset = preset_for(key, channel)
    rec = record(preset, make_row())
    sink = _Sink()
    writer = open_writer(preset, sink)
    tracemalloc.start()
    try:
        for _ in range(200):
            writer.write(rec)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5_000):
            writer.write(rec)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    writer.close()
    assert sink.size > 5_000 * 100
    # Keeping even a reference per record would take 40 KB; writing them all took none.
    assert after - before < 32 * 1024


def test_export_rows_counts_and_streams():
    rows = [make_row(customer_id=f"C-{i}", email="" if i % 3 == 0 else "a@b.co") for i in range(10)]
    progress = []
    buf = io.BytesIO()
    summary = export_rows(
        preset_for("mailchimp"),
        rows,
        buf,
        on_progress=lambda done, total: progress.append((done, total)),
        total=10,
        progress_every=4,
        keep_warnings=2,
    )
    assert (summary.written, summary.skipped) == (6, 4)
    assert summary.warning_count == 4 and len(summary.warnings) == 2
    assert summary.codes == {"missing_identifier": 4}
    assert progress == [(4, 10), (8, 10), (10, 10)]
    assert len(read_csv(buf.getvalue())) == 7
    assert summary.bytes_written == len(buf.getvalue())


def _split_reference(text: str, limit: int, unit: str) -> list[str] | None:
    """The spaced rule stated plainly (quadratic): each part ends at the last whitespace run,
    not at the text's start, whose preceding text is within the limit."""
    measure = (lambda t: len(t.encode("utf-8"))) if unit == "bytes" else len
    if not text:
        return []
    parts, rest = [], text
    while measure(rest) > limit:
        cut = None
        for match in re.finditer(r"\s+", rest):
            if match.start() == 0:
                continue
            if measure(rest[: match.start()]) > limit:
                break
            cut = match
        if cut is None:
            return None
        parts.append(rest[: cut.start()])
        rest = rest[cut.end() :]
    if rest:
        parts.append(rest)
    return parts


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab é€😀 \n\t")), max_size=120),
    limit=st.integers(min_value=1, max_value=20),
    unit=st.sampled_from(["bytes", "chars"]),
)
def test_spaced_split_matches_the_plain_rule(text, limit, unit):
    assert split_text(text, limit, unit, locale="en") == _split_reference(text, limit, unit)
