"""The synthetic data generator: exact layouts and counts, determinism, and the realism
that downstream features (recommenders, RFM, fairness checks) rely on. No database."""

from __future__ import annotations

import ast
import gzip
import re
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from marketing.analytics import synthetic
from marketing.analytics.synthetic import generate

PRODUCTS_HEADER = "sku,title,description,category,brand,price,in_stock,url,image_url"
CUSTOMERS_HEADER = (
    "customer_id,email,name,country,language,consent_email,consent_sms,consent_push,"
    "consent_ads,gender,age"
)
EVENTS_HEADER = "customer_id,sku,kind,quantity,value,occurred_at,source"

SIZE = {"customers": 4_000, "products": 2_000, "events": 120_000}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("synthetic")
    calls: list[tuple[int, int]] = []
    result = generate(
        out, **SIZE, seed=7, on_progress=lambda done, total: calls.append((done, total))
    )
    events = _read(result["events_path"])
    events["t"] = pd.to_datetime(events.occurred_at, format="%Y-%m-%d %H:%M:%S")
    return {
        "dir": out,
        "result": result,
        "calls": calls,
        "products": _read(result["products_path"]),
        "customers": _read(result["customers_path"]),
        "events": events,
    }


def _first_line(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.readline().rstrip("\n")


def test_it_writes_the_exact_headers(data):
    result = data["result"]
    assert _first_line(result["products_path"]) == PRODUCTS_HEADER
    assert _first_line(result["customers_path"]) == CUSTOMERS_HEADER
    assert _first_line(result["events_path"]) == EVENTS_HEADER
    assert result["events_path"].name == "events.csv.gz"


def test_it_writes_exact_row_counts(data):
    assert len(data["products"]) == SIZE["products"]
    assert len(data["customers"]) == SIZE["customers"]
    assert len(data["events"]) == SIZE["events"]
    result = data["result"]
    assert (result["products"], result["customers"], result["events"]) == (
        SIZE["products"],
        SIZE["customers"],
        SIZE["events"],
    )
    assert sum(result["kinds"].values()) == SIZE["events"]
    assert data["events"].kind.value_counts().to_dict() == {
        k: n for k, n in result["kinds"].items() if n
    }


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny blocks and passes, so the multi-block paths run on small data."""
    monkeypatch.setattr(synthetic, "EVENTS_PER_BLOCK", 2_000)
    monkeypatch.setattr(synthetic, "CUSTOMERS_PER_BLOCK", 300)
    monkeypatch.setattr(synthetic, "CUSTOMER_UNIT", 100)


@pytest.mark.parametrize(
    ("customers", "products", "events"),
    [(1, 1, 1), (3, 5, 7), (50, 40, 0), (7, 2, 3_001), (1_050, 30, 20_001), (40, 60, 9_999)],
)
def test_counts_are_exact_at_awkward_sizes(tmp_path, small_blocks, customers, products, events):
    result = generate(tmp_path, customers=customers, products=products, events=events, seed=1)
    ev = _read(result["events_path"])
    assert len(ev) == events
    assert len(_read(result["customers_path"])) == customers
    assert len(_read(result["products_path"])) == products
    if events:
        assert set(ev.customer_id) <= set(_read(result["customers_path"]).customer_id)
        assert set(ev.sku) <= set(_read(result["products_path"]).sku)


def test_same_seed_gives_same_bytes_and_other_seed_differs(tmp_path, small_blocks):
    args = {"customers": 700, "products": 120, "events": 9_000}
    a = generate(tmp_path / "a", **args, seed=11)
    b = generate(tmp_path / "b", **args, seed=11)
    c = generate(tmp_path / "c", **args, seed=12)
    for key in ("products_path", "customers_path", "events_path"):
        assert a[key].read_bytes() == b[key].read_bytes(), key
        assert a[key].read_bytes() != c[key].read_bytes(), key


def test_products_and_customers_do_not_depend_on_the_event_count(tmp_path, small_blocks):
    small = generate(tmp_path / "s", customers=1_250, products=300, events=100, seed=5)
    large = generate(tmp_path / "l", customers=1_250, products=300, events=30_000, seed=5)
    for key in ("products_path", "customers_path"):
        assert small[key].read_bytes() == large[key].read_bytes(), key


def test_no_gzip_writes_the_same_csv(tmp_path):
    args = {"customers": 200, "products": 80, "events": 5_000, "seed": 3}
    zipped = generate(tmp_path / "z", **args)
    plain = generate(tmp_path / "p", **args, gzip_events=False)
    assert plain["events_path"].name == "events.csv"
    assert gzip.decompress(zipped["events_path"].read_bytes()) == plain["events_path"].read_bytes()


def test_every_event_references_a_written_customer_and_product(data):
    ev = data["events"]
    assert set(ev.customer_id) <= set(data["customers"].customer_id)
    assert set(ev.sku) <= set(data["products"].sku)
    assert data["customers"].customer_id.is_unique
    assert data["products"].sku.is_unique


def test_event_fields_are_well_formed(data):
    ev = data["events"]
    assert set(ev.kind) == {"view", "cart", "purchase", "return"}
    assert ev.occurred_at.str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
    assert ev.t.min() >= pd.Timestamp("2024-01-01")
    assert ev.t.max() < pd.Timestamp("2025-01-01")  # 365 days from the default start
    assert (ev.quantity.astype(int) >= 1).all()
    views = ev.kind == "view"
    assert (ev.value[views] == "").all()
    assert ev.value[~views].str.fullmatch(r"\d+\.\d\d").all()
    # Views and carts carry the session id; purchases and returns the order id.
    assert ev.source[ev.kind.isin(["view", "cart"])].str.fullmatch(r"S\d{6,}").all()
    assert ev.source[ev.kind.isin(["purchase", "return"])].str.fullmatch(r"O\d{6,}").all()
    # The importer's natural key (customer, sku, kind, time, source, qty, value) is unique.
    assert not ev.duplicated(subset=list(EVENTS_HEADER.split(","))).any()


def test_purchase_value_is_price_times_quantity(data):
    ev = data["events"]
    lines = ev[ev.kind.isin(["cart", "purchase", "return"])].merge(
        data["products"][["sku", "price"]], on="sku"
    )
    expected = (lines.price.astype(float) * lines.quantity.astype(int)).round(2)
    assert (lines.value.astype(float) - expected).abs().max() < 0.005


def test_funnel_narrows_from_views_to_returns(data):
    kinds = data["result"]["kinds"]
    assert kinds["view"] > kinds["cart"] > kinds["purchase"] > kinds["return"] > 0


def test_popularity_is_heavy_tailed(data):
    """Top 1 % of products (20 of 2,000) take about a quarter of purchases; uniform is 1 %."""
    purchases = data["events"].query("kind == 'purchase'")
    counts = purchases.sku.value_counts()
    top = max(1, SIZE["products"] // 100)
    share = counts.iloc[:top].sum() / len(purchases)
    assert share > 0.12, share
    # …and a long tail: half the products sell less than half the mean.
    per_product = counts.reindex(data["products"].sku, fill_value=0)
    assert per_product.median() < per_product.mean() / 2


def test_customers_buy_again(data):
    """Some lines of a customer's later orders are products that customer bought before."""
    p = data["events"].query("kind == 'purchase'")
    first = p.groupby(["customer_id", "sku"]).t.transform("min")
    rebuy = p.t > first
    assert rebuy.mean() > 0.03, rebuy.mean()
    orders_per_pair = p.groupby(["customer_id", "sku"]).source.nunique()
    assert (orders_per_pair >= 2).sum() > 100


def test_orders_are_baskets_of_one_customer(data):
    p = data["events"].query("kind == 'purchase'")
    by_order = p.groupby("source")
    assert (by_order.customer_id.nunique() == 1).all()
    assert (by_order.t.nunique() == 1).all()  # one checkout time per order
    lines = by_order.size()
    assert (lines >= 2).mean() > 0.4
    assert not p.duplicated(["source", "sku"]).any()


def test_returns_follow_a_purchase_of_the_same_customer_and_sku(data):
    ev = data["events"]
    p = ev.query("kind == 'purchase'")
    r = ev.query("kind == 'return'")
    assert 0.02 < len(r) / len(p) < 0.06, len(r) / len(p)
    matched = r.merge(
        p[["customer_id", "sku", "source", "t", "quantity"]],
        on=["customer_id", "sku", "source"],
        how="left",
        suffixes=("", "_bought"),
        validate="one_to_one",
    )
    assert matched.t_bought.notna().all()
    assert (matched.t > matched.t_bought + pd.Timedelta(days=1)).all()
    assert (matched.quantity.astype(int) <= matched.quantity_bought.astype(int)).all()


def test_customers_span_countries_languages_and_attributes(data):
    cu = data["customers"]
    assert cu.country.nunique() >= 8
    assert cu.language.nunique() >= 8
    assert cu.country.value_counts(normalize=True).iloc[0] < 0.4
    native = {c: lang for c, lang, _, _ in synthetic.COUNTRIES}
    assert (cu.language.eq(cu.country.map(native)) | cu.language.eq("en")).all()
    assert cu.email.str.fullmatch(r"c\d{6}@example\.com").all()
    assert (cu.email.str[1:7] == cu.customer_id.str[1:]).all()
    assert set(cu.gender) == {"F", "M", "X"}
    assert cu.age.astype(int).between(18, 85).all()
    for channel in ("email", "sms", "push", "ads"):
        rate = (cu[f"consent_{channel}"] == "true").mean()
        assert 0.1 < rate < 0.9, channel
        assert set(cu[f"consent_{channel}"]) == {"true", "false"}
    assert cu.name.str.contains("[^\x00-\x7f]").any()  # accents and CJK exercise encodings


def test_customers_have_preferred_categories(data):
    """Collaborative filtering needs structure: a buyer's purchases cluster in few leaves."""
    p = data["events"].query("kind == 'purchase'").merge(data["products"], on="sku")
    top_share = p.groupby("customer_id").category.agg(
        lambda s: s.value_counts(normalize=True).iloc[0]
    )
    busy = p.groupby("customer_id").size() >= 5
    overall = p.category.value_counts(normalize=True).iloc[0]
    assert top_share[busy].mean() > 3 * overall


def test_activity_is_heterogeneous(data):
    per_customer = data["events"].groupby("customer_id").size()
    assert per_customer.max() > 10 * per_customer.median()


def test_catalog_is_a_two_level_tree_with_category_prices(data):
    pr = data["products"]
    assert pr.category.str.fullmatch(r"[^>]+ > [^>]+").all()
    tops = pr.category.str.split(" > ").str[0]
    assert tops.nunique() == 8
    assert pr.category.nunique() >= 30
    medians = pr.price.astype(float).groupby(tops).median()
    assert medians.max() > 4 * medians.min()  # e.g. groceries vs fashion
    assert pr.title.str.fullmatch(r"\S+( \S+){2,}").all()
    first_words = pr.apply(lambda row: row.description.startswith(row.title), axis=1)
    assert first_words.all()
    assert pr.description.str.count(r"\.").between(1, 4).all()
    assert set(pr.in_stock) == {"true", "false"}
    assert pr.url.str.fullmatch(r"https://shop\.example\.com/p/P\d{6}").all()


def test_seasonality_peaks_in_november_and_december(data):
    t = data["events"].t
    per_day = t.dt.normalize().value_counts()
    peak = per_day[per_day.index.month >= 11].mean()
    rest = per_day[per_day.index.month < 11].mean()
    assert peak > 1.3 * rest
    hours = t.dt.hour.value_counts()
    assert hours.loc[19] > 2 * hours.loc[3]  # evenings busy, nights quiet (UK-heavy mix)


def test_start_and_days_move_the_window(tmp_path):
    result = generate(
        tmp_path, customers=100, products=50, events=2_000, seed=2, start=date(2023, 6, 1), days=30
    )
    t = pd.to_datetime(_read(result["events_path"]).occurred_at)
    assert t.min() >= pd.Timestamp("2023-06-01")
    assert t.max() < pd.Timestamp("2023-07-01")


def test_progress_reports_event_rows(data):
    calls = data["calls"]
    assert calls[0] == (0, SIZE["events"])
    assert calls[-1] == (SIZE["events"], SIZE["events"])
    done = [d for d, _ in calls]
    assert done == sorted(done)


@pytest.mark.parametrize(
    "bad",
    [
        {"customers": 0},
        {"products": 0},
        {"events": -1},
        {"days": 0},
        {"seed": -3},
    ],
)
def test_it_rejects_bad_arguments(tmp_path, bad):
    args = {"customers": 10, "products": 10, "events": 10, "seed": 1} | bad
    with pytest.raises(ValueError):
        generate(tmp_path, **args)


def test_module_imports_only_stdlib_numpy_and_pandas():
    tree = ast.parse(Path(synthetic.__file__).read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"numpy", "pandas", "__future__"}
    assert roots <= allowed, roots - allowed


def test_product_text_is_built_from_the_vocabulary(data):
    pr = data["products"]
    nouns = {n for top in synthetic.CATEGORIES for leaf in top.leaves for n in leaf.nouns}
    assert pr.title.map(lambda t: any(t.endswith(" " + n) for n in nouns)).all()
    brands = {b for top in synthetic.CATEGORIES for b in top.brands}
    assert set(pr.brand) <= brands
    assert pr.description.map(lambda d: re.search(r"\b(by|from)\b", d) is not None).all()
