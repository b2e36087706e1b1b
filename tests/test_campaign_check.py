"""Campaign feedback: the previous run's model vs the next run's, both blind to a campaign,
and the previous run's stored lists, measured on the campaign's clicks and conversions.

Pure metrics against hand-computed values; then two model runs of a small shop on
PostgreSQL with campaign events between them (the counts, the stored lists' figures worked
out here by hand, the skip reasons, no leakage into the check's fits); then the run page.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import math
import re

import numpy as np
import pandas as pd
import pytest
from django.urls import reverse
from scipy import sparse

from marketing.models import Event, EventKind, Product
from recommendations.algorithms.base import Dataset, Recommender
from recommendations.algorithms.popular import MostPopular
from recommendations.evaluation.campaign import (
    BUDGET_SPENT,
    Candidate,
    campaign_check,
    campaign_targets,
    list_scores,
    stored_items,
)
from recommendations.models import ModelRun, Recommendation
from recommendations.services import campaign_check as service
from recommendations.services import model_run_run, model_run_start
from tests.recommendation_support import END, profiles_refresh, shop_create

FAST = {"algorithms": ["item_knn_cosine", "popular"], "budget_s": 1}
LOG2_3 = 1 / math.log2(3)  # the discount of rank 2
T0 = pd.Timestamp("2024-01-01", tz="UTC")
A, B, C = 100, 101, 102


# ----------------------------------------------------------------------------- pure


def test_list_scores_by_hand():
    items = np.array([[2, 0, 1], [3, 4, -1], [1, 2, 3], [0, 1, 2]])
    # Row 0: target 0 at rank 2. Row 1: targets 1 and 4, 4 at rank 2. Row 2: target 0,
    # missed. Row 3: no targets, not scored.
    targets = sparse.csr_matrix(
        np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    )
    out = list_scores(items, targets, np.arange(4), k=3)
    assert out["customers"] == 3
    assert out["hr"] == pytest.approx(2 / 3)
    assert out["recall"] == pytest.approx((1 + 0.5 + 0) / 3)
    ndcg_row1 = LOG2_3 / (1 + LOG2_3)  # two targets: the ideal has hits at ranks 1 and 2
    assert out["ndcg"] == pytest.approx((LOG2_3 + ndcg_row1 + 0) / 3)
    # k cuts the list: at k=1 only rank-1 hits count.
    assert list_scores(items, targets, np.arange(4), k=1)["hr"] == 0.0


def test_list_scores_without_targets_has_no_figures():
    out = list_scores(np.array([[0, 1]]), sparse.csr_matrix((1, 3)), np.array([0]), k=2)
    assert out == {"customers": 0, "hr": None, "recall": None, "ndcg": None}


def _train() -> pd.DataFrame:
    """A bought by users 1, 2, 3; B by 2, 3; C by 4 — popularity A > B > C."""
    return pd.DataFrame(
        {"user_id": [1, 2, 2, 3, 3, 4], "item_id": [A, A, B, A, B, C], "timestamp": [T0] * 6}
    )


def _campaign(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "kind"]).assign(
        timestamp=T0 + pd.Timedelta(days=5)
    )


def test_targets_keep_new_products_of_known_customers_and_count_the_rest():
    data = Dataset.from_interactions(_train())
    frame = _campaign(
        [
            (1, B, "click"),  # new to user 1: target
            (1, B, "click"),  # the same again: one target
            (1, A, "click"),  # already bought
            (9, A, "click"),  # no purchases before
            (4, 999, "click"),  # nobody bought it before
            (4, A, "click"),  # target
        ]
    )
    targets = campaign_targets(data, frame)
    assert targets.events == 6
    assert targets.dropped == {"no_history": 1, "unknown_product": 1, "already_bought": 1}
    users, items = targets.matrix.nonzero()
    pairs = {
        (int(data.user_ids[u]), int(data.item_ids[i])) for u, i in zip(users, items, strict=True)
    }
    assert pairs == {(1, B), (4, A)}
    assert list(data.user_ids[targets.users]) == [1, 4]


def test_stored_lists_are_placed_by_rank_and_unknown_products_miss():
    data = Dataset.from_interactions(_train())
    lists = pd.DataFrame(
        {"user_id": [4, 4, 1, 1, 7], "item_id": [A, 999, C, B, A], "rank": [2, 1, 1, 3, 1]}
    )
    rows = np.array([0, 3])  # users 1 and 4
    items = stored_items(lists, data, rows, k=2)
    index = {int(v): i for i, v in enumerate(data.item_ids)}
    # User 1: rank 1 = C, rank 3 is past k. User 4: rank 1 unknown (-1), rank 2 = A.
    assert items.tolist() == [[index[C], -1], [-1, index[A]]]


def test_check_by_hand_with_popularity():
    campaign = _campaign([(1, C, "click"), (2, C, "click"), (4, A, "click"), (4, B, "purchase")])
    stored = pd.DataFrame(
        {"user_id": [1, 1, 4, 4], "item_id": [B, 999, B, A], "rank": [1, 2, 1, 2]}
    )
    result = campaign_check(
        _train(),
        campaign,
        [Candidate("previous", MostPopular, {}), Candidate("current", MostPopular, {})],
        stored=stored,
        k=2,
    )
    assert result.reason is None
    assert result.customers == 3 and result.events == {"click": 3, "purchase": 1}
    assert result.scored == {
        "click": {"customers": 3, "targets": 3},
        "purchase": {"customers": 1, "targets": 1},
    }
    previous, current, sent = result.rows
    # Popular lists without bought items: user 1 [B, C], user 2 [C], user 4 [A, B].
    assert previous.scores["click"] == {
        "customers": 3,
        "hr": 1.0,
        "recall": 1.0,
        "ndcg": pytest.approx((LOG2_3 + 1 + 1) / 3),
    }
    assert previous.scores["purchase"]["ndcg"] == pytest.approx(LOG2_3)
    # The same algorithm and parameters: fitted once, the lists reused.
    assert current.same_as == "previous" and current.fit_s is None
    assert current.scores == previous.scores
    # Stored: user 1 [B, ?] misses C; user 2 has no list (a miss); user 4 [B, A].
    assert sent.key == "stored" and sent.without_list == 1
    assert sent.scores["click"]["hr"] == pytest.approx(1 / 3)
    assert sent.scores["click"]["ndcg"] == pytest.approx(LOG2_3 / 3)
    assert sent.scores["purchase"] == {"customers": 1, "hr": 1.0, "recall": 1.0, "ndcg": 1.0}
    data = result.to_dict()
    assert data["rows"][2]["scores"]["click"]["hr"] == pytest.approx(1 / 3, abs=1e-6)
    assert data["train_purchases"] == 6


def test_check_refuses_training_data_that_reaches_the_campaign():
    train = _train()
    train.loc[0, "timestamp"] = T0 + pd.Timedelta(days=5)  # at the cutoff itself
    with pytest.raises(ValueError, match="leakage"):
        campaign_check(train, _campaign([(1, C, "click")]), [Candidate("c", MostPopular, {})])


def test_check_skips_over_budget_unfittable_and_unscorable():
    campaign = _campaign([(1, C, "click")])
    result = campaign_check(
        _train(),
        campaign,
        [
            Candidate("slow", MostPopular, {}, expected_s=100.0),
            Candidate("broken", MostPopular, {"no_such_param": 1}),
        ],
        budget_s=5.0,
    )
    assert [r.reason for r in result.rows] == [BUDGET_SPENT, "could not be fitted (TypeError)"]
    # Nothing of the campaign is new to a customer with history: skipped with a reason.
    result = campaign_check(_train(), _campaign([(1, A, "click"), (9, B, "click")]), [])
    assert result.reason and result.rows == []
    assert result.dropped["click"] == {"no_history": 1, "unknown_product": 0, "already_bought": 1}


class _Stop(Exception):
    pass


class _Stopping(Recommender):
    name = "stopping"

    def _fit(self, data, on_progress):
        raise _Stop()


def test_a_time_limit_is_not_swallowed():
    with pytest.raises(_Stop):
        campaign_check(
            _train(),
            _campaign([(1, C, "click")]),
            [Candidate("c", _Stopping, {})],
            reraise=(_Stop,),
        )


# -------------------------------------------------------------------- the runs (DB)


@pytest.fixture(autouse=True)
def _inline_runs(settings, tmp_path):
    settings.RECOMMENDATION_SCORING = "inline"
    settings.RECOMMENDATION_BATCH_SIZE = 50
    settings.DATA_DIR = tmp_path / "data"


def run_inline(catalog, user) -> ModelRun:
    run = model_run_start(catalog=catalog, user=user, **FAST)
    model_run_run(job_id=run.job_id, worker="inline")
    run.refresh_from_db()
    assert run.status == ModelRun.Status.SUCCEEDED, run.job.error
    return run


def events_add(catalog, rows) -> None:
    """rows: (customer, product, kind, when, source)."""
    base = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    Event.objects.bulk_create(
        Event(
            id=base + n + 1,
            catalog=catalog,
            customer=customer,
            product=product,
            kind=kind,
            quantity=1,
            value=product.price if kind == EventKind.PURCHASE else None,
            occurred_at=when,
            source=source,
        )
        for n, (customer, product, kind, when, source) in enumerate(rows)
    )


CUTOFF = END + dt.timedelta(days=2)


def _bought_before(catalog) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for c, p in Event.objects.filter(
        catalog=catalog, kind=EventKind.PURCHASE, occurred_at__lt=CUTOFF
    ).values_list("customer_id", "product_id"):
        out.setdefault(c, set()).add(p)
    return out


def _feedback(shop, lists: dict[int, list[int]]) -> list[tuple]:
    """Campaign events after run 1: hits and misses on its lists, and events to leave out."""
    history = _bought_before(shop.catalog)
    sold = set().union(*history.values())
    by_id = {p.pk: p for p in Product.objects.filter(catalog=shop.catalog)}
    rows, late = [], dt.timedelta(minutes=1)
    for n, customer in enumerate(shop.customers[:10]):
        listed = [p for p in lists[customer.pk][:10] if p in sold]
        if n < 6:  # a click on a listed product: a hit
            clicked = listed[0]
        else:  # a click on a product sold before, new to them, not in their top 10
            clicked = next(
                p for p in sorted(sold) if p not in history[customer.pk] and p not in listed
            )
        rows.append((customer, by_id[clicked], EventKind.CLICK, CUTOFF + n * late, "campaign:7"))
        if n < 3:  # a conversion: their second listed product
            rows.append(
                (
                    customer,
                    by_id[listed[1]],
                    EventKind.PURCHASE,
                    END + dt.timedelta(days=4),
                    "campaign:7",
                )
            )
    owned = next(iter(history[shop.customers[10].pk]))
    fresh = Product.objects.create(catalog=shop.catalog, sku="NEW-1", title="New", price=9)
    rows += [
        (shop.customers[10], by_id[owned], EventKind.CLICK, CUTOFF, "campaign:7"),  # bought
        (shop.viewer, shop.products[0], EventKind.CLICK, CUTOFF, "campaign:7"),  # no history
        (shop.customers[11], fresh, EventKind.CLICK, CUTOFF, "campaign:8"),  # never sold
    ]
    return rows


@pytest.fixture
def shop(marketer):
    shop = shop_create()
    profiles_refresh(shop.catalog, marketer)
    return shop


@pytest.fixture
def fed(shop, marketer, monkeypatch):
    """Run 1, campaign events (plus noise that must not count), run 2; the training frame
    the check was given is kept in ``fed["train"]``."""
    first = run_inline(shop.catalog, marketer)
    lists: dict[int, list[int]] = {}
    for c, p in (
        Recommendation.objects.filter(run=first, customer__isnull=False, kind="discover")
        .order_by("customer_id", "rank")
        .values_list("customer_id", "product_id")
    ):
        lists.setdefault(c, []).append(p)
    campaign = _feedback(shop, lists)
    noise = [
        # Not a campaign: a plain order after the cutoff.
        (
            shop.customers[0],
            shop.products[3],
            EventKind.PURCHASE,
            END + dt.timedelta(days=3),
            "O-9",
        ),
        # A campaign view: not a click or a purchase.
        (shop.customers[1], shop.products[4], EventKind.VIEW, CUTOFF, "campaign:7"),
        # A campaign click inside run 1's data: before its snapshot.
        (
            shop.customers[2],
            shop.products[6],
            EventKind.CLICK,
            END - dt.timedelta(days=9),
            "campaign:3",
        ),
    ]
    events_add(shop.catalog, campaign + noise)
    seen = {}
    real = service.campaign_check

    def spy(train, *args, **kwargs):
        seen["train"] = train.copy()
        return real(train, *args, **kwargs)

    monkeypatch.setattr(service, "campaign_check", spy)
    second = run_inline(shop.catalog, marketer)
    return {"first": first, "second": second, "lists": lists, "campaign": campaign, **seen}


def _by_hand(shop, lists, campaign, kind) -> dict:
    """HR, recall and NDCG@10 of run 1's stored lists on one kind of campaign event."""
    history = _bought_before(shop.catalog)
    sold = set().union(*history.values())
    targets: dict[int, set[int]] = {}
    for customer, product, event_kind, _, _ in campaign:
        if event_kind != kind or customer.pk not in history:
            continue
        if product.pk in sold and product.pk not in history[customer.pk]:
            targets.setdefault(customer.pk, set()).add(product.pk)
    hr, recall, ndcg = [], [], []
    for customer_id, wanted in targets.items():
        ranks = [r for r, p in enumerate(lists.get(customer_id, [])[:10], 1) if p in wanted]
        ideal = sum(1 / math.log2(j + 1) for j in range(1, min(len(wanted), 10) + 1))
        hr.append(1.0 if ranks else 0.0)
        recall.append(len(ranks) / len(wanted))
        ndcg.append(sum(1 / math.log2(r + 1) for r in ranks) / ideal)
    n = len(targets)
    return {"customers": n, "hr": sum(hr) / n, "recall": sum(recall) / n, "ndcg": sum(ndcg) / n}


