"""Every check on planted failures, and clean copy passing in every locale."""

from __future__ import annotations

import pytest

from copygen.engine.checks import (
    CHECKS,
    PhraseIndex,
    amstad,
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
    detect_language,
    failed_checks,
    fernandez_huerta,
    flesch_reading_ease,
    is_blocking,
    kandel_moles,
    readability,
    text_stats,
    zh_sentence_score,
)
from copygen.engine.facts import fact_sheet, format_date, format_price
from copygen.engine.types import LOCALES, BrandRules, Brief, Occasion, Recipient, Variant

PRODUCT = {
    "id": "42",
    "title": "Linen Shirt",
    "brand": "Acme",
    "category": "Men > Shirts",
    "price": "29.90",
    "description": "Made of 100% linen. Weighs 180 g.",
    "attributes": {"color": "blue", "size": "M"},
}
SHEET = fact_sheet(PRODUCT, currency="EUR", rating=4.5)


def sheet(currency="EUR", price="29.90"):
    return fact_sheet(dict(PRODUCT, price=price), currency=currency, rating=4.5)


def push(body, locale="en", title="Linen Shirt"):
    return Variant("push", locale, "friendly", {"title": title, "body": body}, ("42",))


def sms(text, locale="en"):
    return Variant("sms", locale, "friendly", {"text": text}, ("42",))


def failures(results):
    return [r for r in results if not r.ok]


def only(results):
    bad = failures(results)
    assert len(bad) == 1, bad
    return bad[0]


def passes(results):
    return not failures(results)


# --- clean copy ----------------------------------------------------------------------------

CLEAN = {
    "en": (
        "Your Linen Shirt is back",
        "Soft, cool and made of 100% linen. Now only {p} for you.",
        "Hi Anna,\n\nThe Linen Shirt by Acme is made of 100% linen and weighs just 180 g. It "
        "keeps you cool on hot days. Reviewers give it 4.5 stars.\n\nGet yours now for {p}.",
        "Shop now",
    ),
    "de": (
        "Dein Linen Shirt ist zurück",
        "Weich, kühl und aus 100 % Leinen. Jetzt für nur {p} für dich.",
        "Hallo Anna,\n\ndas Linen Shirt von Acme ist aus 100 % Leinen und wiegt nur 180 g. Es "
        "hält dich an heißen Tagen kühl. Die Kunden geben ihm 4,5 Sterne.\n\nHol es dir jetzt "
        "für {p}.",
        "Jetzt kaufen",
    ),
    "fr": (
        "Votre Linen Shirt est de retour",
        "Doux, frais et en lin à 100 %. Maintenant pour {p} seulement.",
        "Bonjour Anna,\n\nLe Linen Shirt de Acme est en lin et pèse 180 g. Il vous garde au "
        "frais les jours de chaleur. Les clients lui donnent 4,5 étoiles.\n\nIl est à vous "
        "pour {p}.",
        "Acheter",
    ),
    "es": (
        "Tu Linen Shirt ha vuelto",
        "Suave, fresca y de lino 100 %. Ahora por solo {p} para ti.",
        "Hola Anna:\n\nLa Linen Shirt de Acme es de lino y pesa solo 180 g. Te mantiene fresca "
        "en los días de calor. Los clientes le dan 4,5 estrellas.\n\nYa es tuya por {p}.",
        "Comprar ahora",
    ),
    "zh": (
        "你的Linen Shirt回来了",
        "柔软凉爽，100%亚麻面料，穿上它整个夏天都很舒服。现在只要{p}，快来看看吧！",
        "Anna你好：\n\nAcme的Linen Shirt采用亚麻面料，重量只有180克。炎热的日子里也能保持凉爽。"
        "顾客给它4.5星好评。\n\n现在只要{p}。",
        "立即购买",
    ),
}


