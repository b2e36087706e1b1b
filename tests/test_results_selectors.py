"""Campaign results reads (copygen.selectors_results): variant counts aggregated in SQL and
summarised by copygen.experiments, checked against numbers computed here by hand; slices;
uplift against the control group from store purchases inside each person's attribution
window; the catalog overview.

Rows are created directly: exports with a finish time, their recipients and control
members, the campaign tool's results, and purchase events.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from itertools import count

import pytest

from copygen import selectors_results as selectors
from copygen.models import CampaignResult, ControlMember, Export, ExportRecipient
from marketing.models import Customer, Event, EventKind, Job, Segment, SegmentMembership
from tests.copygen_factories import BriefFactory, SegmentFactory
from tests.factories import CatalogFactory, CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db

Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal
T0 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
_event_ids = count(1_000_000)


# ----------------------------------------------------------------------------- helpers


def make_export(brief, finished_at=T0, **kwargs) -> Export:
    """A finished export of the brief (its job succeeded at ``finished_at``)."""
    job = Job.objects.create(
        kind=Job.Kind.COPY_EXPORT,
        status=Job.Status.SUCCEEDED,
        catalog=brief.catalog,
        finished_at=finished_at,
    )
    return Export.objects.create(
        catalog=brief.catalog,
        brief=brief,
        preset=kwargs.pop("preset", "mailchimp"),
        channel=brief.channel,
        seed=7,
        job=job,
        finished_at=finished_at,
        **kwargs,
    )


def make_customers(n: int, prefix: str = "R") -> list[Customer]:
    start = Customer.objects.count()
    return Customer.objects.bulk_create(
        Customer(external_id=f"{prefix}{start + i:06d}", consent_email=True) for i in range(n)
    )


def send(export, customers, *, variant=1, locale="en", results=True, **outcome) -> None:
    """Record ``customers`` as recipients of ``export`` (and, with ``results``, the
    campaign tool's result rows with ``outcome``: a dict of field -> value or a callable
    of the row index)."""
    ExportRecipient.objects.bulk_create(
        ExportRecipient(export=export, customer=c, variant=variant, locale=locale)
        for c in customers
    )
    if not results:
        return
    rows = []
    for i, c in enumerate(customers):
        values = {k: (v(i) if callable(v) else v) for k, v in outcome.items()}
        values.setdefault("channel", export.channel)
        rows.append(
            CampaignResult(
                export=export,
                brief=export.brief,
                customer=c,
                variant=variant,
                locale=locale,
                **values,
            )
        )
    CampaignResult.objects.bulk_create(rows)


def hold_out(export, customers) -> None:
    ControlMember.objects.bulk_create(
        ControlMember(export=export, brief=export.brief, customer=c) for c in customers
    )


def purchase(customer, product, when, value="10.00", *, kind=EventKind.PURCHASE, quantity=1):
    return Event.objects.create(
        id=next(_event_ids),
        catalog=product.catalog,
        product=product,
        customer=customer,
        kind=kind,
        quantity=quantity,
        value=Decimal(value),
        occurred_at=when,
    )


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The textbook Wilson score interval."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def pooled_z_p(s1: int, n1: int, s2: int, n2: int) -> float:
    """Two-sided p of the pooled two-proportion z-test."""
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (s1 / n1 - s2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


@pytest.fixture
def brief():
    catalog = CatalogFactory(currency="GBP", name="Shop")
    return BriefFactory(catalog=catalog, channel="email", name="Spring sale")


def ab_test(brief, clicks=(30, 50), n=200, **outcome):
    """Variants 1 and 2, ``n`` recipients each, the first ``clicks[i]`` of them clicked."""
    export = make_export(brief)
    for variant, k in enumerate(clicks, start=1):
        send(
            export,
            make_customers(n, prefix=f"V{variant}-"),
            variant=variant,
            clicked=lambda i, k=k: i < k,
            **outcome,
        )
    return export


# ----------------------------------------------------------------------------- variants


def test_click_rates_intervals_test_and_winner_match_the_textbook(brief):
    ab_test(brief, clicks=(30, 50))
    (everyone,) = selectors.results_variants(brief=brief, metric="click")
    assert everyone.label == "All recipients"
    assert [g.name for g in everyone.groups] == ["Variant 1", "Variant 2"]
    assert everyone.denominator == "sent"  # no delivery reported
    one, two = everyone.summary.groups
    assert (one.recipients, one.click.successes, two.click.successes) == (200, 30, 50)
    assert one.click.rate == pytest.approx(0.15) and two.click.rate == pytest.approx(0.25)
    assert (one.click.low, one.click.high) == pytest.approx(wilson(30, 200), abs=1e-9)
    assert (two.click.low, two.click.high) == pytest.approx(wilson(50, 200), abs=1e-9)
    # 30/200 vs 50/200: pooled 0.2, se 0.04, z = 2.5, p = 0.0124.
    (comparison,) = everyone.summary.comparisons
    assert (comparison.group, comparison.reference) == ("Variant 1", "Variant 2")
    assert comparison.test.diff == pytest.approx(-0.10)
    assert comparison.test.p_value == pytest.approx(pooled_z_p(30, 200, 50, 200), rel=1e-6)
    assert comparison.test.p_value == pytest.approx(0.012419, abs=1e-5)
    assert comparison.p_adjusted == pytest.approx(comparison.test.p_value)  # one test
    assert everyone.summary.winner == "Variant 2"
    assert everyone.summary.reason.startswith("Variant 2: click rate 25.0% vs 15.0%")


def test_comparison_rows_put_the_leader_first(brief):
    export = ab_test(brief, clicks=(30, 50))
    send(export, make_customers(200, "V3-"), variant=3, clicked=lambda i: i < 40)
    (everyone,) = selectors.results_variants(brief=brief)
    rows = {(r.group, r.reference): r for r in everyone.comparison_rows}
    # The summary compares in input order (1 vs 2, 1 vs 3, 2 vs 3); the rows turn the
    # first two round so that each difference is positive.
    assert set(rows) == {
        ("Variant 2", "Variant 1"),
        ("Variant 3", "Variant 1"),
        ("Variant 2", "Variant 3"),
    }
    two_one = rows["Variant 2", "Variant 1"]
    original = everyone.summary.comparisons[0]
    assert (original.group, original.reference) == ("Variant 1", "Variant 2")
    assert two_one.diff == pytest.approx(0.10)
    assert (two_one.diff_low, two_one.diff_high) == pytest.approx(
        (-original.test.diff_high, -original.test.diff_low)
    )
    assert two_one.relative == pytest.approx(0.25 / 0.15 - 1)
    assert two_one.prob_to_beat == pytest.approx(1 - original.prob_to_beat)
    assert two_one.p_adjusted == original.p_adjusted
    assert rows["Variant 2", "Variant 3"].relative == pytest.approx(0.25 / 0.20 - 1)
    assert not everyone.has_opens


def test_no_winner_without_evidence_and_the_metric_changes_the_question(brief):
    ab_test(brief, clicks=(30, 34), opened=lambda i: i < 100)
    (clicks,) = selectors.results_variants(brief=brief, metric="click")
    assert clicks.summary.winner is None
    assert clicks.summary.reason.startswith("No winner yet:")
    (opens,) = selectors.results_variants(brief=brief, metric="open")
    assert opens.summary.metric == "open"
    assert [g.open.rate for g in opens.summary.groups] == [0.5, 0.5]
    assert opens.summary.winner is None


def test_delivered_is_the_denominator_when_every_row_reports_it(brief):
    export = make_export(brief)
    # 100 sent, 80 delivered; 20 opens among the delivered, plus 5 "opens" of undelivered
    # rows that must not count.
    send(
        export,
        make_customers(100),
        delivered=lambda i: i < 80,
        opened=lambda i: i < 20 or i >= 95,
    )
    (everyone,) = selectors.results_variants(brief=brief, metric="open")
    (group,) = everyone.groups
    assert (group.sent, group.delivered, group.opened) == (100, 80, 20)
    assert everyone.denominator == "delivered"
    assert everyone.summary.groups[0].open.rate == pytest.approx(20 / 80)
    assert everyone.notes == ()


def test_partly_reported_delivery_falls_back_to_sent_and_says_so(brief):
    export = make_export(brief)
    send(export, make_customers(50), variant=1, delivered=True, clicked=lambda i: i < 5)
    send(export, make_customers(50), variant=2, delivered=None, clicked=lambda i: i < 10)
    (everyone,) = selectors.results_variants(brief=brief)
    assert everyone.denominator == "sent"
    assert [g.delivered for g in everyone.groups] == [None, None]
    assert [g.recipients for g in everyone.groups] == [50, 50]
    assert "every rate here divides by the messages sent" in everyone.notes[0]


def test_rows_not_sent_are_left_out(brief):
    export = make_export(brief)
    send(export, make_customers(10), sent=True, clicked=lambda i: i < 2)
    send(export, make_customers(5), sent=False, clicked=False)
    (everyone,) = selectors.results_variants(brief=brief)
    assert everyone.groups[0].sent == 10 and everyone.groups[0].clicked == 2


def test_revenue_sums_count_unreported_revenue_as_zero(brief):
    export = make_export(brief)
    revenue = {0: Decimal("10.00"), 1: Decimal("20.50"), 2: Decimal("4.50")}
    send(
        export,
        make_customers(20),
        converted=lambda i: i in revenue,
        revenue=lambda i: revenue.get(i),
    )
    send(export, make_customers(20), variant=2)  # no revenue reported at all
    (everyone,) = selectors.results_variants(brief=brief, metric="conversion")
    one, two = everyone.groups
    assert one.revenue_sum == pytest.approx(35.0)
    assert one.revenue_sumsq == pytest.approx(100 + 20.5**2 + 4.5**2)
    assert (two.revenue_sum, two.revenue_sumsq) == (0.0, 0.0)  # another group has revenue
    assert everyone.summary.groups[0].revenue.mean == pytest.approx(35.0 / 20)
    assert everyone.summary.comparisons[0].revenue is not None


def test_without_any_revenue_the_revenue_is_unknown(brief):
    ab_test(brief, clicks=(1, 2), n=10)
    (everyone,) = selectors.results_variants(brief=brief)
    assert not everyone.has_revenue
    assert all(g.revenue_sum is None for g in everyone.groups)
    assert math.isnan(everyone.summary.groups[0].revenue.mean)


def test_slices_by_locale_channel_and_rfm_segment(brief):
    export = make_export(brief)
    english, german = make_customers(30, "EN"), make_customers(10, "DE")
    send(export, english, locale="en", clicked=lambda i: i < 3)
    send(export, german, variant=2, locale="de", clicked=lambda i: i < 4, channel="sms")

    locales = selectors.results_variants(brief=brief, slice_by="locale")
    assert [(s.label, s.recipients) for s in locales] == [("English", 30), ("German", 10)]
    assert [g.name for g in locales[1].groups] == ["Variant 2"]
    assert locales[1].summary.groups[0].click.successes == 4

    channels = selectors.results_variants(brief=brief, slice_by="channel")
    assert [(s.label, s.recipients) for s in channels] == [("Email", 30), ("SMS", 10)]

    catalog = brief.catalog
    champions = SegmentFactory(catalog=catalog, kind=Segment.Kind.RFM, name="Champions")
    at_risk = SegmentFactory(catalog=catalog, kind=Segment.Kind.RFM, name="At risk")
    other_catalog = SegmentFactory(kind=Segment.Kind.RFM, name="Elsewhere")
    rule = SegmentFactory(catalog=catalog, kind=Segment.Kind.RULE, name="Rule")
    memberships = [SegmentMembership(segment=champions, customer=c) for c in english[:20]]
    memberships += [SegmentMembership(segment=at_risk, customer=c) for c in german]
    # Neither another catalog's RFM segment nor a rule segment is "the RFM segment".
    memberships += [SegmentMembership(segment=other_catalog, customer=c) for c in english[20:]]
    memberships += [SegmentMembership(segment=rule, customer=c) for c in english]
    SegmentMembership.objects.bulk_create(memberships)

    segments = selectors.results_variants(brief=brief, slice_by="segment")
    assert [(s.label, s.recipients) for s in segments] == [
        ("Champions", 20),
        ("At risk", 10),
        ("No RFM segment", 10),
    ]
    assert segments[0].groups[0].clicked == 3
    assert segments[1].groups[0].name == "Variant 2"


def test_segment_slice_of_a_catalog_without_rfm_segments(brief):
    ab_test(brief, clicks=(1, 2), n=10)
    (only,) = selectors.results_variants(brief=brief, slice_by="segment")
    assert only.label == "No RFM segment" and only.recipients == 20


def test_other_briefs_results_do_not_count(brief):
    ab_test(brief, clicks=(3, 4), n=10)
    other = BriefFactory(catalog=brief.catalog)
    send(make_export(other), make_customers(50, "O"), clicked=True)
    (everyone,) = selectors.results_variants(brief=brief)
    assert everyone.recipients == 20


def test_no_results_no_slices(brief):
    assert selectors.results_variants(brief=brief) == []
    status = selectors.results_brief_status(brief=brief)
    assert status.empty and status.results == 0 and status.latest is None


def test_status_counts_results_exports_recipients_and_control(brief):
    first = make_export(brief)
    second = make_export(brief, finished_at=T0 + dt.timedelta(days=2))
    send(first, make_customers(4))
    send(second, make_customers(3, "S"), results=False)
    hold_out(first, make_customers(2, "C"))
    status = selectors.results_brief_status(brief=brief)
    assert (status.results, status.exports, status.recipients, status.control) == (4, 1, 7, 2)
    assert status.export_ids == (second.pk, first.pk)  # newest first
    assert status.latest is not None and not status.empty


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"metric": "ctr"}, "metric must be one of"), ({"slice_by": "country"}, "slice must be")],
)
def test_unknown_metric_or_slice_is_refused(brief, kwargs, message):
    with pytest.raises(ValueError, match=message):
        selectors.results_variants(brief=brief, **kwargs)


def test_aggregation_is_a_fixed_number_of_queries(brief, django_assert_num_queries):
    ab_test(brief, clicks=(30, 50), n=200)
    brief.catalog  # noqa: B018 - loaded once, as the view's brief_get does
    with django_assert_num_queries(1):
        selectors.results_variants(brief=brief, slice_by="locale")
    with django_assert_num_queries(2):  # the RFM segments' names, then the counts
        selectors.results_variants(brief=brief, slice_by="segment")


# ----------------------------------------------------------------------------- uplift


def test_uplift_needs_a_control_group(brief):
    ab_test(brief, clicks=(1, 2), n=10)
    assert selectors.results_uplift(brief=brief) is None


def test_attribution_windows_start_at_each_arms_own_export(brief, settings):
    settings.CAMPAIGN_ATTRIBUTION_DAYS = 14
    product = ProductFactory(catalog=brief.catalog)
    elsewhere = ProductFactory()  # another catalog
    first = make_export(brief, finished_at=T0)  # window [1 Mar 09:00, 15 Mar 09:00)
    second = make_export(brief, finished_at=T0 + dt.timedelta(days=9))  # [10 Mar, 24 Mar)
    a, b, c, d = (CustomerFactory() for _ in range(4))
    send(first, [a], variant=1)
    send(second, [a], variant=1)  # sent again: counted once, from its first export
    send(second, [b], variant=2)
    hold_out(first, [c])
    hold_out(second, [d])  # a newcomer held out by the later export

    day = dt.timedelta(days=1)
    purchase(a, product, T0 - day, "99.00")  # before the export: ignored
    purchase(a, product, T0 + 4 * day, "20.00")  # counted
    purchase(a, product, T0 + 14 * day, "50.00")  # at the window's end: ignored
    purchase(a, elsewhere, T0 + 2 * day, "70.00")  # another catalog: ignored
    purchase(a, product, T0 + 3 * day, "30.00", kind=EventKind.RETURN)  # not a purchase
    purchase(b, product, T0 + 8 * day, "40.00")  # in the first window, before its own export
    purchase(b, product, T0 + 10 * day, "0.00", quantity=0)  # quantity 0: ignored
    purchase(c, product, T0 + 11 * day, "15.00")  # counted (first export's window)
    purchase(c, product, T0 + 12 * day, "5.00")  # a second purchase: one buyer, 20.00
    purchase(d, product, T0 + 4 * day, "60.00")  # before its own export: ignored
    purchase(d, product, T0 + 19 * day, "25.00")  # inside the second window: counted

    uplift = selectors.results_uplift(brief=brief, now=T0 + 60 * day)
    (everyone,) = uplift.slices
    groups = {g.name: g for g in everyone.groups}
    assert list(groups) == ["Variant 1", "Variant 2", "Control"]
    assert (groups["Variant 1"].sent, groups["Variant 1"].converted) == (1, 1)
    assert groups["Variant 1"].revenue_sum == pytest.approx(20.0)
    assert (groups["Variant 2"].sent, groups["Variant 2"].converted) == (1, 0)
    assert groups["Variant 2"].revenue_sum == 0.0
    assert (groups["Control"].sent, groups["Control"].converted) == (2, 2)
    assert groups["Control"].revenue_sum == pytest.approx(20.0 + 25.0)
    assert groups["Control"].revenue_sumsq == pytest.approx(20.0**2 + 25.0**2)
    assert everyone.summary.control == "Control" and everyone.summary.metric == "conversion"
    assert {c.reference for c in everyone.summary.comparisons} == {"Control"}

    windows = {w.export_id: w for w in uplift.windows}
    assert windows[first.pk].start == T0 and windows[first.pk].end == T0 + 14 * day
    assert (windows[first.pk].sent, windows[first.pk].held_out) == (1, 1)
    assert (windows[second.pk].sent, windows[second.pk].held_out) == (2, 1)
    assert not uplift.still_open and uplift.days == 14

    # A shorter window drops c's and d's purchases (days 11-12 and 10 days in).
    settings.CAMPAIGN_ATTRIBUTION_DAYS = 7
    short = selectors.results_uplift(brief=brief, now=T0 + 60 * day)
    control = next(g for g in short.slices[0].groups if g.name == "Control")
    assert control.converted == 0 and short.windows[0].end == T0 + 7 * day
    # Still open while "now" is inside a window.
    assert selectors.results_uplift(brief=brief, now=T0 + 2 * day).still_open


def test_control_members_sent_copy_anyway_are_left_out(brief):
    early = make_export(brief, finished_at=T0)  # no control group yet: sent to everyone
    later = make_export(brief, finished_at=T0 + dt.timedelta(days=3))
    people = make_customers(5)
    send(early, people)
    hold_out(later, people[:2])  # held out later, but they already got copy
    hold_out(later, make_customers(3, "C"))
    uplift = selectors.results_uplift(brief=brief, now=T0)
    control = next(g for g in uplift.slices[0].groups if g.name == "Control")
    assert control.sent == 3 and uplift.control_sent == 2 and uplift.control_members == 5


def test_uplift_sliced_by_segment_and_not_by_locale(brief):
    product = ProductFactory(catalog=brief.catalog)
    export = make_export(brief)
    loyal = SegmentFactory(catalog=brief.catalog, kind=Segment.Kind.RFM, name="Loyal")
    sent, held = make_customers(4), make_customers(2, "C")
    send(export, sent)
    hold_out(export, held)
    SegmentMembership.objects.bulk_create(
        SegmentMembership(segment=loyal, customer=c) for c in [*sent[:2], held[0]]
    )
    purchase(held[0], product, T0 + dt.timedelta(hours=1))

    uplift = selectors.results_uplift(brief=brief, slice_by="segment", now=T0)
    assert [s.label for s in uplift.slices] == ["Loyal", "No RFM segment"]
    loyal_groups = {g.name: (g.sent, g.converted) for g in uplift.slices[0].groups}
    assert loyal_groups == {"Variant 1": (2, 0), "Control": (1, 1)}
    assert uplift.still_open

    by_locale = selectors.results_uplift(brief=brief, slice_by="locale", now=T0)
    assert by_locale.slice_by == "all" and len(by_locale.slices) == 1
    assert "no locale" in by_locale.notes[0]


def test_uplift_winner_needs_evidence_against_control(brief):
    product = ProductFactory(catalog=brief.catalog)
    export = make_export(brief)
    treated, held = make_customers(300), make_customers(300, "C")
    send(export, treated, results=False)
    hold_out(export, held)
    for c in treated[:60]:  # 20 % buy after the campaign
        purchase(c, product, T0 + dt.timedelta(days=2))
    for c in held[:30]:  # 10 % of the control group buy anyway
        purchase(c, product, T0 + dt.timedelta(days=2))
    (everyone,) = selectors.results_uplift(brief=brief, now=T0).slices
    assert everyone.summary.winner == "Variant 1"
    (comparison,) = everyone.summary.comparisons
    assert comparison.uplift.absolute == pytest.approx(0.10)
    assert comparison.test.p_value == pytest.approx(pooled_z_p(60, 300, 30, 300), rel=1e-6)


# ----------------------------------------------------------------------------- overview


def test_catalog_overview_per_channel_and_per_brief(brief):
    ab_test(brief, clicks=(30, 50), n=200)  # email, 400 people, 80 clicks
    sms = BriefFactory(catalog=brief.catalog, channel="sms", name="Texts")
    send(
        make_export(sms),
        make_customers(100, "T"),
        delivered=lambda i: i < 90,
        clicked=lambda i: i < 9,
        revenue=lambda i: Decimal("12.00") if i == 0 else None,
    )
    send(make_export(BriefFactory(channel="push")), make_customers(7, "X"))  # other catalog

    overview = selectors.results_catalog_overview(catalog=brief.catalog)
    assert overview.results == 500
    assert [(r.label, r.counts.recipients) for r in overview.by_channel] == [
        ("Email", 400),
        ("SMS", 90),
    ]
    email, sms_row = overview.by_channel
    assert email.estimates.click.rate == pytest.approx(80 / 400)
    assert (email.estimates.click.low, email.estimates.click.high) == pytest.approx(
        wilson(80, 400), abs=1e-9
    )
    assert sms_row.counts.denominator == "delivered"
    assert sms_row.estimates.click.rate == pytest.approx(9 / 90)
    assert sms_row.estimates.revenue.mean == pytest.approx(12 / 90)
    assert math.isnan(email.estimates.revenue.mean)
    assert [(r.label, r.brief.pk) for r in overview.by_brief] == [
        ("Spring sale", brief.pk),
        ("Texts", sms.pk),
    ]
    # Catalogs with results first, the latest import first; then the others.
    quiet = CatalogFactory(name="Aardvark")
    catalogs = selectors.results_catalogs()
    assert catalogs[1] == brief.catalog and catalogs[-1] == quiet
    assert catalogs[0] == CampaignResult.objects.latest("updated_at").brief.catalog