@pytest.mark.django_db
def test_the_next_run_is_compared_on_the_campaign(fed, shop):
    first, second = fed["first"], fed["second"]
    block = second.comparison["campaign"]
    assert block["status"] == "compared", block
    assert block["previous_run"] == first.pk
    assert block["previous_algorithm"] == first.selected_algorithm
    assert pd.Timestamp(block["cutoff"]) == pd.Timestamp(CUTOFF)
    assert block["k"] == 10
    # 10 + 3 (customer 10) + viewer + customer 11 clicks; 3 conversions; the noise is out.
    assert block["events"] == {"click": 13, "purchase": 3}
    assert block["customers"] == 13
    assert block["dropped"]["click"] == {"no_history": 1, "unknown_product": 1, "already_bought": 1}
    assert block["scored"]["click"] == {"customers": 10, "targets": 10}
    assert block["scored"]["purchase"] == {"customers": 3, "targets": 3}
    rows = {row["key"]: row for row in block["rows"]}
    assert list(rows) == ["previous", "current", "stored"]
    assert rows["previous"]["algorithm"] == first.selected_algorithm
    assert rows["current"]["algorithm"] == second.selected_algorithm
    for key in ("previous", "current"):
        assert rows[key]["reason"] is None
        assert rows[key]["scores"]["click"]["customers"] == 10
        assert 0.0 <= rows[key]["scores"]["click"]["hr"] <= 1.0
    # What run 1 actually stored, measured here by hand: 6 of the 10 clicks were hits.
    for kind in ("click", "purchase"):
        expected = _by_hand(shop, fed["lists"], fed["campaign"], kind)
        got = rows["stored"]["scores"][kind]
        assert got["customers"] == expected["customers"]
        for name in ("hr", "recall", "ndcg"):
            assert got[name] == pytest.approx(expected[name], abs=1e-5), (kind, name)
    assert rows["stored"]["scores"]["click"]["hr"] == pytest.approx(0.6)
    assert rows["stored"]["scores"]["purchase"]["hr"] == pytest.approx(1.0)
    assert rows["stored"]["without_list"] == 0
    # Run 1's lists were read before the finish pruned them.
    assert not Recommendation.objects.filter(run=first).exists()


