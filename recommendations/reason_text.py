"""A recommendation's reason in words, from its data (see recommendations.algorithms.reasons).

Rendered once when the rows are written (titles as they were then) and on the fly for the
preview; the words for each kind live only here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recommendations.algorithms import reasons as kinds


def _titles(titles: Sequence[str]) -> str:
    quoted = [t for t in titles if t]
    if not quoted:
        return "what you bought"
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _days(n: int) -> str:
    return "today" if n <= 0 else "yesterday" if n == 1 else f"{n} days ago"


def _customers(n: int) -> str:
    return f"{n:,} customer" + ("" if n == 1 else "s")


# For a kind this module does not know (a newer algorithm's, an older row's).
GENERIC = "Recommended for you"


def reason_text(kind: str, data: Mapping[str, Any], titles: Sequence[str] = ()) -> str:
    """The sentence a marketer (or a customer) reads; ``titles`` of the cited products.
    Every kind of `recommendations.algorithms.reasons.KINDS` has its own sentence (what any
    algorithm's reasons use); data a kind usually carries may be missing (a count over all
    of training has no ``days``), and the sentence then says less."""
    if kind == kinds.BOUGHT_TOGETHER:
        return f"Because you bought {_titles(titles)}"
    if kind == kinds.SIMILAR_TO:
        return f"Similar to {_titles(titles)}, which you bought"
    if kind == kinds.BUY_AGAIN:
        every = int(data.get("every_days") or 1)
        period = "every day" if every <= 1 else f"every {every} days"
        last = _days(int(data.get("days_ago") or 0))
        if data.get("personal"):
            return f"You buy this about {period}; last time {last}"
        return f"You bought this {last}; customers like you buy it again about {period}"
    if kind == kinds.POPULAR_SEGMENT:
        segment = data.get("segment") or "your segment"
        buyers = int(data.get("buyers") or 0)
        if buyers <= 0:
            return f"Popular with {segment} customers"
        if data.get("days"):
            return (
                f"Popular with {segment} customers this month: "
                f"{_customers(buyers)} bought it in the last {data['days']} days"
            )
        return f"Popular with {segment} customers: {_customers(buyers)} bought it"
    if kind == kinds.NEW_IN_CATEGORY:
        category = data.get("category")
        return f"New in {category}, your favourite category" if category else "New for you"
    if kind == kinds.NEW_ARRIVAL:
        category = data.get("category")
        new = f"New in {category}" if category else "New in the catalog"
        return f"{new}, like {_titles(titles)}, which you bought" if any(titles) else new
    if kind == kinds.POPULAR:
        buyers = int(data.get("buyers") or 0)
        if buyers <= 0:
            return "Picked for you from the catalog"
        if data.get("days"):
            return f"Popular: {_customers(buyers)} bought it in the last {data['days']} days"
        return f"A best seller: {_customers(buyers)} bought it"
    return GENERIC
