"""Campaign feedback for a model run: the previous run's model vs this run's, both blind to
the campaign, and the previous run's stored lists (what was actually sent).

Called by `runs._train` once the run's own model is fitted. The previous run ``P`` is the
catalog's current succeeded run while this run trains; the campaign events are click and
purchase events with a ``campaign:<export id>`` source (written by the campaign results
import) of known customers and products, later than P's data (``data_info["as_of"]``, else
P's finish). Both models are fitted on the purchases strictly before the first of those
events — the campaign's own purchases, which this run trains on, are out by time — and
measured by `recommendations.evaluation.campaign`. P's rows still exist here: superseded
runs lose them only after this run's finish.

The result goes into ``ModelRun.comparison["campaign"]``: ``status`` "compared" or
"skipped" with a ``reason``. This step never fails the run: an error becomes a skip, logged
by type only (no customer data), and it has its own small time budget.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import pandas as pd
import pyarrow as pa
from celery.exceptions import SoftTimeLimitExceeded
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from marketing.models import Event, EventKind
from marketing.services.customers import customer_erased_ids
from marketing.services.frames import query_frame
from recommendations.algorithms.registry import ALGORITHMS
from recommendations.evaluation.campaign import Candidate, campaign_check
from recommendations.models import ModelRun, Recommendation
from recommendations.services.artifacts import TrainingData

logger = logging.getLogger(__name__)

SOURCE_PREFIX = "campaign:"
# The check's own time budget: a quarter of the run's, within these bounds (seconds).
MIN_BUDGET_S = 10.0
MAX_BUDGET_S = 60.0

COMPARED = "compared"
SKIPPED = "skipped"
NO_PREVIOUS = "this is the catalog's first successful run, so there is no previous run"
NO_EVENTS = "no campaign events since the previous run's data"

_EVENT_COLUMNS = ["user_id", "item_id", "timestamp", "kind"]
_EVENT_TYPES = {
    "user_id": pa.int64(),
    "item_id": pa.int64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "kind": pa.string(),
}
_LIST_COLUMNS = ["user_id", "item_id", "rank"]
_LIST_TYPES = {"user_id": pa.int64(), "item_id": pa.int64(), "rank": pa.int64()}


def check_budget_s(run: ModelRun) -> float:
    """Seconds the check may spend on fits: a quarter of the run's budget, 10-60 s."""
    return min(MAX_BUDGET_S, max(MIN_BUDGET_S, run.budget_s / 4))


def previous_run(*, run: ModelRun) -> ModelRun | None:
    """The catalog's current succeeded run other than ``run`` (its lists are the live ones)."""
    return (
        ModelRun.objects.filter(
            catalog_id=run.catalog_id, is_current=True, status=ModelRun.Status.SUCCEEDED
        )
        .exclude(pk=run.pk)
        .first()
    )


def _snapshot(previous: ModelRun) -> dt.datetime | None:
    """When P's data ended: its last purchase (data_info as_of), else its finish."""
    as_of = (previous.data_info or {}).get("as_of")
    parsed = parse_datetime(as_of) if isinstance(as_of, str) else None
    return parsed or previous.finished_at


def _campaign_rows(*, catalog_id: int, since: dt.datetime) -> QuerySet[Event]:
    return (
        Event.objects.filter(
            catalog_id=catalog_id,
            source__startswith=SOURCE_PREFIX,
            customer__isnull=False,
            product__isnull=False,
            occurred_at__gt=since,
        )
        .filter(Q(kind=EventKind.CLICK) | Q(kind=EventKind.PURCHASE, quantity__gt=0))
        .order_by()
    )


def campaign_events(*, catalog_id: int, since: dt.datetime) -> pd.DataFrame:
    """Campaign clicks and purchases after ``since`` of known, not erased customers and
    known products: user_id, item_id, timestamp (UTC), kind."""
    rows = _campaign_rows(catalog_id=catalog_id, since=since).values_list(
        "customer_id", "product_id", "occurred_at", "kind"
    )
    frame = query_frame(rows, _EVENT_COLUMNS, _EVENT_TYPES)
    frame["user_id"] = frame["user_id"].astype("int64")
    frame["item_id"] = frame["item_id"].astype("int64")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["kind"] = frame["kind"].astype(str)
    erased = customer_erased_ids()
    if erased:
        frame = frame[~frame["user_id"].isin(erased)]
    return frame.reset_index(drop=True)