@pytest.mark.django_db
def test_the_check_fits_on_purchases_before_the_campaign_only(fed, shop):
    train = fed["train"]
    block = fed["second"].comparison["campaign"]
    before = Event.objects.filter(
        catalog=shop.catalog,
        kind=EventKind.PURCHASE,
        customer__isnull=False,
        product__isnull=False,
        occurred_at__lt=CUTOFF,
    ).count()
    assert len(train) == before == block["train_purchases"]
    assert train["timestamp"].max() < pd.Timestamp(CUTOFF)
    # Campaign purchases (order reference "campaign:…") and the later plain order: out.
    assert not train["basket"].str.startswith("o:campaign:").any()
    assert not (train["basket"] == "o:O-9").any()
    # The run itself does train on them: they are purchases.
    assert fed["second"].data_info["purchases"] == before + 3 + 1


@pytest.mark.django_db
def test_first_run_and_a_run_without_campaign_events_say_why(shop, marketer):
    first = run_inline(shop.catalog, marketer)
    assert first.comparison["campaign"] == {"status": "skipped", "reason": service.NO_PREVIOUS}
    # A plain order after run 1's data, and a campaign event before it: nothing to compare.
    events_add(
        shop.catalog,
        [
            (shop.customers[0], shop.products[1], EventKind.PURCHASE, CUTOFF, "O-1"),
            (
                shop.customers[1],
                shop.products[2],
                EventKind.CLICK,
                END - dt.timedelta(days=1),
                "campaign:2",
            ),
        ],
    )
    second = run_inline(shop.catalog, marketer)
    block = second.comparison["campaign"]
    assert block["status"] == "skipped" and block["reason"] == service.NO_EVENTS
    assert block["previous_run"] == first.pk


