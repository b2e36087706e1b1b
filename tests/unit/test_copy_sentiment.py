"""Review sentiment (stars as labels), selling points and interest vectors on tiny planted
data."""

from __future__ import annotations

import random

from copygen.engine.facts import fact_sheet
from copygen.engine.interests import InterestMatcher
from copygen.engine.selling_points import Miner, mine_catalog
from copygen.engine.sentiment import SentimentModel, label_stars, train

POS = [
    "love this dress, the fabric is soft and the fit is perfect",
    "beautiful colour and so comfortable, highly recommend",
    "great quality, flattering and warm, wear it all the time",
    "gorgeous print, lovely drape, fits true to size",
]
NEG = [
    "cheap fabric, it ripped after one wash, returned it",
    "runs small and the material is itchy, very disappointed",
    "awful fit, unflattering and boxy, sending it back",
    "poor quality, the zipper broke, would not buy again",
]


def _planted(n: int = 200, seed: int = 1):
    rng = random.Random(seed)
    texts, stars = [], []
    for _ in range(n):
        if rng.random() < 0.6:
            texts.append(rng.choice(POS) + rng.choice(["", " indeed", " really"]))
            stars.append(rng.choice([4, 5]))
        else:
            texts.append(rng.choice(NEG) + rng.choice(["", " sadly", " honestly"]))
            stars.append(rng.choice([1, 2]))
        if rng.random() < 0.1:
            texts.append("it is fine, nothing special")
            stars.append(3)
    return texts, stars


def test_stars_become_labels_and_three_stars_are_dropped():
    assert label_stars([1, 2, 3, 4, 5]).tolist() == [0, 0, -1, 1, 1]
    assert label_stars([3], neutral="class").tolist() == [2]


def test_planted_reviews_are_separated_with_held_out_figures():
    texts, stars = _planted()
    model = train(texts, stars, seed=0)
    rep = model.report
    assert rep.method == "tfidf+logreg"
    assert rep.accuracy >= 0.95 and rep.f1_macro >= 0.95
    assert rep.n_test > 0 and rep.n_train > rep.n_test
    p = model.positive_proba(
        ["the fabric is soft and the fit is perfect", "cheap and itchy, returned it"]
    )
    assert p[0] > 0.7 > p[1]


def test_training_is_seeded():
    texts, stars = _planted()
    a = train(texts, stars, seed=3).positive_proba(["soft fabric"])
    b = train(texts, stars, seed=3).positive_proba(["soft fabric"])
    assert a.tolist() == b.tolist()


def test_too_few_reviews_fall_back_to_the_lexicon():
    model = train(["great", "awful"], [5, 1])
    assert model.report.method == "lexicon" and model.report.accuracy is None
    p = model.positive_proba(["lovely soft and comfortable", "poor, cheap and broken"])
    assert p[0] > 0.5 > p[1]


def _sheets():
    dress = fact_sheet(
        {
            "id": "d1",
            "title": "Wrap Dress",
            "category": "Dresses",
            "price": "59",
            "description": "<p>Soft <i>jersey</i> wrap dress with <b>deep pockets</b>.</p>",
            "attributes": {"material": "organic cotton"},
        },
        currency="EUR",
        reviews=[
            {"id": "1", "text": "The fabric is so soft and the fit is perfect.", "rating": 5},
            {"id": "2", "text": "It runs small and the fabric is itchy.", "rating": 5},
            {"id": "3", "text": "I am 5 ft 4 and it fits well.", "rating": 5},
        ],
    )
    mug = fact_sheet(
        {
            "id": "m1",
            "title": "Mug",
            "category": "Kitchen",
            "price": "9",
            "description": "Stoneware mug with a speckled glaze.",
        },
        currency="EUR",
    )
    return dress, mug


def test_selling_points_keep_their_sources_and_drop_markup():
    dress, mug = _sheets()
    texts, stars = _planted()
    points = mine_catalog([dress, mug], sentiment=train(texts, stars, seed=0))
    by_kind = {}
    for sp in points["d1"]:
        by_kind.setdefault(sp.kind, []).append(sp)
        assert sp.fact.source.startswith(("product:d1", "review:"))
        assert "<" not in sp.text
    assert by_kind["attribute"][0].text == "organic cotton"
    assert by_kind["attribute"][0].fact.source == "product:d1.attributes.material"
    assert "deep pockets" in {sp.text for sp in by_kind["keyphrase"]}
    reviews = [sp.text for sp in by_kind.get("review", [])]
    assert reviews == ["The fabric is so soft and the fit is perfect."]  # not the negative
    assert all(sp.fact.source == "review:1" for sp in by_kind["review"])
    assert {sp.kind for sp in points["m1"]} == {"keyphrase"}


def test_lexicon_miner_without_rated_reviews():
    dress, _ = _sheets()
    pts = Miner([dress.description], sentiment=SentimentModel()).reviews(dress)
    assert [p.text for p in pts] == ["The fabric is so soft and the fit is perfect."]


def test_interest_matcher_word2vec_and_fallback():
    corpus = [
        "soft wool scarf warm winter knit",
        "merino wool jumper warm knit winter",
        "ceramic coffee mug kitchen tea",
        "stoneware tea cup kitchen coffee",
    ] * 60
    m = InterestMatcher(corpus, seed=0, min_vocab=5)
    assert m.method == "word2vec+tfidf"
    s = m.match(["winter knitwear", "wool"], ["merino wool jumper", "coffee mug"])
    assert s[0] > s[1]
    small = InterestMatcher(["wool scarf", "coffee mug"], seed=0)
    assert small.method == "tfidf"
    s = small.match(["Scarves"], ["wool scarf", "coffee mug"])  # plural matches singular
    assert s[0] > s[1]
    again = InterestMatcher(corpus, seed=0, min_vocab=5)
    assert again.match(["wool"], ["knit"]).tolist() == m.match(["wool"], ["knit"]).tolist()


def test_interest_scores_for_many_texts_equal_the_pairwise_similarity():
    import numpy as np

    corpus = [
        "soft wool scarf warm winter knit",
        "merino wool jumper warm knit winter",
        "ceramic coffee mug kitchen tea",
        "stoneware tea cup kitchen coffee",
    ] * 60
    m = InterestMatcher(corpus, seed=0, min_vocab=5)
    interests = ["winter knitwear", "wool", "coffee"]
    texts = ["merino wool jumper", "coffee mug", "tea cup", "unknown words", "", "wool scarf"]
    weights = np.array([1 / (1 + 0.5 * r) for r in range(3)])
    weights /= weights.sum()
    pairwise = sum(
        w * np.array([m.similarity(i, t) for t in texts])
        for w, i in zip(weights, interests, strict=True)
    )
    assert np.allclose(m.score_texts(interests, texts), pairwise)
    assert np.allclose(m.score_texts(interests, texts[:2]), pairwise[:2])


def test_a_latin_word_inside_chinese_text_stays_a_word():
    from copygen.engine.text import tokens

    assert "linen" in tokens("为你推荐Linen Dress，售价US$29.00。")
    assert tokens("为喜欢Sweaters的你精选") == ["为喜", "喜欢", "sweater", "精选"]
    m = InterestMatcher(["linen dress summer", "wool scarf winter"] * 30, seed=0, min_vocab=5)
    copy = "为你推荐Linen Dress。"
    assert m.similarity("linen", copy) > m.similarity("wool", copy)