def clean_email(locale, **overrides):
    subject, preheader, body, cta = CLEAN[locale]
    price = format_price(SHEET.price, "EUR", locale)
    fields = {
        "subject": subject,
        "preheader": preheader.format(p=price),
        "body": body.format(p=price),
        "cta": cta,
    }
    fields.update(overrides)
    return Variant("email", locale, "friendly", fields, ("42",))


@pytest.mark.parametrize("locale", LOCALES)
def test_clean_email_passes_every_check(locale):
    results = check_variant(
        clean_email(locale),
        [SHEET],
        Brief("email", locale=locale),
        recipient=Recipient("c1", locale=locale, first_name="Anna"),
        known_titles=["Linen Shirt", "Cotton Dress", "Wool Scarf"],
    )
    assert failures(results) == []
    assert {r.check for r in results} == set(CHECKS)
    assert not is_blocking(results)


# --- limits, required, graphemes -----------------------------------------------------------


def test_sms_161_gsm7_chars_fail_at_one_segment_and_160_pass():
    brief = Brief("sms")
    assert passes(check_limits(sms("a" * 160), brief))
    bad = only(check_limits(sms("a" * 161), brief))
    assert bad.check == "limits"
    assert bad.details["segments"] == 2
    assert bad.details["encoding"] == "GSM-7"
    assert passes(check_limits(sms("a" * 161), Brief("sms", sms_segments=2)))


def test_an_emoji_pushes_sms_into_ucs2_and_over_one_segment():
    text = "Your Linen Shirt is back in stock. Soft, cool and made of 100% linen for 29.90 EUR."
    assert len(text) <= 160
    assert passes(check_limits(sms(text), Brief("sms")))
    bad = only(check_limits(sms(text + " 😍"), Brief("sms")))
    assert bad.details["encoding"] == "UCS-2"
    assert bad.details["non_gsm"] == ["😍"]
    assert "😍" in bad.message


def test_limits_count_graphemes_not_code_points():
    family = "👩\u200d👩\u200d👧"
    ok = Variant("push", "en", "friendly", {"title": family * 40, "body": "Hi"}, ("42",))
    assert passes(check_limits(ok))
    too_long = Variant("push", "en", "friendly", {"title": family * 41, "body": "Hi"}, ("42",))
    bad = only(check_limits(too_long))
    assert (bad.field, bad.details["length"], bad.details["max"]) == ("title", 41, 40)


def test_email_subject_and_preheader_bounds():
    long_subject = clean_email("en", subject="x" * 61)
    assert only(check_limits(long_subject)).field == "subject"
    short_pre = clean_email("en", preheader="Too short")
    bad = only(check_limits(short_pre))
    assert (bad.field, bad.details["min"]) == ("preheader", 40)


def test_required_fields_and_list_counts():
    v = Variant("email", "en", "friendly", {"subject": "Hi", "preheader": "x" * 50}, ("42",))
    missing = {r.field for r in failures(check_required(v))}
    assert missing == {"body", "cta"}

    ads = Variant(
        "google_ads",
        "en",
        "friendly",
        {"headlines": ["Linen Shirt", "Cool Linen"], "descriptions": ["A", "B"]},
        ("42",),
    )
    bad = only(check_required(ads))
    assert bad.field == "headlines"
    assert bad.details["count"] == 2
    ads.fields["headlines"].append("Shop Acme")
    assert passes(check_required(ads))
    ads.fields["headlines"].append("x" * 31)
    assert only(check_limits(ads)).field == "headlines[3]"
    meta = Variant("meta_ads", "en", "friendly", {"primary_text": "Hi", "headline": "Hi"}, ())
    assert passes(check_required(meta))  # description is optional


# --- placeholders, markup ------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["{name}", "{{ first_name }}", "[PRODUCT]", "%s", "<first_name>", "*|FNAME|*", "${x}", "{0}"],
)
def test_leftover_placeholders_fail(token):
    bad = only(check_placeholders(push(f"Hi {token}, your shirt is here")))
    assert token in bad.details["tokens"]


def test_no_placeholder_false_positives():
    assert passes(check_placeholders(push("Save on 100% linen, 12,50 $US, [sic] ok: 5 < 6 > 2")))


