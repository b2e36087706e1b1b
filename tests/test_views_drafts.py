"""Review pages: the drafts table (filters, bulk approve), a draft's page (editor with live
checks, save, approve / reject / reopen, history with diffs), and the customer page's drafts.

mary (marketer) edits; avery (approver) reviews; alice (admin) does both; nora has no role;
anonymous users are sent to log in. HTML in catalog text or in an edit is always shown
escaped.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from copygen.models import Draft, DraftRevision
from copygen.services import drafts as svc
from marketing.models import AuditEvent
from tests.copygen_factories import PASSING_FIELDS, BriefFactory, SegmentFactory, draft_make, mug
from tests.factories import CatalogFactory, CustomerFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
INVENTED_PRICE = "Hi there,\n\nThe Blue Mug is yours for £9.99 today. It keeps your tea warm."
SCRIPT = '<script>alert("x")</script>'


@pytest.fixture
def shop():
    """An email brief for "Loyal" (two customers' drafts, one failing), an SMS brief for
    "Lapsed" (one German segment draft)."""
    catalog = CatalogFactory(name="Shop", currency="GBP")
    mug(catalog)
    loyal = SegmentFactory(catalog=catalog, name="Loyal")
    lapsed = SegmentFactory(catalog=catalog, name="Lapsed")
    email = BriefFactory(catalog=catalog, name="Spring email", segment=loyal, channel="email")
    sms = BriefFactory(catalog=catalog, name="Win-back SMS", segment=lapsed, channel="sms")
    anna = CustomerFactory(external_id="anna-1", email="anna@example.test", name="Anna Smith")
    ben = CustomerFactory(external_id="ben-2", email="ben@example.test")
    good = draft_make(brief=email, customer=anna)
    bad = draft_make(
        brief=email, customer=ben, fields={**PASSING_FIELDS["email"], "body": INVENTED_PRICE}
    )
    segment_draft = draft_make(
        brief=sms,
        segment=lapsed,
        locale="de",
        fields={"text": "Der Blue Mug ist da. Er hält deinen Tee lange warm. Schau ihn dir an."},
    )
    assert good.passes and not bad.passes
    return {
        "catalog": catalog,
        "email": email,
        "sms": sms,
        "loyal": loyal,
        "lapsed": lapsed,
        "anna": anna,
        "good": good,
        "bad": bad,
        "segment_draft": segment_draft,
    }


def html(response) -> str:
    return response.content.decode()


def rows(response) -> set[int]:
    """The draft pks of the table's rows."""
    return {int(pk) for pk in re.findall(r'<tr id="draft-(\d+)"', html(response))}


def list_url(**params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return reverse("copygen:draft-list") + (f"?{query}" if query else "")


def email_fields(**changes) -> dict:
    return {f"field-{k}": v for k, v in {**PASSING_FIELDS["email"], **changes}.items()}


# --------------------------------------------------------------------------- access


def test_anonymous_users_are_sent_to_log_in(client, shop):
    pk = shop["good"].pk
    for url in (list_url(), reverse("copygen:draft-detail", args=[pk])):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    for name, args in (
        ("copygen:draft-check", [pk]),
        ("copygen:draft-edit", [pk]),
        ("copygen:draft-review", [pk]),
        ("copygen:draft-reopen", [pk]),
        ("copygen:draft-bulk-approve", []),
    ):
        response = client.post(reverse(name, args=args), {"action": "approve"})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert Draft.objects.get(pk=pk).status == Draft.Status.PENDING


def test_users_without_a_role_get_403(client, shop, no_role_user):
    client.force_login(no_role_user)
    pk = shop["good"].pk
    assert client.get(list_url()).status_code == 403
    assert client.get(reverse("copygen:draft-detail", args=[pk])).status_code == 403
    assert client.post(reverse("copygen:draft-check", args=[pk]), email_fields()).status_code == 403


def test_missing_draft_is_404(client, shop, marketer):
    client.force_login(marketer)
    assert client.get(reverse("copygen:draft-detail", args=[10**9])).status_code == 404
    assert client.post(reverse("copygen:draft-edit", args=[10**9])).status_code == 404


def test_writes_reject_get(client, shop, admin_user):
    client.force_login(admin_user)
    pk = shop["good"].pk
    for name, args in (
        ("copygen:draft-check", [pk]),
        ("copygen:draft-edit", [pk]),
        ("copygen:draft-review", [pk]),
        ("copygen:draft-reopen", [pk]),
        ("copygen:draft-bulk-approve", []),
    ):
        assert client.get(reverse(name, args=args)).status_code == 405


def test_marketer_cannot_review_bulk_approve_or_reopen(client, shop, marketer, approver):
    good = shop["good"]
    client.force_login(marketer)
    for action in ("approve", "reject"):
        response = client.post(
            reverse("copygen:draft-review", args=[good.pk]), {"action": action, "comment": "x"}
        )
        assert response.status_code == 403
    response = client.post(reverse("copygen:draft-bulk-approve"), {"ids": [good.pk]})
    assert response.status_code == 403
    svc.draft_approve(draft=good, user=approver)
    response = client.post(reverse("copygen:draft-reopen", args=[good.pk]), {"comment": "mine"})
    assert response.status_code == 403
    assert Draft.objects.get(pk=good.pk).status == Draft.Status.APPROVED


def test_approver_cannot_edit_or_run_live_checks(client, shop, approver):
    good = shop["good"]
    client.force_login(approver)
    url = reverse("copygen:draft-edit", args=[good.pk])
    assert client.post(url, email_fields(subject="Mine")).status_code == 403
    assert client.post(reverse("copygen:draft-check", args=[good.pk])).status_code == 403
    assert Draft.objects.get(pk=good.pk).revision == 1


def test_csrf_is_enforced_and_htmx_sends_the_header(shop, marketer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    page = html(client.get(shop["good"].get_absolute_url()))
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    url = reverse("copygen:draft-check", args=[shop["good"].pk])
    assert client.post(url, email_fields(), **HX).status_code == 403
    assert client.post(url, email_fields(), HTTP_X_CSRFTOKEN=token, **HX).status_code == 200


# --------------------------------------------------------------------------- list


def test_list_shows_the_drafts_with_audience_but_never_email(client, shop, marketer):
    client.force_login(marketer)
    response = client.get(list_url())
    body = html(response)
    assert response.status_code == 200
    assert rows(response) == {shop["good"].pk, shop["bad"].pk, shop["segment_draft"].pk}
    assert 'href="{}">anna-1</a>'.format(shop["anna"].get_absolute_url()) in body
    assert ">Lapsed</a>" in body  # the segment draft's audience
    assert "anna@example.test" not in body and "Anna Smith" not in body
    assert "Faithful to product data" in body  # the failing chip of ben's draft
    assert "Approve selected" not in body  # marketers do not approve


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"status": "pending"}, {"good", "bad", "segment_draft"}),
        ({"status": "approved"}, set()),
        ({"locale": "de"}, {"segment_draft"}),
        ({"channel": "sms"}, {"segment_draft"}),
        ({"failing": "fidelity"}, {"bad"}),
        ({"passes": "no"}, {"bad"}),
        ({"passes": "yes"}, {"good", "segment_draft"}),
    ],
)
def test_filters_narrow_the_table(client, shop, marketer, params, expected):
    client.force_login(marketer)
    response = client.get(list_url(**params), **HX)
    assert response.status_code == 200
    assert html(response).lstrip().startswith('<section id="results"')  # the partial
    assert rows(response) == {shop[name].pk for name in expected}


