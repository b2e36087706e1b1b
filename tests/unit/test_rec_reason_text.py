"""Every reason kind any algorithm can emit renders to its own sentence, with the facts the
reason carries (cited titles, counts, segment, category)."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.algorithms import reasons as kinds
from recommendations.algorithms.hybrid import REASON_KINDS as HYBRID_KINDS
from recommendations.algorithms.hybrid import Hybrid
from recommendations.reason_text import GENERIC, reason_text

from .rec_planted import planted

TITLES = ("RED MUG", "BLUE MUG")

# Per kind, the data shapes the emitters produce (`reasons.reasons_for`,
# `reasons.buy_again_reason`, `reasons.segment_reasons`, `Hybrid.reason_for`), with the
# words the sentence must contain.
EXAMPLES: dict[str, list[tuple[dict, tuple[str, ...], tuple[str, ...]]]] = {
    kinds.BOUGHT_TOGETHER: [({}, TITLES, ("Because you bought", "RED MUG and BLUE MUG"))],
    kinds.SIMILAR_TO: [({}, TITLES[:1], ("Similar to RED MUG",))],
    kinds.BUY_AGAIN: [
        (
            {"purchases": 4, "every_days": 14, "days_ago": 12, "personal": True},
            TITLES[:1],
            ("every 14 days", "12 days ago"),
        ),
        (
            {"purchases": 1, "every_days": 30, "days_ago": 1, "personal": False},
            TITLES[:1],
            ("yesterday", "customers like you", "every 30 days"),
        ),
    ],
    kinds.POPULAR_SEGMENT: [
        ({"segment": "Champions", "buyers": 12, "days": 30}, (), ("Champions", "12", "30 days")),
        ({"segment": "Germany", "buyers": 3, "days": None}, (), ("Germany", "3 customers")),
    ],
    kinds.NEW_IN_CATEGORY: [
        ({"category": "Home > Kitchen", "purchases": 5}, (), ("Home > Kitchen", "favourite")),
    ],
    kinds.NEW_ARRIVAL: [
        ({"category": "Garden"}, (), ("New in Garden",)),
        ({"category": ""}, (), ("New in the catalog",)),
        ({"category": "mug"}, TITLES[:1], ("New in mug", "RED MUG")),
    ],
    kinds.POPULAR: [
        ({"buyers": 7, "days": 30}, (), ("7 customers", "30 days")),
        ({"buyers": 1, "days": None}, (), ("best seller", "1 customer ")),
        ({"buyers": 0, "days": None}, (), ("Picked for you",)),
    ],
}


def test_the_examples_cover_every_kind_and_the_hybrid_emits_only_those():
    assert set(EXAMPLES) == set(kinds.KINDS)
    assert set(HYBRID_KINDS) <= set(kinds.KINDS)


@pytest.mark.parametrize(
    ("kind", "data", "titles", "words"),
    [(kind, *example) for kind, examples in EXAMPLES.items() for example in examples],
)
def test_each_kind_renders_its_own_sentence_with_its_facts(kind, data, titles, words):
    text = reason_text(kind, data, titles)
    assert text and text != GENERIC
    for word in words:
        assert word in text
    assert "None" not in text


def test_kinds_read_differently_and_an_unknown_kind_gets_a_generic_sentence():
    first = {kind: reason_text(kind, *examples[0][:2]) for kind, examples in EXAMPLES.items()}
    assert len(set(first.values())) == len(first)
    assert reason_text("from_a_newer_model", {}) == GENERIC


def test_every_hybrid_reason_renders_with_the_cited_titles():
    data, _ = planted(n_users=60, extra_items={55: ("g0w1 g0w8 thing0", "cat0")}, extra_users=1)
    titles = data.item_features["title"].to_numpy()
    model = Hybrid(new_item_weight=1.0).fit(data)
    seen = set()
    for user in (0, 1, 2, data.n_users - 1):
        for item in model.recommend(np.array([user]), k=10).items[0]:
            reason = model.reason_for(user, int(item))
            seen.add(reason["kind"])
            cited = [str(titles[h]) for h in reason["items"]]
            text = reason_text(reason["kind"], reason, cited)
            assert text and text != GENERIC and "None" not in text
            assert all(title in text for title in cited)
    assert {kinds.BOUGHT_TOGETHER, kinds.POPULAR_SEGMENT, kinds.NEW_ARRIVAL} <= seen