@pytest.mark.parametrize(
    "text", ["<script>alert(1)</script>", "Hi <b>there</b>", "<img src=x onerror='x'>"]
)
def test_markup_fails(text):
    assert only(check_markup(push(text))).check == "markup"


def test_placeholder_tag_is_not_markup():
    assert passes(check_markup(push("Hi <first_name>")))


# --- banned words, spam ---------------------------------------------------------------------


def test_banned_word_with_inflection_and_word_boundary():
    brief = Brief("push", brand=BrandRules(banned_words=("cheap", "bargain bin")))
    bad = only(check_banned_words(push("Cheaper than ever"), brief))
    assert bad.details["words"] == ["cheap"]
    assert only(check_banned_words(push("Straight from the BARGAIN BINS"), brief))
    assert passes(check_banned_words(push("Not a cheapskate's deal"), brief))
    assert passes(check_banned_words(push("Cheapside Street style"), brief))


def test_spam_trigger_is_a_warning():
    brief = Brief("push")
    bad = only(check_spam(push("Click here for a guaranteed deal"), brief))
    assert bad.severity == "warning"
    assert not is_blocking([bad])
    assert only(check_spam(push("FREE!!! for you"), brief)).severity == "warning"
    de = Brief("push", locale="de")
    assert only(check_spam(push("Jetzt handeln und sparen", "de"), de))
    assert passes(check_spam(push("A soft linen shirt for warm days"), brief))


# --- capitals, exclamations ----------------------------------------------------------------


def test_capitals():
    bad = only(check_capitals(push("HUGE LINEN SHIRT SALE TODAY ONLY")))
    assert bad.severity == "warning"
    assert bad.details["share"] == 1.0
    assert passes(check_capitals(push("SALE")))  # fewer than 20 letters
    assert passes(check_capitals(push("The Linen Shirt by Acme is back in stock")))


def test_exclamations():
    assert passes(check_exclamations(push("Back in stock!")))
    assert only(check_exclamations(push("Back! In! Stock"))).severity == "warning"
    assert only(check_exclamations(push("Back!!!! In stock"))).severity == "error"
    assert only(check_exclamations(push("回来了！！", "zh"))).details["count"] == 2


# --- readability ---------------------------------------------------------------------------


def test_flesch_reading_ease_hand_computed():
    # 6 words, 6 syllables, 1 sentence: 206.835 - 1.015*6 - 84.6*1
    assert text_stats("The cat sat on the mat.", "en") == (1, 6, 6)
    assert flesch_reading_ease("The cat sat on the mat.") == pytest.approx(116.145)
    # our(1) linen(2) shirt(1) keeps(1) you(1) cool(1) / wear(1) it(1) every(3) day(1):
    # 10 words, 13 syllables, 2 sentences: 206.835 - 1.015*5 - 84.6*1.3 = 91.78
    text = "Our linen shirt keeps you cool. Wear it every day."
    assert text_stats(text, "en") == (2, 10, 13)
    assert flesch_reading_ease(text) == pytest.approx(91.78)


def test_amstad_hand_computed():
    # 180 - ASL - 58.5*ASW; das ist ein Haus: 4 words, 4 syllables -> 180 - 4 - 58.5
    assert amstad("Das ist ein Haus.") == pytest.approx(117.5)
    # Un-se-re(3) neu-e(2) Lei-nen-blu-se(4) ist(1) sehr(1) be-quem(2): 13 syllables
    text = "Unsere neue Leinenbluse ist sehr bequem."
    assert text_stats(text, "de") == (1, 6, 13)
    assert amstad(text) == pytest.approx(180 - 6 - 58.5 * 13 / 6)