@pytest.mark.django_db
def test_a_failing_check_never_fails_the_run_and_logs_no_customer(
    shop, marketer, monkeypatch, caplog
):
    run_inline(shop.catalog, marketer)
    customer = shop.customers[0]
    events_add(shop.catalog, [(customer, shop.products[1], EventKind.CLICK, CUTOFF, "campaign:1")])

    def boom(*args, **kwargs):
        raise RuntimeError(f"broken for {customer.external_id}")

    monkeypatch.setattr(service, "campaign_check", boom)
    with caplog.at_level(logging.WARNING):
        second = run_inline(shop.catalog, marketer)
    block = second.comparison["campaign"]
    assert block["status"] == "skipped"
    assert "RuntimeError" in block["reason"]
    assert "RuntimeError" in caplog.text
    assert customer.external_id not in caplog.text


@pytest.mark.django_db
def test_over_budget_the_fits_are_skipped_with_a_reason(shop, marketer, monkeypatch):
    run_inline(shop.catalog, marketer)
    events_add(
        shop.catalog,
        [(shop.customers[0], p, EventKind.CLICK, CUTOFF, "campaign:1") for p in shop.products[:20]],
    )
    monkeypatch.setattr(service, "MIN_BUDGET_S", 0.0)
    monkeypatch.setattr(service, "MAX_BUDGET_S", 0.0)
    second = run_inline(shop.catalog, marketer)
    rows = {row["key"]: row for row in second.comparison["campaign"]["rows"]}
    assert rows["previous"]["reason"] == rows["current"]["reason"] == BUDGET_SPENT
    assert rows["stored"]["reason"] is None  # reading stored lists costs no fit
    assert rows["stored"]["scores"]["click"]["customers"] == 1


