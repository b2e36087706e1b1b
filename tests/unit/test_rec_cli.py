"""`manage.py evaluate_recommenders` on small generated files; no database involved
(pytest-django blocks database access in tests without the db fixture)."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.unit.test_rec_tuning import synthetic_frame


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.csv.gz"
    frame = synthetic_frame(n_users=60, n_items=30, seed=4)
    with gzip.open(path, "wt") as handle:
        frame.to_csv(handle, index=False)
    return path


def _run(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("evaluate_recommenders", *args, stdout=out, stderr=err)
    return out.getvalue()


def test_cli_on_an_interactions_file_writes_the_report(events, tmp_path):
    report_path = tmp_path / "out" / "report.json"
    text = _run("--interactions", str(events), "--budget-s", "0.3", "--json", str(report_path))
    assert "popular_recent" in text and "ndcg@10" in text
    assert "skipped popular_segment: needs user_features" in text
    report = json.loads(report_path.read_text())
    assert report["split"] == "lastday"
    assert report["best"] in report["models"]
    entry = report["models"]["popular"]
    for key in ("ndcg@10", "recall@20", "map@10", "hr@10", "coverage@10", "fit_s", "score_s"):
        assert key in entry
    assert entry["params"] == {}


def test_cli_explicit_train_test_and_algorithm_choice(events, tmp_path):
    frame = synthetic_frame(n_users=60, n_items=30, seed=4)
    cut = frame.timestamp.quantile(0.8)
    frame[frame.timestamp < cut].to_csv(tmp_path / "train.csv", index=False)
    frame[frame.timestamp >= cut].to_csv(tmp_path / "test.csv", index=False)
    (tmp_path / "items.csv").write_text("item_id,title\ni0,Mug\n")
    text = _run(
        "--train",
        str(tmp_path / "train.csv"),
        "--test",
        str(tmp_path / "test.csv"),
        "--items",
        str(tmp_path / "items.csv"),
        "--algorithms",
        "popular",
        "--k",
        "5",
        "--budget-s",
        "0",
    )
    assert "split explicit" in text and "ndcg@5" in text and "popular_recent" not in text


def test_cli_rejects_bad_arguments(events):
    with pytest.raises(CommandError, match="--test"):
        _run("--train", str(events))
    with pytest.raises(CommandError, match="unknown algorithm"):
        _run("--interactions", str(events), "--algorithms", "nope")
    with pytest.raises(CommandError, match="missing column"):
        _run("--interactions", str(events), "--format", "online_retail")


def test_cli_turns_unreadable_files_into_command_errors(events, tmp_path):
    binary = tmp_path / "binary.csv.gz"
    binary.write_bytes(b"\x1f\x8b\x08\x00garbage")
    truncated = tmp_path / "truncated.csv.gz"
    truncated.write_bytes(events.read_bytes()[:200])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for path in (binary, truncated, empty, tmp_path / "missing.csv"):
        with pytest.raises(CommandError, match=path.name):
            _run("--interactions", str(path))
    with pytest.raises(CommandError, match="items.csv"):
        (tmp_path / "items.csv").write_bytes(b"\xff\xfe\x00\x00")
        _run("--interactions", str(events), "--items", str(tmp_path / "items.csv"))
    # A header in another case is read, not an AttributeError.
    upper = tmp_path / "upper.csv"
    text = gzip.decompress(events.read_bytes()).decode()
    upper.write_text(text.replace("user_id,item_id,timestamp", "User_ID,Item_ID,Timestamp", 1))
    text = _run("--interactions", str(upper), "--algorithms", "popular", "--budget-s", "0")
    assert "ndcg@10" in text