def test_kandel_moles_hand_computed():
    # 207 - 1.015*ASL - 73.6*ASW; "table" has a mute final e: 6 words, 6 syllables
    assert kandel_moles("Le chat est sur la table.") == pytest.approx(207 - 6.09 - 73.6)
    # Dé-cou-vrez(3) notre(1) nou-velle(2) che-mise(2) en(1) lin(1) par-faite(2) pour(1)
    # l'é-té(2): 9 words, 15 syllables
    text = "Découvrez notre nouvelle chemise en lin, parfaite pour l'été."
    assert kandel_moles(text) == pytest.approx(207 - 1.015 * 9 - 73.6 * 15 / 9)


def test_fernandez_huerta_hand_computed():
    # 206.84 - 0.60*P - 1.02*ASL, P syllables per 100 words: el gato come pan = 4 words, 6
    assert fernandez_huerta("El gato come pan.") == pytest.approx(206.84 - 0.6 * 150 - 1.02 * 4)
    # la(1) ca-mi-sa(3) de(1) li-no(2) es(1) i-de-al(3) pa-ra(2) el(1) dí-a(2): 9 words, 16
    text = "La camisa de lino es ideal para el día."
    assert fernandez_huerta(text) == pytest.approx(206.84 - 0.6 * 1600 / 9 - 1.02 * 9)


def test_zh_sentence_length_proxy():
    assert zh_sentence_score("我们的衬衫很舒服。每天都可以穿。") == 100.0
    assert zh_sentence_score("这" * 30 + "。") == pytest.approx(50.0)
    assert readability("这" * 40 + "。", "zh") == pytest.approx(25.0)


def test_hard_text_is_a_readability_warning():
    hard = (
        "Our extraordinarily sophisticated manufacturing methodology guarantees "
        "unprecedented durability, exceptional breathability and considerable "
        "environmental responsibility throughout the garment's considerable lifetime."
    )
    bad = only(check_readability(push(hard), Brief("push")))
    assert bad.severity == "warning"
    assert bad.details["score"] < 60
    assert bad.details["formula"] == "Flesch reading ease"
    assert passes(check_readability(push("Too short to measure."), Brief("push")))


# --- language ------------------------------------------------------------------------------


def test_german_text_in_an_en_variant_fails():
    text = "Entdecke jetzt unser neues Linen Shirt für den Sommer, nur für kurze Zeit."
    bad = only(check_language(push(text), Brief("push"), [SHEET]))
    assert bad.details["detected"] == "de"
    assert bad.details["expected"] == "en"
    assert passes(check_language(push(text, "de"), Brief("push", locale="de"), [SHEET]))


def test_language_abstains_on_short_text_and_ignores_product_names():
    assert passes(check_language(push("Jetzt kaufen"), Brief("push"), [SHEET]))
    # an English title inside German copy does not make it English
    de = "Das Linen Shirt von Acme ist wieder da und wartet auf dich."
    assert passes(check_language(push(de, "de"), Brief("push", locale="de"), [SHEET]))
    # a one-letter attribute value ("M") removes that word only, not every letter m
    de = "Mit dem Hemd in M kommst du gut durch den Sommer, nimm es mit."
    assert passes(check_language(push(de, "de"), Brief("push", locale="de"), [SHEET]))
    assert only(check_language(push(de), Brief("push"), [SHEET])).details["detected"] == "de"


def test_language_zh():
    assert detect_language("这件亚麻衬衫非常舒服")[0] == "zh"
    bad = only(check_language(push("这件亚麻衬衫非常舒服，夏天穿很凉快"), Brief("push"), [SHEET]))
    assert bad.details["detected"] == "zh"
    en_in_zh = push("The shirt is soft and cool for every day", "zh")
    assert only(check_language(en_in_zh, Brief("push", locale="zh"), [SHEET]))


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("The shirt is soft and it keeps you cool all day", "en"),
        ("Das Hemd ist weich und hält dich den ganzen Tag kühl", "de"),
        ("La chemise est douce et vous garde au frais toute la journée", "fr"),
        ("La camisa es suave y te mantiene fresco todo el día", "es"),
    ],
)
def test_detect_language(text, lang):
    assert detect_language(text)[0] == lang


