"""The copy generator: every locale × channel renders within limits and passes the checks;
variants differ; urgency needs data; markup stays out; seeded; personalized."""

from __future__ import annotations

import pytest

from copygen.engine import checks
from copygen.engine.facts import fact_sheet
from copygen.engine.generate import CopyModel, distinct_n, generate, variant_text
from copygen.engine.grammar import display_name, shorten
from copygen.engine.types import CHANNELS, LOCALES, BrandRules, Brief, Occasion, Recipient

REVIEWS = [
    ("Love the fabric, it is so soft and the fit is perfect.", 5),
    ("The colour is gorgeous and the linen feels lovely.", 5),
    ("Runs small and the fabric is itchy. Returned it.", 1),
    ("Great quality wool, very warm and cozy.", 5),
    ("Cheap material, it broke after a week.", 2),
] * 12


def _catalog():
    products = [
        {
            "id": "1",
            "title": "Linen Summer Dress",
            "category": "Women > Dresses",
            "price": "49.90",
            "description": (
                "<p>A breezy <b>linen dress</b> with a flattering wrap waist and deep side "
                "pockets.</p><script>alert('x')</script> Machine washable."
            ),
            "attributes": {"material": "organic linen", "colour": "sage green"},
            "stock_quantity": 4,
        },
        {
            "id": "2",
            "title": "Merino Wool Scarf",
            "category": "Accessories > Scarves",
            "price": "25",
            "description": "A soft merino wool scarf with fringed ends, knitted in Scotland.",
            "attributes": {"material": "merino wool"},
            "stock_quantity": 80,
        },
        {
            "id": "3",
            "title": "WHITE HANGING HEART T-LIGHT HOLDER",
            "category": "Home > Candles",
            "price": "2.95",
            "description": "Hanging heart holder for tea lights, in white enamel.",
        },
        {
            "id": "4",
            "title": "Ceramic Coffee Mug",
            "category": "Home > Kitchen",
            "price": "12.5",
            "description": "A glazed stoneware mug for coffee and tea, dishwasher safe.",
            "attributes": {"color": "cobalt blue"},
        },
    ]
    reviews = {
        "1": [
            {"id": "r1", "text": REVIEWS[0][0], "rating": 5},
            {"id": "r2", "text": REVIEWS[1][0], "rating": 5},
        ],
        "2": [{"id": "r4", "text": REVIEWS[3][0], "rating": 5}],
    }
    return [
        fact_sheet(
            p,
            currency="EUR",
            reviews=reviews.get(p["id"], []),
            rating=4.5 if p["id"] == "1" else None,
            review_count=12 if p["id"] == "1" else None,
        )
        for p in products
    ]


@pytest.fixture(scope="module")
def catalog():
    return _catalog()


@pytest.fixture(scope="module")
def model(catalog):
    return CopyModel(catalog, reviews=REVIEWS, seed=0)


ANNA = Recipient("c1", locale="en", first_name="Anna", interests=("Dresses", "linen"))
BRAND = BrandRules(sender="Tailor Shop", disclaimer="Prices include VAT.")


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_every_locale_and_channel_renders_within_limits_and_passes_checks(
    model, catalog, locale, channel
):
    for tone in ("friendly", "premium", "informative"):
        brief = Brief(channel=channel, tone=tone, locale=locale, variants=3, brand=BRAND)
        gen = model.generate_detailed(ANNA, catalog[:1], brief)
        assert len(gen.variants) == 3, gen.dropped
        for v in gen.variants:
            results = checks.check_variant(v, catalog[:1], brief, recipient=ANNA)
            errors = [r for r in results if not r.ok and r.severity == "error"]
            assert not errors, (v.fields, errors)
            limits = [r for r in results if r.check in ("limits", "placeholders", "fidelity")]
            assert all(r.ok for r in limits)
            text = variant_text(v)
            assert "{" not in text and "}" not in text


@pytest.mark.parametrize("locale", LOCALES)
def test_variants_of_an_item_differ(model, catalog, locale):
    # (a required disclaimer is the same words in every variant: left out here)
    brief = Brief(
        channel="email",
        tone="friendly",
        locale=locale,
        variants=3,
        brand=BrandRules(sender="Tailor"),
    )
    variants = model.generate(ANNA, catalog[:1], brief)
    assert distinct_n([variant_text(v) for v in variants]) >= 0.6
    assert len({v.fields["body"] for v in variants}) == 3


