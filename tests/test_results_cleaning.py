"""The pure cleaner of campaign results ("campaign_results"): the tools' headers map themselves,
flags take words and counts, blanks get their defaults, rows that contradict themselves are
rejected naming the column, and rows of one recipient combine. No database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketing.analytics.importing import (
    Cleaner,
    CleanOptions,
    ImportFileError,
    auto_map,
    iter_frames,
    missing_required,
    sniff,
)
from marketing.analytics.importing.kinds import RESULT_COLUMNS, combine_results

KIND = "campaign_results"


def clean(tmp_path: Path, text: str, *, mapping=None, chunk_rows: int = 1000, tz: str = "UTC"):
    """(results, issues as (row, column, value, reason, action), counts) of a CSV text."""
    path = tmp_path / "results.csv"
    path.write_text(text, encoding="utf-8")
    info = sniff(path, name=path.name, max_bytes=10**7)
    cleaner = Cleaner(
        KIND,
        mapping or auto_map(info.columns, KIND),
        CleanOptions(catalog_id=1, timezone=tz),
    )
    parts = [
        cleaner.clean(f) for f in iter_frames(path, info, name=path.name, chunk_rows=chunk_rows)
    ]
    results = pd.concat([p.results for p in parts], ignore_index=True)
    issues = [(i.row, i.column, i.value, i.reason, i.action) for p in parts for i in p.issues]
    return results, issues, dict(cleaner.counts)


def csv(*rows: str) -> str:
    return "\n".join(rows) + "\n"


# ----------------------------------------------------------------------------- mapping


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (  # Tailor's generic CSV export, with outcomes added
            [
                "customer_id",
                "channel",
                "locale",
                "subject",
                "brief_id",
                "draft_id",
                "variant",
                "opened",
                "clicked",
            ],
            {
                "customer": "customer_id",
                "brief": "brief_id",
                "draft": "draft_id",
                "variant": "variant",
                "opened": "opened",
                "clicked": "clicked",
            },
        ),
        (  # Mailchimp's audience columns and counts
            ["Email Address", "First Name", "Last Name", "Opens", "Clicks"],
            {"email": "Email Address", "opened": "Opens", "clicked": "Clicks"},
        ),
        (  # Klaviyo's preset properties and metric names
            [
                "$email",
                "tailor_draft_id",
                "tailor_variant",
                "Received Email",
                "Opened Email",
                "Clicked Email",
                "Placed Order",
                "Placed Order Value",
            ],
            {
                "email": "$email",
                "draft": "tailor_draft_id",
                "variant": "tailor_variant",
                "sent": "Received Email",
                "opened": "Opened Email",
                "clicked": "Clicked Email",
                "converted": "Placed Order",
                "revenue": "Placed Order Value",
            },
        ),
        (  # Braze's identifier; HubSpot's address field
            ["external_id", "recipient", "delivered", "send_time"],
            {
                "customer": "external_id",
                "email": "recipient",
                "delivered": "delivered",
                "sent_at": "send_time",
            },
        ),
    ],
)
def test_the_tools_headers_map_themselves(header, expected):
    mapping = auto_map(header, KIND)
    assert {k: v for k, v in mapping.items() if v} == expected


def test_one_of_draft_customer_or_email_is_required(tmp_path):
    assert missing_required({"email": "Email"}, KIND, ["Email"]) == []
    assert missing_required({"customer": "id"}, KIND, ["id"]) == []
    assert missing_required({"opened": "Opens"}, KIND, ["Opens"]) == [
        "Draft ID, Customer ID or Email"
    ]
    assert missing_required({"email": "gone"}, KIND, ["Opens"]) == [
        "Draft ID, Customer ID or Email"
    ]
    with pytest.raises(ImportFileError) as caught:
        Cleaner(KIND, {"opened": "Opens"}, CleanOptions(catalog_id=1))
    assert caught.value.column == "Draft ID, Customer ID or Email"
    assert "required column Draft ID, Customer ID or Email is missing" in str(caught.value)


# ----------------------------------------------------------------------------- values


def test_flags_take_yes_no_words_and_counts(tmp_path):
    results, issues, _ = clean(
        tmp_path,
        csv(
            "email,opened,clicked",
            "a@x.test,yes,no",
            "b@x.test,TRUE,false",
            "c@x.test,1,0",
            "d@x.test,3,0",
            "e@x.test,2.0,",
            "f@x.test,maybe,1",
            "g@x.test,-1,1",
            "h@x.test,1.5,1",
        ),
    )
    assert results["opened"].tolist() == [True, True, True, True, True]
    assert results["clicked"].tolist() == [False, False, False, False, False]
    assert issues == [
        (7, "opened", "maybe", "not a yes/no value or count", "rejected"),
        (8, "opened", "-1", "not a yes/no value or count", "rejected"),
        (9, "opened", "1.5", "not a yes/no value or count", "rejected"),
    ]


def test_blank_cells_get_their_defaults(tmp_path):
    results, issues, _ = clean(
        tmp_path,
        csv(
            "email,sent,delivered,opened,clicked,converted,revenue",
            "a@x.test,,,,,,",
            "b@x.test,no,no,no,no,no,0",
            "c@x.test,yes,yes,yes,yes,yes,12.50",
        ),
    )
    assert issues == []
    a, b, c = results.to_dict("records")
    assert (a["sent"], a["delivered"], a["opened"], a["clicked"], a["converted"]) == (
        True,
        None,
        False,
        False,
        False,
    )
    assert np.isnan(a["revenue"]) and b["revenue"] == 0
    assert (b["sent"], b["delivered"]) == (False, False)
    assert (c["delivered"], c["converted"], c["revenue"]) == (True, True, 12.5)


def test_rows_that_contradict_themselves_are_rejected_naming_the_column(tmp_path):
    results, issues, counts = clean(
        tmp_path,
        csv(
            "email,sent,delivered,opened,clicked,converted,revenue,opened_at,converted_at",
            "a@x.test,,,no,,,,2024-05-01 10:00,",
            "b@x.test,no,,yes,,,,,",
            "c@x.test,no,yes,,,,,,",
            "d@x.test,,,,,no,20.00,,",
            "e@x.test,,,,,,-5,,",
            "f@x.test,no,,,,,,,2024-05-02",
            "g@x.test,,,,,,15.00,2024-05-01 10:00,",  # times and revenue imply yes
        ),
    )
    assert issues == [
        (2, "opened_at", "2024-05-01 10:00", "opened_at given but opened is no", "rejected"),
        (3, "opened", "yes", "opened is yes but sent is no", "rejected"),
        (4, "delivered", "yes", "delivered is yes but sent is no", "rejected"),
        (5, "revenue", "20.00", "revenue without a conversion", "rejected"),
        (6, "revenue", "-5", "negative revenue", "rejected"),
        (7, "converted_at", "2024-05-02", "converted_at given but sent is no", "rejected"),
    ]
    assert counts["rejected_rows"] == 6
    (g,) = results.to_dict("records")
    assert (g["email"], g["opened"], g["converted"], g["revenue"]) == ("g@x.test", True, True, 15.0)


def test_who_each_row_is(tmp_path):
    results, issues, _ = clean(
        tmp_path,
        csv(
            "draft_id,customer_id,email,variant,export_id,brief_id",
            "12,,,1,7,3",
            ",C-1,,,,",
            ",, Pat@Example.TEST ,,,",
            ",,,2,,",
            "abc,,,,,",
            "5,,not-an-email,0,,",
            "12.0,,,,-3,",
        ),
    )
    assert issues == [
        (5, "draft_id", "", "no draft id, customer id or email", "rejected"),
        (6, "draft_id", "abc", "not a whole number", "rejected"),
        (7, "variant", "0", "not a variant number (a whole number from 1)", "rejected"),
        (7, "email", "not-an-email", "invalid email", "rejected"),
        (8, "export_id", "-3", "not an id (a whole number from 1)", "rejected"),
    ]
    rows = results.to_dict("records")
    assert [(r["draft"], r["variant"], r["export"], r["brief"]) for r in rows][0] == (12, 1, 7, 3)
    assert rows[1]["customer"] == "C-1" and pd.isna(rows[1]["draft"])
    assert rows[2]["email"] == "pat@example.test"  # trimmed and lower-cased
    assert results.columns.tolist() == RESULT_COLUMNS


def test_times_are_read_in_the_catalogs_zone(tmp_path):
    results, issues, _ = clean(
        tmp_path,
        csv(
            "email,sent_at,clicked_at",
            "a@x.test,2024-01-15 09:00,2024-07-01T10:00:00Z",
            "b@x.test,yesterday,",
        ),
        tz="Europe/Berlin",
    )
    assert issues == [(3, "sent_at", "yesterday", "unparseable date", "rejected")]
    (a,) = results.to_dict("records")
    assert a["sent_at"] == pd.Timestamp(dt.datetime(2024, 1, 15, 8, 0, tzinfo=dt.UTC))
    assert a["clicked_at"] == pd.Timestamp(dt.datetime(2024, 7, 1, 10, 0, tzinfo=dt.UTC))
    assert a["clicked"] and pd.isna(a["opened_at"])


def test_exact_duplicate_lines_are_counted_across_chunks(tmp_path):
    results, issues, counts = clean(
        tmp_path,
        csv("email,opened", "a@x.test,yes", "b@x.test,no", "a@x.test,yes", "a@x.test,no"),
        chunk_rows=2,
    )
    assert counts["duplicate_lines"] == 1 and issues == []
    assert results["email"].tolist() == ["a@x.test", "b@x.test", "a@x.test"]


def test_formula_looking_ids_are_kept_as_text(tmp_path):
    results, issues, counts = clean(tmp_path, csv("customer_id,opened", "=HYPERLINK(1),yes"))
    assert issues == [(2, "customer_id", "=HYPERLINK(1)", "formula-looking cell", "kept as text")]
    assert results["customer"].tolist() == ["=HYPERLINK(1)"] and counts["formula_cells"] == 1


# ----------------------------------------------------------------------------- combining


def test_rows_of_one_recipient_combine(tmp_path):
    results, _, _ = clean(
        tmp_path,
        csv(
            "email,sku,delivered,opened,clicked,converted,revenue,opened_at",
            "b@x.test,,,,,,,",
            "a@x.test,,no,yes,no,yes,10.00,2024-05-02 10:00",
            "a@x.test,PAN-2,,no,yes,yes,5.50,",
            "a@x.test,MUG-1,yes,yes,no,no,,2024-05-01 12:00",
            "c@x.test,,no,,,,,",
        ),
    )

    merged, folded = combine_results(results, "email")

    assert folded == 2
    assert merged["email"].tolist() == ["b@x.test", "a@x.test", "c@x.test"]  # file order
    b, a, c = merged.to_dict("records")
    assert (a["opened"], a["clicked"], a["converted"]) == (True, True, True)  # any yes
    assert a["revenue"] == 15.5 and np.isnan(b["revenue"])  # adds up; blank stays unknown
    assert a["opened_at"] == pd.Timestamp("2024-05-01 12:00", tz="UTC")  # the earliest
    assert a["sku"] == "PAN-2" and a["_row"] == 3  # the first given; the first row
    assert (a["delivered"], b["delivered"], c["delivered"]) == (True, None, False)
    assert merged.columns.tolist() == RESULT_COLUMNS


def test_combining_by_an_extra_key_keeps_it_and_nothing_to_combine_is_a_no_op(tmp_path):
    results, _, _ = clean(tmp_path, csv("customer_id,clicked", "C-1,yes", "C-2,no", "c-1,no"))
    keyed = results.assign(customer_pk=[7, 8, 7])
    merged, folded = combine_results(keyed, "customer_pk")
    assert folded == 1 and merged["customer_pk"].tolist() == [7, 8]
    assert merged["clicked"].tolist() == [True, False]
    same, none = combine_results(keyed.iloc[:2], "customer_pk")
    assert none == 0 and same["customer_pk"].tolist() == [7, 8]