# --- disclaimer ----------------------------------------------------------------------------


def test_required_disclaimer():
    brief = Brief("email", brand=BrandRules(disclaimer="Prices incl. VAT."))
    assert only(check_disclaimer(clean_email("en"), brief)).field == "body"
    body = clean_email("en").fields["body"] + "\n\nPrices incl.  VAT."
    assert passes(check_disclaimer(clean_email("en", body=body), brief))
    assert passes(check_disclaimer(push("Hi"), brief))  # no room in a push


# --- fidelity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("£12.50", "GBP"),
        ("12,50 €", "EUR"),
        ("12,50\xa0€", "EUR"),
        ("€12.50", "EUR"),
        ("12,50 $", "USD"),
        ("12,50 $US", "USD"),
        ("US$12.50", "USD"),
        ("¥12.50", "CNY"),
        ("12.50元", "CNY"),
        ("12.50 EUR", "EUR"),
        ("EUR 12.50", "EUR"),
        ("CHF 12.50", "CHF"),
        ("1.212,50 €", "EUR"),
    ],
)
def test_correct_price_in_any_locale_format_passes(text, currency):
    price = "1212.50" if text.startswith("1.212") else "12.50"
    s = sheet(currency, price)
    assert passes(check_fidelity(push(f"Now only {text}, grab it"), [s], Brief("push")))


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("currency", ["EUR", "USD", "GBP", "CNY", "JPY", "CHF", "SEK", "CAD"])
def test_format_price_output_always_passes(locale, currency):
    s = sheet(currency, "1234" if currency == "JPY" else "1234.56")
    body = f"Jetzt {format_price(s.price, currency, locale)}"
    assert passes(check_fidelity(push(body, locale), [s], Brief("push", locale=locale)))


def test_wrong_price_fails_with_details():
    bad = only(check_fidelity(push("Now only €27.90"), [SHEET], Brief("push")))
    assert bad.check == "fidelity"
    assert bad.severity == "error"
    assert bad.details["kind"] == "price"
    assert bad.details["token"] == "€27.90"
    assert bad.details["expected"] == ["€29.90"]


def test_invented_price_fails():
    bad = only(check_fidelity(push("Free shipping from 50 € on"), [SHEET], Brief("push")))
    assert (bad.details["kind"], bad.details["value"]) == ("price", ["50"])


def test_price_in_the_wrong_currency_fails():
    bad = only(check_fidelity(push("Only $29.90"), [SHEET], Brief("push")))
    assert "wrong currency" in bad.message


def test_invented_percentage_fails_and_a_true_one_passes():
    for text in ("30% off today", "Jetzt 30 % Rabatt", "30 Prozent weniger"):
        bad = only(check_fidelity(push(text), [SHEET], Brief("push")))
        assert bad.details["kind"] == "percent"
    assert passes(check_fidelity(push("Made of 100 % linen"), [SHEET], Brief("push")))
    assert passes(check_fidelity(push("30% off"), [SHEET], Brief("push"), allowed_percents=[30]))


def test_numbers_must_come_from_data_occasion_or_allow_list():
    brief = Brief("push")
    assert passes(check_fidelity(push("Weighs 180 g, rated 4.5 stars"), [SHEET], brief))
    assert passes(check_fidelity(push("Rated 4,5 stars"), [SHEET], brief))
    assert passes(check_fidelity(push("Rated 4.5/5"), [SHEET], brief))
    bad = only(check_fidelity(push("Only 3 left"), [SHEET], brief))
    assert (bad.details["kind"], bad.details["token"]) == ("number", "3")
    assert passes(check_fidelity(push("Only 3 left"), [SHEET], brief, allowed_numbers=[3]))


@pytest.mark.parametrize("locale", LOCALES)
def test_occasion_dates_are_allowed(locale):
    occasion = Occasion("black_friday", "Black Friday", "2024-11-29")
    brief = Brief("push", locale=locale, occasion=occasion)
    for fmt in ("long", "short", "medium"):
        text = f"Black Friday: {format_date(occasion.ends_on, locale, format=fmt)}"
        assert passes(check_fidelity(push(text, locale), [SHEET], brief)), text
    bad = only(check_fidelity(push("Until 30.11.2024", locale), [SHEET], brief))
    assert bad.details["kind"] == "date"


