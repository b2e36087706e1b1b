"""The fast paths of the copy engine give the same results as the plain ones."""

from __future__ import annotations

import random
from decimal import Decimal

import numpy as np
import pytest

from copygen.engine import checks
from copygen.engine.generate import generate_detailed
from copygen.engine.interests import InterestMatcher
from copygen.engine.types import BrandRules, Brief, FactSheet, Occasion, Recipient, Variant


def _one_pattern(text: str, names: tuple[str, ...], first: str) -> str:
    """What check_language did before: one pattern of every name, the first name too."""
    every = tuple(sorted({*names, first} - {""}, key=len, reverse=True))
    pattern = checks._names_pattern(every)
    return pattern.sub(" ", text) if pattern is not None else text


@pytest.mark.parametrize(
    "text,names,first",
    [
        ("Hi Anna, the Anna Lamp is back.", ("Anna Lamp", "Lamp"), "Anna"),
        ("Hi Jean-Luc, Jean says hello.", ("Jean",), "Jean-Luc"),
        ("Hello Rose, meet the Rose Garden Mug.", ("Rose Garden Mug", "Rose Garden"), "rose"),
        ("Hi Bella, the Bell jar.", ("Bell",), "Bella"),
        ("Nothing to strip here.", ("Mug",), "Tom"),
        ("Tom Tom Mug Tom", ("Tom Mug", "Mug"), "Tom"),
        ("Hi Mug", ("Mug",), "Mug"),
        ("Hi Ann", (), "Ann"),
    ],
)
def test_names_are_stripped_as_by_one_pattern(text, names, first):
    names = tuple(sorted(set(names), key=len, reverse=True))
    assert checks._without_names(text, names, first) == _one_pattern(text, names, first)


def test_names_stripped_as_by_one_pattern_random():
    rng = random.Random(5)
    words = ["Anna", "Lamp", "Rose", "Mug", "Jean", "Luc", "Garden", "the", "Bell", "Bella"]
    for _ in range(400):
        names = tuple(
            sorted(
                {" ".join(rng.sample(words, rng.randint(1, 3))) for _ in range(rng.randint(0, 4))},
                key=len,
                reverse=True,
            )
        )
        first = rng.choice([*words, "Jean-Luc", ""])
        text = " ".join(rng.choice([*words, "and", "-", ","]) for _ in range(rng.randint(3, 14)))
        assert checks._without_names(text, names, first) == _one_pattern(text, names, first)


def _sheet(price: str = "12.50") -> FactSheet:
    return FactSheet(
        product_id="7",
        title="Linen Tote Bag",
        currency="GBP",
        price=Decimal(price),
        brand="Acme",
        category="Bags > Totes",
        description="A roomy tote in washed linen. It folds flat for travel.",
        attributes={"material": "Linen", "color": "Sand"},
        reviews=("I take it everywhere, it holds my laptop and lunch.",),
        rating=4.5,
        review_count=12,
    )


BRIEF = Brief(
    channel="email",
    variants=1,
    occasion=Occasion("christmas", "Christmas", "2026-12-25"),
    brand=BrandRules(banned_words=("cheap", "free"), sender="Acme"),
)
ALICE = Recipient(key="customer:1", first_name="Alice", interests=("Totes", "linen bags"))


def test_one_variant_is_deterministic_and_passes():
    a = generate_detailed(ALICE, [_sheet()], BRIEF, seed=3)
    b = generate_detailed(ALICE, [_sheet()], BRIEF, seed=3)
    assert [v.fields for v in a.variants] == [v.fields for v in b.variants]
    assert len(a.variants) == 1 and a.checks[0] is not None
    assert not checks.is_blocking(a.checks[0])
    # the stored results are those of a fresh check of the same text
    again = checks.check_variant(a.variants[0], [_sheet()], BRIEF, recipient=ALICE)
    assert [(r.check, r.ok, r.message) for r in again] == [
        (r.check, r.ok, r.message) for r in a.checks[0]
    ]


def test_a_changed_price_gives_new_text_and_checks():
    """Nothing cached per product serves stale data: a sheet whose price changed gives
    text with the new price, and the old text fails fidelity against it."""
    old_sheet, new_sheet = _sheet("12.50"), _sheet("19.00")
    old = generate_detailed(ALICE, [old_sheet], BRIEF, seed=3)
    assert "£12.50" in old.variants[0].fields["body"]
    assert not checks.is_blocking(old.checks[0])
    new = generate_detailed(ALICE, [new_sheet], BRIEF, seed=3)
    text = "\n".join(new.variants[0].fields.values())
    assert "£19.00" in text and "12.50" not in text
    assert not checks.is_blocking(new.checks[0])
    results = checks.check_variant(old.variants[0], [new_sheet], BRIEF, recipient=ALICE)
    assert any(r.check == "fidelity" and not r.ok and "12.50" in r.message for r in results)


def test_many_variants_still_distinct():
    brief = Brief(channel="email", variants=3, brand=BrandRules(sender="Acme"))
    g = generate_detailed(ALICE, [_sheet()], brief, seed=1)
    assert len(g.variants) == 3
    assert len({v.fields["body"] for v in g.variants}) == 3


def test_score_texts_small_path_matches_pairwise_similarity():
    m = InterestMatcher(
        ["linen tote bag for travel", "cotton mug for tea", "wool scarf warm winter"] * 30
    )
    interests = ("linen", "tea mug", "winter scarf")
    texts = ["Linen Tote Bag Totes", "Tea Mug"]
    got = m.score_texts(interests, texts)
    w = np.array([1.0 / (1.0 + 0.5 * r) for r in range(3)])
    w /= w.sum()
    want = np.zeros(2)
    for wi, i in zip(w, interests, strict=True):
        want += wi * np.array([m.similarity(i, t) for t in texts])
    assert got.tolist() == want.tolist()
    assert m.score_texts((), texts).tolist() == [0.0, 0.0]


def test_variant_check_of_edited_text_uses_names_of_its_sheet():
    v = Variant(
        channel="push",
        locale="en",
        tone="friendly",
        fields={"title": "Hallo Alice", "body": "Die Linen Tote Bag ist da und sie ist schön"},
        product_ids=("7",),
    )
    results = checks.check_language(v, BRIEF, [_sheet()], recipient=ALICE)
    assert not results[0].ok and results[0].details["detected"] == "de"
