"""The copy quality benchmark runs end to end on tiny samples: every key of its JSON, no
fidelity or limit violation, nothing dropped. (It is not timed here: tests never time.)"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "long_catalog"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "copy_quality_bench", ROOT / "benchmarks" / "copy_quality.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _write(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _retail(path: Path) -> Path:
    """Two customers with 14 products each, postage and a cancellation among them."""
    words = ["HEART", "CAKE", "LANTERN", "BUNTING", "MUG", "TIN", "JAR", "BAG"]
    rows, invoice = [], 536000
    for c, cid in enumerate(("12345", "67890")):
        for i in range(14):
            invoice += 1
            code = f"{22000 + c * 100 + i}"
            title = f"{words[i % 8]} {words[(i + c) % 8]} HOLDER {i}"
            rows.append([invoice, code, title, 2 + i % 3, "2011-05-01 10:00", "1.25", cid, "UK"])
        rows.append([invoice, "POST", "POSTAGE", 1, "2011-05-01 10:00", "18.00", cid, "UK"])
        rows.append([f"C{invoice}", code, title, -1, "2011-05-02 10:00", "1.25", cid, "UK"])
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    return _write(path, header.split(","), rows)


def _clothing(path: Path) -> Path:
    texts = [
        ("Love it", "The fabric is soft and the fit is perfect.", 5),
        ("Pretty", "Gorgeous colour and a flattering cut, very comfortable.", 5),
        ("Meh", "Runs small and the fabric feels cheap.", 2),
    ]
    classes = [("Dresses", "Dresses"), ("Knits", "Tops"), ("Pants", "Bottoms")]
    rows, n = [], 0
    for i in range(9):
        cls, dept = classes[i % 3]
        for title, text, stars in texts:
            n += 1
            rows.append([n, 1000 + i, 35, title, text, stars, 1, 0, "General", dept, cls])
    header = (
        "row_id,Clothing ID,Age,Title,Review Text,Rating,Recommended IND,"
        "Positive Feedback Count,Division Name,Department Name,Class Name"
    )
    return _write(path, header.split(","), rows)


SMALL = [
    "--recipients",
    "2",
    "--channels",
    "email,sms,google_ads",
    "--locales",
    "en,zh",
    "--tones",
    "friendly,urgent",
    "--tones-per-recipient",
    "2",
    "--quiet",
]


def test_demo_style_run_on_tiny_samples(bench, tmp_path, capsys):
    out = tmp_path / "out.json"
    result = bench.main(
        [
            "--retail",
            str(_retail(tmp_path / "retail.csv")),
            "--clothing",
            str(_clothing(tmp_path / "clothing.csv")),
            "--json",
            str(out),
            *SMALL,
        ]
    )
    assert set(bench.KEYS) <= set(result)
    assert result["variants"] == 2 * 2 * 3 * 2 * 2 * 3  # catalogs × people × ch × loc × tone × 3
    assert result["fidelity_violations"] == 0 and result["limit_violations"] == 0
    assert result["dropped"] == 0
    assert 0 <= result["distinct2"] <= 1 and 0 <= result["personalization_win_rate"] <= 1
    assert result["catalogs"] == ["online_retail", "clothing"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == result
    detail = json.loads(out.read_text())
    assert set(detail["by_catalog"]) == {"online_retail", "clothing"}
    assert set(detail["by_locale"]) == {"en", "zh"}


def test_long_catalog_run(bench, tmp_path):
    result = bench.main(
        [
            "--products",
            str(FIXTURE / "products.csv"),
            "--reviews",
            str(FIXTURE / "reviews.csv"),
            "--json",
            str(tmp_path / "long.json"),
            *SMALL,
        ]
    )
    assert set(bench.KEYS) <= set(result)
    assert result["fidelity_violations"] == 0 and result["limit_violations"] == 0
    assert result["dropped"] == 0 and result["other_errors"] == 0
    assert result["distinct2"] >= 0.6


def test_loaders_keep_products_only_and_order_interests(bench, tmp_path):
    cat = bench.load_online_retail(_retail(tmp_path / "r.csv"), recipients=2)
    assert all(s.title != "POSTAGE" for s in cat.sheets)
    assert all(str(s.price) == "1.25" and s.currency == "GBP" for s in cat.sheets)
    for r in cat.recipients:
        assert len(r.interests) == 5
        assert len(cat.bought[r.key]) == 14
    clothing = bench.load_clothing(_clothing(tmp_path / "c.csv"), recipients=3)
    dress = next(s for s in clothing.sheets if s.product_id == "1000")
    assert dress.title == "Dress 1000" and dress.category == "General > Dresses > Dresses"
    assert dress.rating == 4.0 and dress.review_count == 3
    assert all(r.interests[0] in {"Dresses", "Knits", "Pants"} for r in clothing.recipients)


def test_self_bleu_and_bleu(bench):
    same = "the cat sat on the mat today"
    assert bench.bleu(same.split(), [same.split()]) == pytest.approx(1.0)
    assert bench.self_bleu([same, same]) == pytest.approx(1.0)
    # nothing shared: only the smoothing (0.1 per zero count) is left
    assert bench.self_bleu(["a b c d e", "v w x y z"]) == pytest.approx(
        (0.1 / 5 * 0.1 / 4 * 0.1 / 3 * 0.1 / 2) ** 0.25
    )
