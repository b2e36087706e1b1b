"""Fuzzing the copy checks: any text in any field, any product data, any brand rules.

`check_variant` (and each `check_*` on its own) must never raise, must return well-formed
results (a known check name, pass or fail, a severity, a message and a field on every
failure, details the draft can store as JSON), must answer the same twice, and must not
change the variant it checks. A draft's stored fields are strings without NUL up to 20,000
characters (copygen.services.drafts), but the engine's own variants and the live editor reach
the checks too, so the texts here include NUL, lone surrogates, bidi controls, combining
marks, emoji and 20,000-character runs. Product data and brand rules stay within their
database columns (a title of 500 characters at most).
"""

from __future__ import annotations

import copy
import json
import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from copygen.engine.channels import FIELDS
from copygen.engine.checks import (
    CHECKS,
    ERROR,
    WARNING,
    PhraseIndex,
    attribute_index,
    check_banned_words,
    check_capitals,
    check_disclaimer,
    check_exclamations,
    check_fidelity,
    check_language,
    check_limits,
    check_markup,
    check_placeholders,
    check_readability,
    check_required,
    check_spam,
    check_variant,
)
from copygen.engine.facts import fact_sheet
from copygen.engine.types import (
    CHANNELS,
    LOCALES,
    TONES,
    BrandRules,
    Brief,
    CheckResult,
    Occasion,
    Recipient,
    Variant,
)

