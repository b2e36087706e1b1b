"""Every recommender the evaluation and the product can choose from, by name.

To register an algorithm, add one import line and one ``Cls.name: Cls,`` line below; the
name is the class's ``name`` attribute (what ``--algorithms`` and the JSON reports use).
"""

from __future__ import annotations

from .base import Recommender
from .buy_again import BuyAgain
from .content import ContentTfidf, ContentW2V
from .embeddings import Prod2Vec
from .graph import RP3Beta
from .hybrid import Hybrid
from .linear import EASE
from .mf import ALS, BPR
from .neighbors import (
    ItemKNNBM25,
    ItemKNNCosine,
    ItemKNNJaccard,
    UserKNNCosine,
    UserKNNPearson,
)
from .popular import MostPopular, RecentPopular, SegmentPopular
from .ranker import NeuralRanker

ALGORITHMS: dict[str, type[Recommender]] = {
    MostPopular.name: MostPopular,
    RecentPopular.name: RecentPopular,
    SegmentPopular.name: SegmentPopular,
    ItemKNNCosine.name: ItemKNNCosine,
    ItemKNNJaccard.name: ItemKNNJaccard,
    ItemKNNBM25.name: ItemKNNBM25,
    UserKNNCosine.name: UserKNNCosine,
    UserKNNPearson.name: UserKNNPearson,
    EASE.name: EASE,
    RP3Beta.name: RP3Beta,
    BuyAgain.name: BuyAgain,
    ALS.name: ALS,
    BPR.name: BPR,
    Prod2Vec.name: Prod2Vec,
    ContentTfidf.name: ContentTfidf,
    ContentW2V.name: ContentW2V,
    NeuralRanker.name: NeuralRanker,
    Hybrid.name: Hybrid,
}


def get(name: str) -> type[Recommender]:
    """The registered class called ``name``; KeyError lists the known names."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r} (known: {', '.join(ALGORITHMS)})") from None
