"""prod2vec and the content-based models: sentences and profiles by hand, determinism,
exclusion of bought items, new products, and each model against most-popular on planted
communities."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommendations.algorithms.base import Dataset
from recommendations.algorithms.content import ContentTfidf, ContentW2V, item_texts
from recommendations.algorithms.embeddings import Prod2Vec, purchase_sentences
from recommendations.algorithms.popular import MostPopular
from recommendations.algorithms.vectors import history_weights

from .rec_planted import BLOCK, START, block_title, hit_rate, planted

ROOT = Path(__file__).resolve().parents[2]
SMALL_P2V = {"vector_size": 16, "epochs": 30}


def tiny() -> Dataset:
    """u0 buys a,b (day 0) then c (day 10); u1 buys b,c (day 5)."""
    rows = [
        ("u0", "a", START, "o1"),
        ("u0", "b", START, "o1"),
        ("u0", "c", START + pd.Timedelta(days=10), "o2"),
        ("u1", "b", START + pd.Timedelta(days=5), "o3"),
        ("u1", "c", START + pd.Timedelta(days=5), "o3"),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "basket"])
    return Dataset.from_interactions(frame, user_ids=["u0", "u1"], item_ids=["a", "b", "c"])


def test_sentences_follow_customers_or_baskets_in_time_order():
    data = tiny()
    assert purchase_sentences(data, "customer") == [["0", "1", "2"], ["1", "2"]]
    # u0's second basket has one item: too short to be a sentence.
    assert purchase_sentences(data, "basket") == [["0", "1"], ["1", "2"]]
    with pytest.raises(ValueError):
        purchase_sentences(data, "session")


def test_history_weights_decay_from_the_customers_last_purchase():
    got = history_weights(tiny(), half_life_days=10.0).toarray()
    np.testing.assert_allclose(got[0], [0.5, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(got[1], [0.0, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(history_weights(tiny(), None).toarray()[0], [1, 1, 1])


def test_prod2vec_is_deterministic_for_a_seed():
    data, _ = planted(n_users=60)
    users = np.arange(10)
    first = Prod2Vec(seed=3, **SMALL_P2V).fit(data).scores(users)
    again = Prod2Vec(seed=3, **SMALL_P2V).fit(data).scores(users)
    other = Prod2Vec(seed=4, **SMALL_P2V).fit(data).scores(users)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_prod2vec_does_not_depend_on_the_hash_seed():
    script = textwrap.dedent(
        """
        import numpy as np
        from recommendations.algorithms.embeddings import Prod2Vec
        from tests.unit.rec_planted import planted
        data, _ = planted(n_users=30)
        model = Prod2Vec(seed=1, vector_size=8, epochs=3).fit(data)
        print(np.round(model.scores(np.arange(5)), 5).tobytes().hex()[:4000])
        """
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": ""},
            cwd=ROOT,
        ).stdout
        for hash_seed in ("1", "2")
    ]
    assert outputs[0] and outputs[0] == outputs[1]


@pytest.mark.parametrize(
    "model",
    [Prod2Vec(**SMALL_P2V), ContentTfidf(), ContentW2V(epochs=20)],
    ids=lambda m: m.name,
)
def test_each_model_beats_most_popular_on_planted_communities(model):
    data, held = planted()
    baseline = hit_rate(MostPopular(), data, held)
    assert hit_rate(model, data, held) > baseline + 0.2


@pytest.mark.parametrize(
    "model", [Prod2Vec(**SMALL_P2V), ContentTfidf(), ContentW2V(epochs=5)], ids=lambda m: m.name
)
def test_bought_items_are_never_recommended(model):
    data, _ = planted(n_users=60)
    users = np.arange(60)
    top = model.fit(data).recommend(users, k=20).items
    for user, row in zip(users, top, strict=True):
        assert not set(row) & set(data.matrix[user].indices)


def test_prod2vec_similar_items_stay_in_their_block():
    data, _ = planted()
    model = Prod2Vec(**SMALL_P2V).fit(data)
    top = model.similar_items([0, BLOCK, 2 * BLOCK], k=3).items
    for group, row in enumerate(top):
        assert all(group * BLOCK <= i < (group + 1) * BLOCK for i in row)


def test_item_texts_join_whatever_text_columns_exist():
    features = pd.DataFrame(
        {"title": ["Red Mug", None], "category": ["Kitchen", "Garden"], "price": [1.0, 2.0]}
    )
    assert item_texts(features, 3) == ["red mug kitchen", "garden", ""]
    assert item_texts(pd.DataFrame({"price": [1.0]}), 1) == [""]


@pytest.mark.parametrize("cls", [ContentTfidf, ContentW2V])
def test_content_scores_new_products(cls):
    """Item 55 has never been bought; its title is item 3's (block 0's vocabulary)."""
    new = 55
    data, _ = planted(extra_items={new: (block_title(0, 3), "cat0")})
    assert data.matrix[:, new].nnz == 0
    model = cls(seed=0).fit(data)
    scores = model.scores(np.arange(6))
    group0, others = scores[[0, 3], new], scores[[1, 2, 4, 5], new]
    assert group0.min() > 0.1
    assert group0.min() > others.max()
    # Scored exactly like the established product with the same text.
    np.testing.assert_allclose(scores[:, new], scores[:, 3], rtol=1e-5, atol=1e-6)
    ranks = (-scores[[0, 3]]).argsort(axis=1).argsort(axis=1)[:, new]
    assert ranks.max() < 20


def test_content_is_neutral_for_customers_without_history():
    data, _ = planted(n_users=30, extra_users=1)
    model = ContentTfidf().fit(data)
    assert data.matrix[30].nnz == 0
    np.testing.assert_array_equal(model.scores([30]), 0.0)


def test_content_explain_points_at_similar_history_items():
    data, _ = planted(n_users=30)
    model = ContentTfidf().fit(data)
    user = 0
    item = int(model.recommend([user], k=1).items[0, 0])
    reasons = model.explain(user, item)
    assert reasons
    for history_item, weight in reasons:
        assert data.matrix[user, history_item] > 0 and weight > 0
        assert history_item // BLOCK == item // BLOCK  # same vocabulary


def test_popularity_exponent_tilts_content_towards_best_sellers():
    data, _ = planted(n_users=60)
    plain = ContentTfidf().fit(data).scores([0])[0]
    tilted = ContentTfidf(popularity_exponent=1.0).fit(data).scores([0])[0]
    buyers = np.diff(data.matrix.tocsc().indptr)
    np.testing.assert_allclose(tilted, plain * (1 + buyers), rtol=1e-5)


def test_prod2vec_without_a_vocabulary_scores_zero_instead_of_failing():
    # Every item is bought fewer than min_count times: gensim has nothing to learn.
    data = tiny()
    model = Prod2Vec(seed=0, min_count=5, **SMALL_P2V).fit(data)
    assert model.item_vectors.shape == (3, SMALL_P2V["vector_size"])
    assert not model.item_vectors.any() and not model.target_vectors.any()
    assert not model.scores(np.array([0, 1])).any()
    # No sentences at all (every customer bought one item) is the same case.
    one = Dataset.from_interactions(
        pd.DataFrame({"user_id": ["u0", "u1"], "item_id": ["a", "b"], "timestamp": [START] * 2})
    )
    assert not Prod2Vec(seed=0, **SMALL_P2V).fit(one).item_vectors.any()


def test_pickled_models_keep_no_event_log_gensim_model_or_vectorizer():
    import pickle

    data, _ = planted(n_users=30)
    for model in (Prod2Vec(seed=0, **SMALL_P2V), ContentTfidf(), ContentW2V(epochs=2)):
        model.fit(data)
        assert not hasattr(model, "model") and not hasattr(model, "vectorizer")
        copy = pickle.loads(pickle.dumps(model))
        assert copy.data.events is None and model.data.events is not None
        users = np.arange(5)
        np.testing.assert_array_equal(copy.scores(users), model.scores(users))
        assert copy.recommend(users, 3).items.tolist() == model.recommend(users, 3).items.tolist()