def test_another_products_title_fails():
    titles = PhraseIndex(["Linen Shirt", "Cotton Dress", "Shirt"])
    ok = push("The Linen Shirt is back")
    assert passes(check_fidelity(ok, [SHEET], Brief("push"), known_titles=titles))
    bad = only(
        check_fidelity(
            push("Pair it with the Cotton Dress"), [SHEET], Brief("push"), known_titles=titles
        )
    )
    assert (bad.details["kind"], bad.details["token"]) == ("product", "Cotton Dress")
    # a plain list works too
    assert failures(
        check_fidelity(push("cotton dress"), [SHEET], Brief("push"), known_titles=["Cotton Dress"])
    )


def test_wrong_attribute_value_fails():
    known = attribute_index({"color": ["blue", "red", "green"], "material": ["wool"]})
    brief = Brief("push")
    assert passes(check_fidelity(push("In blue"), [SHEET], brief, known_attributes=known))
    bad = only(check_fidelity(push("In red"), [SHEET], brief, known_attributes=known))
    assert (bad.details["kind"], bad.details["attribute"]) == ("attribute", "color")
    assert bad.details["expected"] == ["blue"]
    # an attribute the product does not have is not judged ("wool" may be a selling word)
    assert passes(check_fidelity(push("Warm as wool"), [SHEET], brief, known_attributes=known))


def test_disclaimer_numbers_and_urls_are_not_judged():
    brief = Brief("push", brand=BrandRules(disclaimer="Offer valid for 14 days."))
    text = "Linen Shirt at https://shop.example/p/77. Offer valid for 14 days."
    assert passes(check_fidelity(push(text), [SHEET], brief))


def test_check_variant_reports_each_planted_failure():
    v = clean_email(
        "en",
        subject="{first_name}, 30% OFF EVERYTHING CHEAP!!!!",
        body=CLEAN["en"][2].format(p="€19.90") + " <script>x</script>",
    )
    brief = Brief("email", brand=BrandRules(banned_words=("cheap",), disclaimer="Incl. VAT"))
    results = check_variant(v, [SHEET], brief)
    assert set(failed_checks(results)) == {
        "placeholders",
        "markup",
        "banned_words",
        "capitals",
        "exclamations",
        "disclaimer",
        "fidelity",
    }
    kinds = {r.details["kind"] for r in results if r.check == "fidelity"}
    assert kinds == {"percent", "price"}
    assert is_blocking(results)


def test_unknown_channel():
    v = Variant("fax", "en", "friendly", {"text": "hi"}, ())
    assert only(check_variant(v, [SHEET], Brief("fax"))).check == "required"


def test_phrase_index_finds_titles_sharing_a_first_word_and_one_word_titles():
    titles = [f"Set of {n} Cake Tins" for n in range(2, 40)] + ["Set of 3 Jars", "Doormat"]
    index = PhraseIndex(titles)
    text = "Meet the Set of 3 Jars, next to our doormat and the set of 12 cake tins."
    assert index.find(text) == ["Set of 3 Jars", "Doormat", "Set of 12 Cake Tins"]
    assert index.find("A set of jars.") == []


def test_language_ignores_a_product_name_shortened_to_fit():
    sheet = fact_sheet(
        {
            "id": "t1",
            "title": "Cotton Tote with a Very Long Name That Goes On and On About the Bag",
            "price": "12",
        },
        currency="EUR",
    )
    short = "Cotton Tote with a Very Long Name That Goes"
    v = Variant("push", "zh", "friendly", {"title": short, "body": f"为你推荐{short}。"}, ("t1",))
    brief = Brief(channel="push", locale="zh")
    assert check_language(v, brief, [sheet])[0].ok