def test_urgent_tone_needs_stock_or_occasion_data(model, catalog):
    brief = Brief(channel="email", tone="urgent", locale="en", variants=2)
    scarf = [catalog[1]]  # 80 in stock, no occasion
    gen = model.generate_detailed(ANNA, scarf, brief)
    assert all(v.tone == "friendly" for v in gen.variants)
    assert gen.notes and "urgent" in gen.notes[0]
    assert all(v.notes for v in gen.variants)

    low = model.generate_detailed(ANNA, [catalog[0]], brief)  # 4 left
    assert all(v.tone == "urgent" for v in low.variants)
    assert any("4" in variant_text(v) for v in low.variants)

    occ = Occasion("black_friday", "Black Friday", ends_on="2025-11-28")
    dated = model.generate_detailed(
        ANNA, scarf, Brief(channel="email", tone="urgent", occasion=occ)
    )
    assert all(v.tone == "urgent" for v in dated.variants)
    # an occasion that is over does not support urgency
    past = Brief(channel="email", tone="urgent", occasion=occ)
    import datetime as dt

    over = model.generate_detailed(ANNA, scarf, past, today=dt.date(2025, 12, 5))
    assert all(v.tone == "friendly" for v in over.variants)


def test_no_number_or_claim_beyond_the_facts(model, catalog):
    for channel in CHANNELS:
        for v in model.generate(ANNA, [catalog[1]], Brief(channel=channel, variants=3)):
            text = variant_text(v)
            assert "%" not in text
            for word in ("free shipping", "sale", "off", "new arrival", "bestseller"):
                assert f" {word} " not in f" {text.lower()} "


def test_html_in_catalog_text_stays_plain_text(model, catalog):
    for channel in CHANNELS:
        for v in model.generate(ANNA, [catalog[0]], Brief(channel=channel, variants=3)):
            text = variant_text(v)
            assert "<" not in text and ">" not in text
            assert "script" not in text.lower() and "alert" not in text


def test_same_seed_same_copy_other_seed_other_copy(model, catalog):
    brief = Brief(channel="email", locale="de", variants=3, brand=BRAND)
    a = model.generate(ANNA, catalog[:1], brief, seed=7)
    b = model.generate(ANNA, catalog[:1], brief, seed=7)
    c = model.generate(ANNA, catalog[:1], brief, seed=8)
    assert [v.fields for v in a] == [v.fields for v in b]
    assert [v.fields for v in a] != [v.fields for v in c]


def test_copy_follows_the_recipients_interests(model, catalog):
    """The same products, two recipients: the selling points picked for each match their
    own interests more often."""
    mug = catalog[3]
    scarf = catalog[1]
    coffee = Recipient("c2", interests=("coffee", "Kitchen"))
    knit = Recipient("c3", interests=("wool", "Scarves"))
    brief = Brief(channel="email", variants=3, products_per_message=1)
    v_coffee = model.generate(coffee, [scarf, mug], brief)
    v_knit = model.generate(knit, [scarf, mug], brief)
    assert all(v.product_ids == ("4",) for v in v_coffee)
    assert all(v.product_ids == ("2",) for v in v_knit)
    m = model.matcher
    own = m.score_texts(coffee.interests, [variant_text(v) for v in v_coffee]).mean()
    other = m.score_texts(knit.interests, [variant_text(v) for v in v_coffee]).mean()
    assert own > other
    # within one product, the interest-matching point comes first
    pts = model.selling_points(catalog[0])
    from copygen.engine.generate import rank_points

    ranked = rank_points(pts, ("green",), m)
    assert "green" in ranked[0].text


def test_generate_without_model_and_with_catalog_titles(catalog):
    brief = Brief(channel="push", locale="fr", variants=2)
    out = generate(ANNA, catalog[:1], brief, catalog_titles=[s.title for s in catalog])
    assert len(out) == 2
    assert all(v.product_ids == ("1",) for v in out)


def test_names_are_shortened_at_word_boundaries():
    assert shorten("Set of 3 Ceramic Storage Jars Large", 20) == "Set of 3 Ceramic"
    assert shorten("Set of 12 Jars", 7) == "Set"  # never "Set of 1"
    assert shorten("Short", 30) == "Short"
    assert (
        display_name("WHITE HANGING HEART T-LIGHT HOLDER") == "White Hanging Heart T-Light Holder"
    )
    assert display_name("<b>Mug</b> &amp; Saucer") == "Mug & Saucer"


def test_zh_has_no_spaces_between_sentences(model, catalog):
    for v in model.generate(ANNA, catalog[:1], Brief(channel="push", locale="zh", variants=3)):
        assert "。 " not in v.fields["body"] and ". " not in v.fields["body"]
        assert "。" in v.fields["body"] or "！" in v.fields["body"]


def test_sms_fits_one_segment_and_google_ads_counts(model, catalog):
    from copygen.engine.channels import sms_segments

    for loc in LOCALES:
        for v in model.generate(ANNA, catalog[:1], Brief(channel="sms", locale=loc, variants=3)):
            assert sms_segments(v.fields["text"])[1] == 1
        for v in model.generate(ANNA, catalog[:1], Brief(channel="google_ads", locale=loc)):
            assert 3 <= len(v.fields["headlines"]) <= 15
            assert 2 <= len(v.fields["descriptions"]) <= 4