def stored_lists(*, previous: ModelRun, since: dt.datetime) -> pd.DataFrame:
    """P's stored discover lists of the campaign customers since ``since``: user_id,
    item_id, rank (a subquery: a campaign may have reached 100,000 customers)."""
    customers = _campaign_rows(catalog_id=previous.catalog_id, since=since).values("customer_id")
    rows = (
        Recommendation.objects.filter(
            run=previous, customer_id__in=customers, kind=Recommendation.Kind.DISCOVER
        )
        .order_by()
        .values_list("customer_id", "product_id", "rank")
    )
    frame = query_frame(rows, _LIST_COLUMNS, _LIST_TYPES)
    return frame.astype({"user_id": "int64", "item_id": "int64", "rank": "int64"})


def campaign_check_run(
    *,
    run: ModelRun,
    data: TrainingData,
    selected: str,
    params: dict[str, Any],
    fit_s: float | None,
    k: int,
) -> dict[str, Any]:
    """The "campaign" block of ``run``'s comparison (see the module docstring). Raises
    only the worker's time limit; any other error becomes a skip with its type."""
    started = time.monotonic()
    try:
        return _check(run, data, selected, params, fit_s, k, started)
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # never fail the run over a report
        logger.warning("campaign check of model run %s failed: %s", run.pk, type(exc).__name__)
        return {
            "status": SKIPPED,
            "reason": f"the check failed ({type(exc).__name__}); the run itself is not affected",
        }


def _skip(reason: str, **extra: Any) -> dict[str, Any]:
    return {"status": SKIPPED, "reason": reason, **extra}


def _check(
    run: ModelRun,
    data: TrainingData,
    selected: str,
    params: dict[str, Any],
    fit_s: float | None,
    k: int,
    started: float,
) -> dict[str, Any]:
    previous = previous_run(run=run)
    if previous is None:
        return _skip(NO_PREVIOUS)
    since = _snapshot(previous)
    head = {
        "previous_run": previous.pk,
        "previous_algorithm": previous.selected_algorithm,
        "since": since.isoformat() if since else None,
    }
    if since is None:
        return _skip("the previous run records no data snapshot", **head)
    events = campaign_events(catalog_id=run.catalog_id, since=since)
    if events.empty:
        return _skip(NO_EVENTS, **head)
    cutoff = events["timestamp"].min()
    purchases = data.purchases
    train = purchases[purchases["timestamp"] < cutoff]
    candidates = []
    cls = ALGORITHMS.get(previous.selected_algorithm)
    if cls is not None and not cls.recommends_seen:
        stored_comparison = previous.comparison or {}
        expected = stored_comparison.get("final_fit_s")
        if expected is None:  # older runs: the fit on the comparison's training days
            model = (stored_comparison.get("models") or {}).get(previous.selected_algorithm)
            expected = (model or {}).get("fit_s")
        candidates.append(
            Candidate("previous", cls, dict(previous.selected_params or {}), expected)
        )
    candidates.append(Candidate("current", ALGORITHMS[selected], dict(params), fit_s))
    stored = stored_lists(previous=previous, since=since)
    budget = check_budget_s(run) - (time.monotonic() - started)
    result = campaign_check(
        train[["user_id", "item_id", "timestamp", "basket", "weight"]],
        events,
        candidates,
        stored=stored,
        k=k,
        budget_s=max(budget, 0.0),
        seed=0,
        item_features=data.products[["title", "description", "category", "brand", "price"]],
        user_features=data.segments_of,
        reraise=(SoftTimeLimitExceeded,),
    )
    out = {
        "status": SKIPPED if result.reason else COMPARED,
        **head,
        "cutoff": cutoff.isoformat(),
        "budget_s": round(check_budget_s(run), 1),
        **result.to_dict(),
    }
    if cls is None or cls.recommends_seen:
        out["rows"].insert(
            0,
            {
                "key": "previous",
                "algorithm": previous.selected_algorithm,
                "reason": "algorithm no longer available",
                "scores": {},
            },
        )
    if not len(stored) and not result.reason:
        for row in out["rows"]:
            if row["key"] == "stored":
                row["reason"] = "the previous run's lists are no longer stored"
                row["scores"] = {}
    if result.reason:
        out["reason"] = result.reason
    else:
        out.pop("reason", None)
    return out