EXAMPLES = int(os.environ.get("TAILOR_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Pieces the checks look for, so random text hits their branches.
_PIECES = [
    "Linen Shirt", "Acme", "€29.90", "29,90 €", "$5", "50%", "100% linen", "180 g", "FREE",
    "BUY NOW!!!", "!!!", "click here", "guaranteed", "{name}", "{{ x }}", "[PRODUCT]", "*|FNAME|*",
    "%s", "<b>", "</p>", "<script>", "javascript:", "<first_name>", "TODO", "lorem ipsum",
    "Hallo", "Bonjour", "Hola", "你好，欢迎", "Größe", "naïve", "e\u0301", "👩‍👩‍👧", "🇩🇪",
    "\u200f\u202e", "\u200b", "\ufeff", "\x00", "\ud800", "\udc80", "\n\n", "\r\n", "\t", " ",
    ".", "?", "…", "¡", "¿", "Incl. VAT", "cheap", "blue", "M", "12", "3.5", "1e9", "-0",
]  # fmt: skip
_SHORT = [
    st.lists(st.sampled_from(_PIECES), max_size=12).map(" ".join),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
]
# Product data and brand rules as the database holds them (titles up to 500 characters).
DATA = st.one_of(*_SHORT, st.sampled_from(["", " ", "A" * 300, "a " * 250, "ä" * 500]))
# Copy: a stored draft's text goes up to 20,000 characters.
TEXT = st.one_of(
    *_SHORT, st.sampled_from(["", " ", "x" * 20_000, "Ä " * 10_000, "!" * 5000, "A" * 300])
)


@st.composite
def variants(draw) -> Variant:
    channel = draw(st.sampled_from([*CHANNELS, *CHANNELS, "fax"]))
    specs = FIELDS.get(channel, ())
    fields: dict = {}
    for spec in specs:
        if draw(st.integers(0, 5)) == 0:
            continue  # left out
        if spec.kind == "list":
            fields[spec.name] = draw(st.lists(st.one_of(TEXT, st.none()), max_size=17))
        else:
            fields[spec.name] = draw(st.one_of(TEXT, TEXT, st.none(), st.integers()))
    if draw(st.integers(0, 5)) == 0:
        fields[draw(st.text(max_size=8))] = draw(TEXT)  # a field the channel does not have
    return Variant(
        channel=channel,
        locale=draw(st.sampled_from(LOCALES)),
        tone=draw(st.sampled_from([*TONES, "weird"])),
        fields=fields,
        product_ids=tuple(draw(st.lists(st.sampled_from(["42", "43", "99"]), max_size=3))),
        recipient_key=draw(st.sampled_from(["", "c1", "segment:3"])),
    )


@st.composite
def sheets(draw) -> list:
    out = []
    for pid in draw(st.lists(st.sampled_from(["42", "43"]), max_size=2, unique=True)):
        product = {
            "id": pid,
            "title": draw(st.one_of(st.just("Linen Shirt"), DATA)),
            "brand": draw(st.one_of(st.just("Acme"), DATA)),
            "category": draw(st.one_of(st.just("Men > Shirts"), DATA)),
            "price": draw(st.sampled_from(["29.90", "0", "-1", "1e20", "abc", "", None, "NaN"])),
            "description": draw(DATA),
            "attributes": draw(st.dictionaries(st.sampled_from(["color", "size", ""]), DATA,
                                               max_size=3)),
        }  # fmt: skip
        out.append(
            fact_sheet(
                product,
                currency=draw(st.sampled_from(["EUR", "GBP", "USD", "JPY", "XXX", ""])),
                rating=draw(st.one_of(st.none(), st.floats(allow_nan=True))),
                reviews=draw(st.lists(DATA, max_size=3)),
            )
        )
    return out


@st.composite
def briefs(draw, channel: str) -> Brief:
    occasion = draw(
        st.one_of(st.none(), st.builds(Occasion, key=st.just("black_friday"), name=DATA))
    )
    return Brief(
        channel=channel,
        tone=draw(st.sampled_from(TONES)),
        locale=draw(st.sampled_from(LOCALES)),
        occasion=occasion,
        brand=BrandRules(
            voice=tuple(draw(st.lists(DATA, max_size=2))),
            banned_words=tuple(
                draw(st.lists(st.one_of(DATA, st.sampled_from(_PIECES)), max_size=4))
            ),
            disclaimer=draw(st.one_of(st.just(""), st.just("Incl. VAT"), DATA)),
            sender=draw(st.one_of(st.just(""), DATA)),
        ),  # fmt: skip
        sms_segments=draw(st.integers(0, 10)),
    )


def _assert_well_formed(results: list, *, channel: str) -> None:
    assert isinstance(results, list) and results
    for r in results:
        assert isinstance(r, CheckResult)
        assert r.check in CHECKS, r.check
        assert isinstance(r.ok, bool)
        assert r.severity in (ERROR, WARNING)
        assert isinstance(r.message, str) and isinstance(r.field, str)
        if not r.ok:
            assert r.message.strip(), r
            assert "Traceback" not in r.message
        json.dumps(r.details, default=str)  # a draft stores its failures as JSON
        json.dumps(
            {"check": r.check, "field": r.field, "message": r.message, "severity": r.severity}
        )
    names = {r.check for r in results}
    if channel in FIELDS:
        assert names == set(CHECKS)  # every check answers: a pass or its failures
        for name in CHECKS:
            outcome = [r.ok for r in results if r.check == name]
            assert outcome == [True] or not any(outcome), (name, outcome)
    else:
        assert names == {"required"} and not results[0].ok


@FUZZ
@given(
    variant=variants(),
    sheets_=sheets(),
    data=st.data(),
    titles=st.lists(st.one_of(st.just("Linen Shirt"), DATA), max_size=4),
    attributes=st.dictionaries(st.sampled_from(["color", "size"]), st.lists(DATA, max_size=3),
                               max_size=2),
)  # fmt: skip
@example(
    variant=Variant("sms", "en", "friendly", {"text": "\ud800 \x00 €29.90"}, ("42",)),
    sheets_=[],
    data=None,
    titles=[],
    attributes={},
)
def test_check_variant_never_raises_and_answers_the_same_twice(
    variant, sheets_, data, titles, attributes
):
    brief = data.draw(briefs(variant.channel)) if data is not None else Brief(variant.channel)
    recipient = Recipient("c1", locale=variant.locale or "en", first_name="Anna")
    before = copy.deepcopy(variant)
    kwargs = {
        "recipient": recipient,
        "known_titles": PhraseIndex(titles),
        "known_attributes": attribute_index(attributes),
        "allowed_numbers": ("12",),
        "allowed_percents": ("50",),
    }
    first = check_variant(variant, sheets_, brief, **kwargs)
    _assert_well_formed(first, channel=variant.channel)
    assert check_variant(variant, sheets_, brief, **kwargs) == first
    assert variant == before, "the checks changed the variant"
    # Plain iterables instead of prebuilt indexes: the same answer.
    plain = dict(kwargs, known_titles=titles, known_attributes=attributes)
    assert check_variant(variant, sheets_, brief, **plain) == first


@FUZZ
@given(variant=variants(), sheets_=sheets(), data=st.data())
def test_each_check_alone_never_raises(variant, sheets_, data):
    if variant.channel not in FIELDS:
        variant.channel = "email"
    brief = data.draw(briefs(variant.channel))
    calls = [
        lambda: check_required(variant),
        lambda: check_limits(variant, brief),
        lambda: check_limits(variant),
        lambda: check_placeholders(variant),
        lambda: check_markup(variant),
        lambda: check_banned_words(variant, brief),
        lambda: check_spam(variant, brief),
        lambda: check_capitals(variant),
        lambda: check_exclamations(variant),
        lambda: check_readability(variant, brief),
        lambda: check_readability(variant),
        lambda: check_language(variant, brief, sheets_),
        lambda: check_disclaimer(variant, brief),
        lambda: check_fidelity(variant, sheets_, brief),
    ]
    for call in calls:
        results = call()
        assert results and all(isinstance(r, CheckResult) for r in results)
        assert len({r.check for r in results}) == 1
        assert call() == results


# ------------------------------------------------------------------ what fuzzing found

_PRODUCT = {"id": "42", "title": "Linen Shirt", "brand": "Acme", "price": "29.90"}


def test_a_sheet_without_a_currency_is_checked_not_crashed():
    """An empty currency code added "" to the money symbols: IndexError on ""[0] (and an
    empty alternative would have matched next to every number)."""
    sheet = fact_sheet(_PRODUCT, currency="")
    variant = Variant("push", "en", "friendly", {"title": "Shirt", "body": "Now 29.90!"}, ("42",))
    results = check_variant(variant, [sheet], Brief("push"))
    _assert_well_formed(results, channel="push")


def test_a_price_that_is_not_a_number_is_no_price():
    """fact_sheet kept Decimal("NaN"), which the fidelity check could not sort
    (decimal.InvalidOperation)."""
    for price in ("NaN", "sNaN", "Infinity", "-inf", float("nan")):
        sheet = fact_sheet({**_PRODUCT, "price": price}, currency="EUR")
        assert sheet.price is None
        assert not [f for f in sheet.facts if f.kind == "price"]
    variant = Variant("push", "en", "friendly", {"title": "Shirt", "body": "Only €9.99"}, ("42",))
    results = check_variant(variant, [sheet, fact_sheet(_PRODUCT, currency="EUR")], Brief("push"))
    _assert_well_formed(results, channel="push")
    assert [r.check for r in results if not r.ok] == ["fidelity"]  # €9.99 is no price of theirs