# --------------------------------------------------------------------------- the page


def _section(response) -> str:
    page = response.content.decode()
    assert 'id="campaign-feedback"' in page
    section = page.split('id="campaign-feedback"', 1)[1].split("</section>", 1)[0]
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section)))


@pytest.mark.django_db
def test_run_page_shows_the_campaign_table(client, fed, approver):
    first, second = fed["first"], fed["second"]
    client.force_login(approver)  # approvers read runs
    response = client.get(reverse("recommendations:run-detail", args=[second.pk]))
    assert response.status_code == 200
    text = _section(response)
    assert "Campaign feedback" in text
    assert "Previous run's model vs this run's model, both blind to the campaign" in text
    assert f"Run #{first.pk}'s model" in text and "This run's model" in text
    assert f"Run #{first.pk}'s stored lists (what was sent)" in text
    assert "HR@10" in text and "Recall@10" in text and "NDCG@10" in text
    assert "Clicks" in text and "Conversions" in text
    assert "0.600" in text  # the stored lists' click hit rate
    assert "13 clicks and 3 conversions of 13 customers" in text
    assert "1 by customers without earlier purchases" in text
    # The htmx refresh of the results carries it too.
    partial = client.get(
        reverse("recommendations:run-detail", args=[second.pk]), HTTP_HX_REQUEST="true"
    )
    assert "Campaign feedback" in _section(partial)


@pytest.mark.django_db
def test_run_page_shows_why_nothing_was_compared(client, shop, marketer, no_role_user):
    run = run_inline(shop.catalog, marketer)
    address = reverse("recommendations:run-detail", args=[run.pk])
    client.force_login(marketer)
    text = _section(client.get(address))
    assert f"Nothing to compare: {service.NO_PREVIOUS}." in text
    # Runs from before this check have no card.
    ModelRun.objects.filter(pk=run.pk).update(comparison={"models": {}})
    assert 'id="campaign-feedback"' not in client.get(address).content.decode()
    # Login and the view permission stay required.
    client.force_login(no_role_user)
    assert client.get(address).status_code == 403
    client.logout()
    assert client.get(address)["Location"].startswith("/accounts/login/")