def test_segment_brief_and_customer_filters(client, shop, marketer):
    client.force_login(marketer)
    assert rows(client.get(list_url(segment=shop["lapsed"].pk))) == {shop["segment_draft"].pk}
    assert rows(client.get(list_url(segment=shop["loyal"].pk))) == {
        shop["good"].pk,
        shop["bad"].pk,
    }
    assert rows(client.get(list_url(brief=shop["sms"].pk))) == {shop["segment_draft"].pk}
    assert rows(client.get(list_url(customer=shop["anna"].pk))) == {shop["good"].pk}


def test_a_bad_filter_is_ignored_with_a_message(client, shop, marketer):
    client.force_login(marketer)
    response = client.get(list_url(status="bogus", locale="de"))
    assert response.status_code == 200
    assert "This filter was ignored" in html(response)
    assert rows(response) == {shop["segment_draft"].pk}
    assert rows(client.get(list_url(brief="x' OR 1=1"))) == rows(client.get(list_url()))


def test_approver_sees_checkboxes_and_bulk_buttons(client, shop, approver):
    client.force_login(approver)
    body = html(client.get(list_url()))
    assert f'name="ids" value="{shop["good"].pk}"' in body
    assert "Approve selected" in body and "Approve all passing in this filter" in body


def test_bulk_approve_selected(client, shop, approver):
    client.force_login(approver)
    ids = [shop["good"].pk, shop["bad"].pk]
    response = client.post(
        reverse("copygen:draft-bulk-approve"),
        {"ids": ids, "scope": "selected", "brief": shop["email"].pk},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == list_url(brief=shop["email"].pk)
    assert "Approved 1 draft; skipped 1 that fail a check." in html(response)
    assert Draft.objects.get(pk=shop["good"].pk).status == Draft.Status.APPROVED
    assert Draft.objects.get(pk=shop["bad"].pk).status == Draft.Status.PENDING


def test_bulk_approve_all_passing_in_the_filter(client, shop, approver):
    client.force_login(approver)
    response = client.post(
        reverse("copygen:draft-bulk-approve"),
        {"scope": "filter", "segment": shop["loyal"].pk},
        follow=True,
    )
    assert "Approved 1 draft; skipped 1 that fail a check." in html(response)
    statuses = dict(Draft.objects.values_list("pk", "status"))
    assert statuses[shop["good"].pk] == "approved"
    assert statuses[shop["bad"].pk] == "pending"
    assert statuses[shop["segment_draft"].pk] == "pending"  # outside the filter


def test_bulk_approve_with_nothing_ticked(client, shop, approver):
    client.force_login(approver)
    response = client.post(reverse("copygen:draft-bulk-approve"), {"ids": ["x", "-1"]}, follow=True)
    assert "Tick the drafts to approve first." in html(response)
    assert not Draft.objects.filter(status=Draft.Status.APPROVED).exists()


# --------------------------------------------------------------------------- detail


def test_marketer_gets_the_editor_shaped_by_the_channel(client, shop, marketer):
    client.force_login(marketer)
    body = html(client.get(shop["good"].get_absolute_url()))
    check_url = reverse("copygen:draft-check", args=[shop["good"].pk])
    assert '<form id="draft-editor"' in body
    assert f'hx-post="{check_url}" hx-trigger="input changed delay:400ms"' in body
    assert 'name="field-subject" value="Meet the Blue Mug"' in body
    assert "at most 60 characters" in body and "40–110 characters" in body
    assert 'id="draft-review"' not in body  # marketers do not review
    assert ">Blue Mug</a>" in body and "12.50 GBP" in body  # the product
    assert shop["email"].get_absolute_url() in body  # the brief
    assert shop["anna"].get_absolute_url() in body  # the audience


def test_ads_lists_are_one_item_per_line(client, marketer):
    ads = draft_make(channel="google_ads")
    client.force_login(marketer)
    body = html(client.get(ads.get_absolute_url()))
    assert "Meet the Blue Mug\nWarm tea all morning\nEasy to clean</textarea>" in body
    response = client.post(
        reverse("copygen:draft-edit", args=[ads.pk]),
        {
            "field-headlines": "Meet the Blue Mug\r\n\r\nWarm tea all day\r\nEasy to clean\r\n",
            "field-descriptions": "\n".join(PASSING_FIELDS["google_ads"]["descriptions"]),
        },
    )
    assert response.status_code == 302
    ads.refresh_from_db()
    assert ads.fields["headlines"] == ["Meet the Blue Mug", "Warm tea all day", "Easy to clean"]


def test_live_check_reports_an_invented_price_without_saving(client, shop, marketer):
    good = shop["good"]
    client.force_login(marketer)
    response = client.post(
        reverse("copygen:draft-check", args=[good.pk]), email_fields(body=INVENTED_PRICE), **HX
    )
    body = html(response)
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="draft-checks"')
    assert "Faithful to product data" in body and "1 error" in body
    assert "text as typed, not saved" in body
    good.refresh_from_db()
    assert good.revision == 1 and good.fields == PASSING_FIELDS["email"] and good.passes
    assert DraftRevision.objects.filter(draft=good).count() == 1


def test_live_check_counts_sms_segments(client, shop, marketer):
    draft = shop["segment_draft"]
    client.force_login(marketer)
    url = reverse("copygen:draft-check", args=[draft.pk])
    body = html(client.post(url, {"field-text": "Der Blue Mug ist da. " * 8}, **HX))
    assert "2 SMS segments; 1 allowed" in body
    assert "168 characters (GSM-7) · 2 segments, 1 allowed" in body and 'class="over"' in body
    body = html(client.post(url, {"field-text": "Der Blue Mug ist da 😀"}, **HX))
    assert "(UCS-2) · 1 segment, 1 allowed" in body
    draft.refresh_from_db()
    assert draft.revision == 1


def test_live_check_of_a_bad_shape_shows_the_error(client, marketer):
    ads = draft_make(channel="google_ads")
    client.force_login(marketer)
    lines = "\n".join(f"Mug {i}" for i in range(16))
    body = html(
        client.post(
            reverse("copygen:draft-check", args=[ads.pk]),
            {"field-headlines": lines, "field-descriptions": "a\nb"},
            **HX,
        )
    )
    assert "at most 15, 16 given" in body


def test_save_makes_a_revision_and_shows_it(client, shop, marketer):
    good = shop["good"]
    client.force_login(marketer)
    url = reverse("copygen:draft-edit", args=[good.pk])
    response = client.post(url, email_fields(subject="The Blue Mug is back"), **HX)
    body = html(response)
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="draft-main"')
    assert 'id="messages" class="messages" hx-swap-oob="true"' in body
    assert "Saved revision 2; it passes every check." in body
    assert "<strong>Revision 2</strong>" in body
    good.refresh_from_db()
    assert good.revision == 2 and good.last_edited_by == marketer
    # Without htmx: redirect to the page, which says so.
    response = client.post(url, email_fields(subject="The Blue Mug again"), follow=True)
    assert response.redirect_chain[-1][0] == good.get_absolute_url()
    assert "Saved revision 3" in html(response)


def test_saving_a_failing_text_warns(client, shop, marketer):
    client.force_login(marketer)
    url = reverse("copygen:draft-edit", args=[shop["good"].pk])
    body = html(client.post(url, email_fields(body=INVENTED_PRICE), **HX))
    assert "but it fails Faithful to product data: it cannot be approved yet." in body


def test_bad_input_is_shown_and_changes_nothing(client, shop, marketer):
    good = shop["good"]
    client.force_login(marketer)
    url = reverse("copygen:draft-edit", args=[good.pk])
    response = client.post(url, email_fields(subject="nul \x00 byte"), **HX)
    body = html(response)
    assert response.status_code == 200  # htmx swaps 200s only
    assert "Subject line contains a NUL character." in body
    good.refresh_from_db()
    assert good.revision == 1 and good.fields == PASSING_FIELDS["email"]


def test_a_locked_draft_is_read_only(client, shop, marketer, approver):
    good = shop["good"]
    svc.draft_approve(draft=good, user=approver)
    client.force_login(marketer)
    body = html(client.get(good.get_absolute_url()))
    assert '<form id="draft-editor"' not in body
    assert "Locked: approved drafts cannot be edited. An approver can reopen it." in body
    response = client.post(
        reverse("copygen:draft-edit", args=[good.pk]), email_fields(subject="Sneaky"), **HX
    )
    assert "Approved drafts are locked; reopen it first." in html(response)
    good.refresh_from_db()
    assert good.revision == 1


def test_approve_and_reopen(client, shop, approver):
    good = shop["good"]
    client.force_login(approver)
    url = reverse("copygen:draft-review", args=[good.pk])
    response = client.post(url, {"action": "approve", "comment": "Ship it"}, **HX)
    body = html(response)
    assert "Approved. The draft is locked until an approver reopens it." in body
    assert "Reopen for editing" in body and "Ship it" in body
    good.refresh_from_db()
    assert good.status == Draft.Status.APPROVED and good.reviewed_by == approver
    reopen = reverse("copygen:draft-reopen", args=[good.pk])
    body = html(client.post(reopen, {"comment": ""}, **HX))
    assert "Say why you reopen it: a comment is required." in body
    assert Draft.objects.get(pk=good.pk).status == Draft.Status.APPROVED
    response = client.post(reopen, {"comment": "Price changes Monday"}, follow=True)
    assert "Reopened" in html(response)
    assert Draft.objects.get(pk=good.pk).status == Draft.Status.PENDING
    assert AuditEvent.objects.filter(action="draft_reopened", object_id=str(good.pk)).exists()


def test_reject_needs_a_comment(client, shop, approver):
    good = shop["good"]
    client.force_login(approver)
    url = reverse("copygen:draft-review", args=[good.pk])
    body = html(client.post(url, {"action": "reject", "comment": " "}, **HX))
    assert "Say why you reject it: a comment is required." in body
    assert Draft.objects.get(pk=good.pk).status == Draft.Status.PENDING
    client.post(url, {"action": "reject", "comment": "Too bland"})
    assert Draft.objects.get(pk=good.pk).status == Draft.Status.REJECTED
    assert "Choose approve or reject." in html(client.post(url, {"action": "delete"}, **HX))


def test_approve_is_disabled_with_the_reason(client, shop, admin_user, settings):
    settings.COPY_FOUR_EYES = True
    client.force_login(admin_user)
    body = html(client.get(shop["bad"].get_absolute_url()))
    assert 'value="approve" class="primary" disabled' in body
    assert "Approve is not available: It fails Faithful to product data; edit it first." in body
    good = shop["good"]
    svc.draft_edit(draft=good, user=admin_user, fields={**PASSING_FIELDS["email"], "cta": "Buy"})
    body = html(client.get(good.get_absolute_url()))
    assert f"Approve is not available: {svc.FOUR_EYES_MESSAGE}" in body
    # The service refuses even when the button is bypassed.
    response = client.post(
        reverse("copygen:draft-review", args=[good.pk]), {"action": "approve"}, **HX
    )
    assert "another approver must approve it" in html(response)
    assert Draft.objects.get(pk=good.pk).status == Draft.Status.PENDING
    settings.COPY_FOUR_EYES = False
    body = html(client.get(good.get_absolute_url()))
    assert "Approve is not available" not in body


def test_a_price_changed_since_drafting_shows_and_blocks(client, shop, approver):
    good = shop["good"]
    product = shop["catalog"].products.get()
    product.price = Decimal("14.00")
    product.save()
    client.force_login(approver)
    body = html(client.get(good.get_absolute_url()))
    assert "Faithful to product data" in body and "disabled" in body
    body = html(
        client.post(reverse("copygen:draft-review", args=[good.pk]), {"action": "approve"}, **HX)
    )
    assert "against the current product data" in body
    assert Draft.objects.get(pk=good.pk).status == Draft.Status.PENDING


def test_history_shows_diffs_authors_and_reviews(client, shop, marketer, approver):
    good = shop["good"]
    svc.draft_edit(
        draft=good,
        user=marketer,
        fields={**PASSING_FIELDS["email"], "subject": "Meet the lovely Blue Mug"},
    )
    svc.draft_reject(draft=good, user=approver, comment="Say when it ships")
    client.force_login(approver)
    body = html(client.get(good.get_absolute_url()))
    history = body.split('id="draft-history"', 1)[1]
    assert "edited by <strong>mary</strong>" in history
    assert "Meet the <ins>lovely </ins>Blue Mug" in history
    assert "generated from templates" in history
    assert "by <strong>avery</strong> · revision 2" in history
    assert "Say when it ships" in history
    assert history.index("Rejected") < history.index("Revision 2") < history.index("Revision 1")


# --------------------------------------------------------------------------- escaping


def test_html_in_a_product_title_is_escaped_everywhere(client, marketer):
    catalog = CatalogFactory(currency="GBP")
    product = mug(catalog, title=f"{SCRIPT} Mug")
    customer = CustomerFactory()
    draft = draft_make(
        products=[product],
        customer=customer,
        fields={**PASSING_FIELDS["email"], "subject": f"Meet the {SCRIPT} Mug"},
    )
    assert ",markup," in draft.failing  # the check says so, and the pages show it escaped
    svc.draft_edit(
        draft=draft,
        user=marketer,
        fields={**PASSING_FIELDS["email"], "subject": f"Meet {SCRIPT} Mug"},
    )
    client.force_login(marketer)
    for url in (list_url(), draft.get_absolute_url(), customer.get_absolute_url()):
        body = html(client.get(url))
        assert SCRIPT not in body, url
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body, url


def test_html_in_an_edit_is_escaped_everywhere(client, shop, marketer):
    good = shop["good"]
    evil = '<img src=x onerror="alert(1)">'
    svc.draft_edit(
        draft=good,
        user=marketer,
        fields={**PASSING_FIELDS["email"], "subject": f"Hi {evil}", "cta": "</textarea><b>x"},
    )
    client.force_login(marketer)
    escaped = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
    for url in (list_url(), good.get_absolute_url(), shop["anna"].get_absolute_url()):
        body = html(client.get(url))
        assert evil not in body, url
        assert escaped in body, url
    body = html(client.get(good.get_absolute_url()))
    assert "</textarea><b>" not in body
    assert f"<ins>Hi {escaped}</ins>" in body.split('id="draft-history"', 1)[1]
    check = html(
        client.post(
            reverse("copygen:draft-check", args=[good.pk]),
            email_fields(subject=f"Hi {evil}"),
            **HX,
        )
    )
    assert evil not in check and "Plain text only" in check


# --------------------------------------------------------------------------- customer page


def test_customer_page_lists_the_customers_drafts(client, shop, marketer):
    client.force_login(marketer)
    body = html(client.get(shop["anna"].get_absolute_url()))
    section = body.split('id="customer-drafts"', 1)[1]
    assert shop["good"].get_absolute_url() in section
    assert "Meet the Blue Mug" in section and "Pending review" in section
    assert shop["bad"].get_absolute_url() not in section  # ben's draft
    assert "No drafts yet" not in body


def test_customer_page_hides_drafts_without_the_permission(client, shop, no_role_user):
    client.force_login(no_role_user)
    body = html(client.get(shop["anna"].get_absolute_url()))
    assert 'id="customer-drafts"' not in body and "No drafts yet" not in body
    assert shop["good"].get_absolute_url() not in body


def test_customer_without_drafts_keeps_the_placeholder(client, shop, marketer):
    client.force_login(marketer)
    body = html(client.get(CustomerFactory().get_absolute_url()))
    assert "No drafts yet" in body and 'id="customer-drafts"' not in body


def test_a_brief_beyond_the_filter_options_keeps_its_filter(client, shop, marketer, monkeypatch):
    from copygen import selectors

    monkeypatch.setattr(selectors, "FILTER_OPTIONS_MAX", 1)  # only the newest brief listed
    client.force_login(marketer)
    response = client.get(list_url(brief=shop["email"].pk))
    assert "This filter was ignored" not in html(response)
    assert rows(response) == {shop["good"].pk, shop["bad"].pk}
    assert f'<option value="{shop["email"].pk}" selected>Spring email</option>' in html(response)
