"""The campaign results import, the Django side (PostgreSQL): who each row is (by draft, customer
id or email, only among the export's recipients), every rejection with its row and column,
what is stored (one result per recipient, replaced by a newer report), the click and purchase
events it records (idempotent, replaced when changed), what a bad file leaves (nothing), the
permissions, the audit entry and the queued profile refresh.

Exports are made by the real export job (generic CSV), so the recipients are the rows of a
real file; the results jobs run in this process, as the worker would run them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from copygen.models import CampaignResult, ControlMember, Draft, Export, ExportRecipient
from copygen.services import exports, results_import
from copygen.services.results_import import CONTROL_REASON, result_event_id
from marketing.analytics.importing import Cleaner, CleanOptions
from marketing.models import AuditEvent, Customer, Event, Job, Upload
from marketing.services.customers import CUSTOMER_ERASED, customer_erase
from tests.copygen_factories import BriefFactory, draft_make, mug
from tests.factories import CatalogFactory, CustomerFactory, ProductFactory
from tests.test_exports_service import grant_export_roles

pytestmark = pytest.mark.django_db

APPROVED = Draft.Status.APPROVED
SENT_AT = "2024-05-01 09:00:00"


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    grant_export_roles()


def person(n: int, **kwargs) -> Customer:
    defaults = {
        "external_id": f"C-{n}",
        "email": f"Person{n}@Example.test",
        "name": f"Pat Person{n}",
        "consent_email": True,
    }
    return CustomerFactory(**{**defaults, **kwargs})


@pytest.fixture
def sent(marketer) -> Export:
    """A succeeded export of a per-customer email brief: C-1..C-4 got variant 1 (C-4 in
    German), C-5 variant 2; every draft is about the mug."""
    catalog = CatalogFactory(currency="GBP", name="Shop", timezone="Europe/Berlin")
    mug(catalog, sku="MUG-1")
    ProductFactory(catalog=catalog, sku="PAN-2", title="Pan")
    brief = BriefFactory(catalog=catalog, channel="email", name="Spring", locales=["en", "de"])
    for n in range(1, 6):
        customer = person(n, language="de" if n == 4 else "en")
        variant = 2 if n == 5 else 1
        draft_make(
            brief=brief,
            customer=customer,
            status=APPROVED,
            variant=variant,
            locale="de" if n == 4 else "en",
        )
        if variant == 2:
            draft_make(brief=brief, customer=customer, variant=1)  # pending: not exported
    return export_of(brief, marketer)


def export_of(brief, user, **kwargs) -> Export:
    export = exports.export_create(user=user, brief=brief, preset="generic_csv", **kwargs)
    exports.export_run(job_id=export.job_id, worker="inline")
    export.refresh_from_db()
    assert export.status == Job.Status.SUCCEEDED, export.job.error
    return export


def lines(header: str, *rows: str) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def upload(export: Export, user, content: bytes, name: str = "results.csv") -> Upload:
    return results_import.results_upload_create(
        export=export, file=SimpleUploadedFile(name, content), user=user
    )


def run(export: Export, user, content: bytes, mapping: dict | None = None, **kw) -> Job:
    """Upload, start with the guessed (or given) mapping, run the job inline."""
    from marketing.analytics.importing import auto_map

    up = upload(export, user, content, **kw)
    guessed = auto_map(up.detected["columns"], "campaign_results")
    job = results_import.results_import_start(
        export=export, upload=up, mapping={**guessed, **(mapping or {})}, user=user
    )
    results_import.results_import_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    return job


def ok(job: Job) -> Job:
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job


def report(job: Job) -> list[tuple[int, str, str, str]]:
    with job.report_file.open("rb") as fh:
        rows = list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))
    return [(int(r["row"]), r["column"], r["value"], r["reason"]) for r in rows]


def results() -> dict[str, CampaignResult]:
    return {
        r.customer.external_id: r for r in CampaignResult.objects.select_related("customer").all()
    }


def draft_of(export: Export, external_id: str) -> Draft:
    return ExportRecipient.objects.get(export=export, customer__external_id=external_id).draft


# ----------------------------------------------------------------------------- who


def test_rows_are_matched_by_draft_customer_id_or_email(sent, marketer):
    d1, d5 = draft_of(sent, "C-1"), draft_of(sent, "C-5")
    job = ok(
        run(
            sent,
            marketer,
            lines(
                "tailor_draft_id,customer_id,Email Address,Opens,Clicks,Revenue",
                f"{d1.pk},,,2,0,",
                ",C-2,,1,1,",
                ",, PERSON3@example.TEST ,0,0,",
                f"{d5.pk},C-5,person5@example.test,yes,yes,19.90",
            ),
        )
    )

    assert job.result["matched_by"] == {"draft": 2, "customer": 1, "email": 1}
    assert job.result["results"] == {"recipients": 4, "created": 4, "updated": 0}
    assert job.result["rejected"] == 0 and report(job) == []
    stored = results()
    assert sorted(stored) == ["C-1", "C-2", "C-3", "C-5"]  # C-4 is not in the file
    one, five = stored["C-1"], stored["C-5"]
    assert (one.opened, one.clicked, one.converted, one.revenue) == (True, False, False, None)
    assert (one.sent, one.delivered) == (True, None)  # blank sent: yes; delivered: unknown
    assert (five.variant, five.draft_id, five.locale, five.channel) == (2, d5.pk, "en", "email")
    assert (five.converted, five.revenue) == (True, Decimal("19.90"))  # revenue implies it
    assert {r.brief_id for r in stored.values()} == {sent.brief_id}
    assert {r.upload_id for r in stored.values()} == {Upload.objects.get().pk}


def test_variant_and_locale_come_from_what_was_sent(sent, marketer):
    ok(run(sent, marketer, lines("customer_id,opened", "C-4,yes")))
    four = results()["C-4"]
    assert (four.locale, four.variant) == ("de", 1)
    assert four.draft_id == draft_of(sent, "C-4").pk


def test_every_rejection_names_row_column_and_reason(sent, marketer, admin_user):
    other_export = sent.pk + 1000
    gone = person(8)  # erased after the export: the report must not name them
    customer_erase(customer=gone, user=admin_user)
    d2 = draft_of(sent, "C-2")
    job = ok(
        run(
            sent,
            marketer,
            lines(
                "customer_id,email,tailor_draft_id,tailor_variant,export_id,brief_id,sku,opened",
                "C-77,,,,,,,yes",  # row 2: nobody we sent to
                "C-8,,,,,,,yes",  # row 3: erased (after the export)
                ",person1@example.test,,2,,,,yes",  # row 4: wrong variant
                f"C-2,,,,{other_export},,,yes",  # row 5: another export
                f"C-2,,,,,{sent.brief_id + 1},,",  # row 6: another brief
                "C-3,,,,,,NOPE-1,yes",  # row 7: unknown SKU
                f"C-3,,{d2.pk},,,,,yes",  # row 8: the draft is C-2's
                "C-1,,,,,,,maybe",  # row 9: not a flag (the cleaner's check)
                ",,,,,,,yes",  # row 10: nobody named
            ),
        )
    )

    assert report(job) == [
        (2, "customer_id", "C-77", f"not a recipient of export {sent.pk}"),
        (3, "customer_id", "", CUSTOMER_ERASED),
        (4, "tailor_variant", "2", "variant 2 does not match the variant sent (1)"),
        (
            5,
            "export_id",
            str(other_export),
            f"row is for export {other_export}, not export {sent.pk}",
        ),
        (
            6,
            "brief_id",
            str(sent.brief_id + 1),
            f"row is for brief {sent.brief_id + 1}, not brief {sent.brief_id}",
        ),
        (7, "sku", "NOPE-1", "unknown SKU in catalog 'Shop'"),
        (8, "customer_id", "C-3", "not the recipient that tailor_draft_id names"),
        (9, "opened", "maybe", "not a yes/no value or count"),
        (10, "tailor_draft_id", "", "no draft id, customer id or email"),
    ]
    assert job.result["rejected"] == 9 and job.result["rows_read"] == 9
    assert not CampaignResult.objects.exists()
    assert "@" not in str(job.result)  # counts only


def test_control_group_members_are_rejected_by_id_email_or_draft(marketer):
    catalog = CatalogFactory(currency="GBP")
    mug(catalog)
    brief = BriefFactory(catalog=catalog, channel="email")
    drafts = {n: draft_make(brief=brief, customer=person(n), status=APPROVED) for n in range(30)}
    export = export_of(brief, marketer, control_share=30)
    held = ControlMember.objects.filter(brief=brief).select_related("customer")
    assert held.count() >= 2
    first, second = held[0].customer, held[1].customer
    held_draft = next(d for d in drafts.values() if d.customer_id == second.pk)

    job = ok(
        run(
            export,
            marketer,
            lines(
                "customer_id,email,draft_id,clicked",
                f"{first.external_id},,,yes",
                f",{first.email},,yes",
                f",,{held_draft.pk},yes",
            ),
        )
    )

    assert report(job) == [
        (2, "customer_id", first.external_id, CONTROL_REASON),
        (3, "email", first.email.lower(), CONTROL_REASON),
        (4, "draft_id", str(held_draft.pk), CONTROL_REASON),
    ]
    assert not CampaignResult.objects.exists() and not Event.objects.exists()


def test_a_segment_draft_needs_a_customer_id_or_email(marketer):
    from copygen.models import Brief
    from marketing.models import SegmentMembership
    from tests.copygen_factories import SegmentFactory

    catalog = CatalogFactory(currency="GBP")
    mug(catalog)
    segment = SegmentFactory(catalog=catalog)
    brief = BriefFactory(catalog=catalog, segment=segment, audience=Brief.Audience.SEGMENT)
    draft = draft_make(brief=brief, segment=segment, status=APPROVED)
    for n in (1, 2):
        SegmentMembership.objects.create(segment=segment, customer=person(n))
    export = export_of(brief, marketer)

    job = ok(
        run(
            export,
            marketer,
            lines("draft_id,customer_id,opened", f"{draft.pk},,yes", f"{draft.pk},C-2,yes"),
        )
    )

    assert report(job) == [
        (
            2,
            "draft_id",
            str(draft.pk),
            f"2 recipients of export {export.pk} share this draft: map a customer id or "
            "email column to tell them apart",
        )
    ]
    assert list(results()) == ["C-2"] and results()["C-2"].draft_id == draft.pk


def test_rows_of_one_recipient_are_combined(sent, marketer):
    job = ok(
        run(
            sent,
            marketer,
            lines(
                "customer_id,email,opened,clicked,converted,revenue,opened_at,sent_at",
                f"C-1,,yes,no,yes,10.00,2024-05-02 10:00,{SENT_AT}",
                ",person1@example.test,yes,yes,yes,5.50,2024-05-01 12:00,",
                f"C-1,,yes,no,yes,10.00,2024-05-02 10:00,{SENT_AT}",  # an exact repeat
            ),
        )
    )

    assert job.result["merged_rows"] == 1
    assert job.result["cleaning"] == {"duplicate_lines": 1}
    one = results()["C-1"]
    assert (one.opened, one.clicked, one.converted, one.revenue) == (
        True,
        True,
        True,
        Decimal("15.50"),
    )
    # Naive times are the catalog's (Berlin, UTC+2 in May); the earliest open is kept.
    assert one.opened_at == dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
    assert one.sent_at == dt.datetime(2024, 5, 1, 7, 0, tzinfo=dt.UTC)


# ----------------------------------------------------------------------------- events


def test_clicks_and_conversions_become_events_of_the_customer(sent, marketer):
    catalog = sent.catalog
    mug_pk = catalog.products.get(sku="MUG-1").pk
    pan_pk = catalog.products.get(sku="PAN-2").pk
    job = ok(
        run(
            sent,
            marketer,
            lines(
                "customer_id,clicked,converted,revenue,sku,sent_at,clicked_at,converted_at",
                f"C-1,yes,yes,24.00,PAN-2,{SENT_AT},2024-05-01 10:00,2024-05-03 18:30",
                f"C-2,yes,no,,,{SENT_AT},,",
                "C-3,no,yes,,,,,",
            ),
        )
    )

    def event(external_id: str, kind: str) -> Event:
        customer = Customer.objects.get(external_id=external_id)
        pk = result_event_id(
            catalog_id=catalog.pk, export_id=sent.pk, customer_id=customer.pk, kind=kind
        )
        return Event.objects.get(pk=pk, customer=customer, kind=kind)

    assert Event.objects.count() == 4
    click, purchase = event("C-1", "click"), event("C-1", "purchase")
    assert (click.product_id, purchase.product_id) == (pan_pk, pan_pk)  # the row's SKU
    assert click.occurred_at == dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
    assert (purchase.value, purchase.quantity) == (Decimal("24.00"), 1)
    assert purchase.occurred_at == dt.datetime(2024, 5, 3, 16, 30, tzinfo=dt.UTC)
    assert {e.source for e in Event.objects.all()} == {f"campaign:{sent.pk}"}
    two = event("C-2", "click")  # no SKU: the draft's first product, at the send time
    assert two.product_id == mug_pk and two.occurred_at == dt.datetime(2024, 5, 1, 7, tzinfo=dt.UTC)
    three = event("C-3", "purchase")  # no time at all: when the export finished
    assert (three.occurred_at, three.value) == (sent.finished_at, None)
    assert job.result["events"] == {
        "recorded": 4,
        "inserted": 4,
        "replaced": 0,
        "unchanged": 0,
        "removed": 0,
        "without_product": 0,
    }


def test_event_ids_are_the_importers_ids_for_the_explicit_event_id(sent):
    key = f"campaign:{sent.pk}:123:click"
    frame = pd.DataFrame(
        {
            "event_id": [key],
            "kind": ["click"],
            "occurred_at": ["2024-05-01T10:00:00Z"],
            "customer": ["C-1"],
            "sku": ["MUG-1"],
            "_row": np.array([2], dtype=np.int64),
        },
        dtype=object,
    )
    frame["_row"] = frame["_row"].astype(np.int64)
    mapping = {c: c for c in ("event_id", "kind", "occurred_at", "customer", "sku")}
    cleaned = Cleaner("events", mapping, CleanOptions(catalog_id=sent.catalog_id)).clean(frame)
    assert int(cleaned.events["id"].iloc[0]) == result_event_id(
        catalog_id=sent.catalog_id, export_id=sent.pk, customer_id=123, kind="click"
    )


def test_no_product_no_event_and_it_is_counted(sent, marketer):
    draft_of(sent, "C-1").delete()  # the recipient row keeps variant and locale
    job = ok(run(sent, marketer, lines("customer_id,clicked", "C-1,yes")))
    assert job.result["events"]["without_product"] == 1 and not Event.objects.exists()
    one = results()["C-1"]
    assert (one.clicked, one.draft_id, one.variant) == (True, None, 1)


def test_a_reimport_stores_nothing_twice_and_a_newer_report_replaces_the_older(sent, marketer):
    first = lines(
        "customer_id,opened,clicked,converted,revenue",
        "C-1,yes,yes,yes,20.00",
        "C-2,yes,yes,no,",
        "C-3,no,no,no,",
    )
    ok(run(sent, marketer, first))
    events = set(Event.objects.values_list("pk", "kind", "value"))
    again = ok(run(sent, marketer, first, name="results-again.csv"))
    assert set(Event.objects.values_list("pk", "kind", "value")) == events
    assert again.result["results"] == {"recipients": 3, "created": 0, "updated": 3}
    assert again.result["events"]["recorded"] == 0 and again.result["events"]["unchanged"] == 3
    assert CampaignResult.objects.count() == 3

    newer = ok(
        run(
            sent,
            marketer,
            lines(
                "customer_id,opened,clicked,converted,revenue",
                "C-1,yes,yes,yes,35.00",
                "C-2,yes,no,no,",
            ),
            name="results-final.csv",
        )
    )

    assert newer.result["events"] == {
        "recorded": 1,
        "inserted": 0,
        "replaced": 1,  # C-1's purchase has a new value
        "unchanged": 1,  # C-1's click
        "removed": 1,  # C-2 did not click after all
        "without_product": 0,
    }
    stored = results()
    assert stored["C-1"].revenue == Decimal("35.00") and not stored["C-2"].clicked
    assert stored["C-3"].upload.original_name == "results-again.csv"  # not in the newer file
    assert sorted(Event.objects.values_list("kind", "value")) == [
        ("click", None),
        ("purchase", Decimal("35.00")),
    ]


def test_a_profile_refresh_is_queued_and_the_import_audited_without_personal_data(sent, marketer):
    job = ok(run(sent, marketer, lines("email,clicked", "person1@example.test,yes")))
    refresh = Job.objects.get(kind=Job.Kind.PROFILE_REFRESH)
    assert refresh.catalog_id == sent.catalog_id and refresh.params["triggered_by_import"]
    entry = AuditEvent.objects.get(action=AuditEvent.Action.RESULTS_IMPORTED)
    assert entry.object_type == "copygen.export" and entry.object_id == str(sent.pk)
    assert entry.actor == marketer
    assert entry.details == {
        "job_id": job.pk,
        "upload_id": job.params["upload_id"],
        "brief_id": sent.brief_id,
        "rows_read": 1,
        "rejected": 0,
        "results_created": 1,
        "results_updated": 0,
        "events_recorded": 1,
    }


def test_without_events_no_refresh_is_queued(sent, marketer):
    ok(run(sent, marketer, lines("email,opened", "person1@example.test,yes")))
    assert not Job.objects.filter(kind=Job.Kind.PROFILE_REFRESH).exists()


def test_consent_and_approval_changed_since_the_export_do_not_matter(sent, marketer):
    Customer.objects.filter(external_id="C-1").update(consent_email=False)
    Draft.objects.filter(pk=draft_of(sent, "C-1").pk).update(status=Draft.Status.PENDING)
    ok(run(sent, marketer, lines("customer_id,clicked", "C-1,yes")))
    assert results()["C-1"].clicked and Event.objects.count() == 1


# ----------------------------------------------------------------------------- bad input


def test_a_bad_file_leaves_everything_as_it_was(sent, marketer, settings):
    ok(run(sent, marketer, lines("customer_id,clicked,revenue", "C-1,yes,", "C-2,no,")))
    before = (
        sorted(CampaignResult.objects.values_list("customer_id", "clicked", "updated_at")),
        sorted(Event.objects.values_list("pk", "value")),
    )
    settings.IMPORT_CHUNK_ROWS = 2
    # The first chunk is fine; the third row's date shows the file mixes day/month orders,
    # which stops the whole file after C-1 and C-2 were read.
    job = run(
        sent,
        marketer,
        lines(
            "customer_id,clicked,converted,clicked_at",
            "C-1,no,yes,01/02/2024",
            "C-2,yes,yes,03/04/2024",
            "C-3,yes,no,13/02/2024",
            "C-4,yes,no,02/13/2024",
        ),
        name="mixed.csv",
    )

    assert job.status == Job.Status.FAILED
    assert "mixed.csv" in job.error and "day/month" in job.error
    after = (
        sorted(CampaignResult.objects.values_list("customer_id", "clicked", "updated_at")),
        sorted(Event.objects.values_list("pk", "value")),
    )
    assert after == before


def test_an_error_while_writing_rolls_everything_back(sent, marketer, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(results_import, "_write_events", broken)
    job = run(sent, marketer, lines("customer_id,clicked", "C-1,yes"))
    assert job.status == Job.Status.FAILED
    assert job.error == "Unexpected error (RuntimeError); nothing was changed."
    assert not CampaignResult.objects.exists() and not Event.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.RESULTS_IMPORTED).exists()


def test_the_file_must_name_a_recipient_column(sent, marketer):
    up = upload(sent, marketer, lines("Opens,Clicks", "1,0"))
    with pytest.raises(ValidationError, match="Draft ID, Customer ID or Email"):
        results_import.results_import_start(
            export=sent, upload=up, mapping={"opened": "Opens"}, user=marketer
        )
    with pytest.raises(ValidationError, match="not in the file: Nope"):
        results_import.results_import_start(
            export=sent, upload=up, mapping={"email": "Nope"}, user=marketer
        )
    assert not Job.objects.filter(kind=Job.Kind.RESULTS_IMPORT).exists()


def test_a_job_whose_mapping_lost_its_identity_fails_naming_the_columns(sent, marketer):
    up = upload(sent, marketer, lines("email,opened", "person1@example.test,yes"))
    job = results_import.results_import_start(
        export=sent, upload=up, mapping={"email": "email"}, user=marketer
    )
    Job.objects.filter(pk=job.pk).update(params={**job.params, "mapping": {"opened": "opened"}})
    results_import.results_import_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "required column Draft ID, Customer ID or Email is missing" in job.error


def test_only_a_succeeded_export_takes_results(sent, marketer):
    Job.objects.filter(pk=sent.job_id).update(status=Job.Status.FAILED)
    sent.refresh_from_db()
    with pytest.raises(ValidationError, match="has not succeeded"):
        upload(sent, marketer, lines("email,opened", "a@example.test,yes"))


def test_an_upload_of_another_catalog_is_refused(sent, marketer):
    other = CatalogFactory()
    up = Upload.objects.create(
        catalog=other, kind=Upload.Kind.CAMPAIGN_RESULTS, original_name="x.csv", size=1
    )
    with pytest.raises(ValidationError, match="not a results file of the export's catalog"):
        results_import.results_import_start(
            export=sent, upload=up, mapping={"email": "email"}, user=marketer
        )


def test_a_double_start_imports_once(sent, marketer):
    up = upload(sent, marketer, lines("email,opened", "person1@example.test,yes"))
    mapping = {"email": "email", "opened": "opened"}
    first = results_import.results_import_start(
        export=sent, upload=up, mapping=mapping, user=marketer
    )
    second = results_import.results_import_start(
        export=sent, upload=up, mapping=mapping, user=marketer
    )
    assert first.pk == second.pk
    assert first.params == {
        "upload_id": up.pk,
        "export_id": sent.pk,
        "brief_id": sent.brief_id,
        "mapping": {"email": "email", "opened": "opened"},
        "file": "results.csv",
    }


# ----------------------------------------------------------------------------- permissions


def test_only_users_who_may_import_results_upload_and_start(sent, marketer, approver):
    content = lines("email,opened", "person1@example.test,yes")
    with pytest.raises(PermissionDenied):
        upload(sent, approver, content)
    up = upload(sent, marketer, content)
    with pytest.raises(PermissionDenied):
        results_import.results_import_start(
            export=sent, upload=up, mapping={"email": "email"}, user=approver
        )
    assert not Job.objects.filter(kind=Job.Kind.RESULTS_IMPORT).exists()


# ----------------------------------------------------------------------------- demo file


def test_the_demo_report_imports_without_a_rejected_row(sent, marketer, tmp_path):
    from django.core.management import call_command

    out = tmp_path / "demo.csv"
    call_command("campaign_results_demo", export=sent.pk, seed=3, out=out)
    again = tmp_path / "again.csv"
    call_command("campaign_results_demo", export=sent.pk, seed=3, out=again)
    assert out.read_bytes() == again.read_bytes()  # same export and seed, same bytes

    job = ok(run(sent, marketer, out.read_bytes(), name="demo.csv"))

    assert job.result["rejected"] == 0 and job.result["matched_by"] == {"email": 5}
    assert job.result["results"]["recipients"] == 5
    assert sorted(r.variant for r in CampaignResult.objects.all()) == [1, 1, 1, 1, 2]


def test_erasure_waits_for_a_queued_results_import(sent, marketer, admin_user):
    from marketing.services.customers import CustomerErasureBusy

    up = upload(sent, marketer, lines("Email Address,Opens", "person1@example.test,1"))
    results_import.results_import_start(
        export=sent, upload=up, mapping={"email": "Email Address", "opened": "Opens"}, user=marketer
    )
    with pytest.raises(CustomerErasureBusy):
        customer_erase(user=admin_user, customer=Customer.objects.get(external_id="C-1"))


def test_erasure_removes_results_files_naming_them_and_their_results(
    sent, marketer, admin_user, django_capture_on_commit_callbacks
):
    run(sent, marketer, lines("Email Address,Opens,Clicks", "person1@example.test,1,1"))
    other = run(sent, marketer, lines("customer_id,Opens", "C-2,1"), name="other.csv")
    assert CampaignResult.objects.count() == 2
    named = Upload.objects.get(original_name="results.csv")

    with django_capture_on_commit_callbacks(execute=True):  # the exports' erasure hook
        result = customer_erase(user=admin_user, customer=Customer.objects.get(external_id="C-1"))

    assert result.uploads_removed == 1
    named.refresh_from_db()
    assert not named.file and named.detected["file_removed"] == "customer erasure"
    assert Upload.objects.get(pk=other.params["upload_id"]).file  # names someone else only
    assert list(CampaignResult.objects.values_list("customer__external_id", flat=True)) == ["C-2"]
