"""Words for profile numbers: what a segment means and how good the run's predictions were."""

from __future__ import annotations

import calendar

from marketing.analytics.profiles import SEGMENT_RULES

SEGMENT_EXPLANATIONS = {
    "Champions": "Bought very recently, often and for a lot: the best customers.",
    "Loyal": "Buys often and spends well, though not in the last few weeks.",
    "Potential loyalist": "Recent buyer with average frequency and spend who could become loyal.",
    "New": "Made a first, small purchase very recently.",
    "Promising": "Bought recently, but only a little so far.",
    "Need attention": "Middling recency, frequency and spend: worth a nudge.",
    "About to sleep": "Has not bought for a while and never bought much.",
    "At risk": "Used to buy often and well, but has not for a long time.",
    "Can't lose them": "Among the biggest spenders, yet gone quiet for a long time.",
    "Hibernating": "Bought little, long ago.",
    "Lost": "Bought little, and the longest time ago.",
    "No purchases": "Has events (views, carts…) but never bought in this catalog.",
}


def segment_explanation(name: str) -> str:
    return SEGMENT_EXPLANATIONS.get(name, "")


def weekday_name(day: int | None) -> str:
    return "" if day is None else calendar.day_name[day]


def quality_text(quality: dict) -> dict[str, str]:
    """One line each for CLV and churn, from ProfileRun.quality (the hold-out figures)."""
    if not quality or not quality.get("available"):
        reason = (quality or {}).get("reason") or "the models were not evaluated"
        text = f"not available: {reason}"
        return {"clv": text, "churn": text}
    clv_mae, base_mae = quality.get("clv_mae"), quality.get("baseline_mae")
    if clv_mae is None:
        clv = "not available: the value model could not be measured"
    else:
        clv = f"mean absolute error {clv_mae:,.2f} per customer on held-out customers"
        if base_mae:
            better = 1 - clv_mae / base_mae
            word = "better" if better >= 0 else "worse"
            clv += (
                f" vs {base_mae:,.2f} for the naive baseline"
                f" ({quality.get('baseline') or 'value in the previous period'}):"
                f" {abs(better):.0%} {word}"
            )
    auc = quality.get("churn_auc")
    churn = (
        "not available: the churn model could not be measured"
        if auc is None
        else f"AUC {auc:.2f} on held-out customers (0.5 = guessing, 1 = perfect ranking)"
    )
    return {"clv": clv, "churn": churn}


def bias_text(quality: dict) -> str:
    """Predicted against actual value of the held-out customers: is the model high or low?"""
    predicted, actual = quality.get("predicted_total"), quality.get("actual_total")
    if not predicted or not actual:
        return ""
    ratio = predicted / actual
    if 0.9 <= ratio <= 1.1:
        return (
            f"Over the held-out customers the predictions add up to {ratio:.0%} of what they spent."
        )
    direction = "more" if ratio > 1 else "less"
    return (
        f"Over the held-out customers the predictions add up to {ratio:.0%} of what they spent: "
        f"the model expects {direction} than happened, often a seasonal effect. Read CLV as a "
        "ranking and an order of magnitude."
    )


def rfm_rules() -> list[dict]:
    """The documented RFM segment rules as rows: name, R range, FM range, meaning."""

    def span(lo: int, hi: int) -> str:
        return str(lo) if lo == hi else f"{lo}–{hi}"

    return [
        {"name": name, "r": span(*r), "fm": span(*fm), "meaning": segment_explanation(name)}
        for name, r, fm in SEGMENT_RULES
    ]
