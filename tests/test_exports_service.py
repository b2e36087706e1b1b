"""Exports, the Django side: what goes into the file (approved drafts only, consenting and not
erased customers only, one row per customer), the control group (drawn, recorded, left out,
reused by later exports), the variant split, warnings, permissions, idempotent re-runs,
cancel, audit, and what an erasure does to export files.

The jobs run in this process (``export_run``), as the worker would run them. Each preset's
columns are unit-tested in tests/unit; here a few cells are read to check the wiring.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import io
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from copygen.exporting import PRESETS, sha256_hex
from copygen.models import Brief, ControlMember, Draft, Export, ExportRecipient, export_storage
from copygen.services import exports
from copygen.services.briefs import brief_delete
from marketing.models import AuditEvent, Job, Segment, SegmentMembership
from marketing.services.customers import customer_erase
from tests.copygen_factories import PASSING_FIELDS, BriefFactory, draft_make, mug
from tests.factories import CatalogFactory, CustomerFactory
from tests.roles import role_group

pytestmark = pytest.mark.django_db

APPROVED = Draft.Status.APPROVED


def grant_export_roles() -> None:
    """The export permissions of migration copygen 0003 on the role groups (a flush by a
    transactional test rebuilds the groups from tests/roles.py, which may not list it)."""
    roles = importlib.import_module("copygen.migrations.0003_exports").ROLE_PERMISSIONS
    for role, perms in roles.items():
        group = role_group(role)
        for app_label, codename in perms:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


@pytest.fixture(autouse=True)
def _export_settings(settings, tmp_path, monkeypatch):
    settings.DATA_DIR = tmp_path / "data"
    grant_export_roles()
    # A fixed seed: the control group and the variant split come out the same every run.
    monkeypatch.setattr(exports.secrets, "randbits", lambda bits: 20_241_128)


@pytest.fixture
def brief(db) -> Brief:
    catalog = CatalogFactory(currency="GBP")
    mug(catalog, sku="MUG-1", url="https://shop.example/mug")
    return BriefFactory(catalog=catalog, channel="email", name="Spring email")


def person(n: int, **kwargs):
    defaults = {
        "external_id": f"C-{n}",
        "email": f"person{n}@example.test",
        "name": f"Pat Person{n}",
        "country": "Germany",
        "language": "en",
        "consent_email": True,
    }
    return CustomerFactory(**{**defaults, **kwargs})


def approved(brief, customer, **kwargs) -> Draft:
    return draft_make(brief=brief, customer=customer, status=APPROVED, **kwargs)


def start(brief, user, **kwargs) -> Export:
    return exports.export_create(user=user, brief=brief, **{"preset": "generic_csv", **kwargs})


def run(export: Export) -> Export:
    exports.export_run(job_id=export.job_id, worker="inline")
    export.refresh_from_db()
    export.job.refresh_from_db()
    return export


def export_of(brief, user, **kwargs) -> Export:
    export = run(start(brief, user, **kwargs))
    assert export.job.status == Job.Status.SUCCEEDED, export.job.error
    return export


def file_bytes(export: Export) -> bytes:
    return Path(export_storage().path(export.file.name)).read_bytes()


def csv_rows(export: Export) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(file_bytes(export).decode("utf-8-sig"))))


def leftovers() -> list[str]:
    """Files in DATA_DIR/exports."""
    directory = Path(export_storage().location)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ----------------------------------------------------------------------------- who


def test_only_approved_drafts_of_consenting_customers_are_exported(brief, marketer):
    yes = approved(brief, person(1))
    no_consent = approved(brief, person(2, consent_email=False))
    draft_make(brief=brief, customer=person(3))  # pending
    draft_make(brief=brief, customer=person(4), status=Draft.Status.REJECTED)

    export = export_of(brief, marketer)

    rows = csv_rows(export)
    assert [r["customer_id"] for r in rows] == ["C-1"]
    assert rows[0]["draft_id"] == str(yes.pk) and rows[0]["subject"] == "Meet the Blue Mug"
    assert export.rows_written == 1
    assert export.skipped == {"no_consent": 1}
    assert export.rows_skipped == 1
    assert list(ExportRecipient.objects.values_list("customer__external_id", "draft_id")) == [
        ("C-1", yes.pk)
    ]
    # The recipient rows mark the drafts exported.
    assert list(yes.export_recipients.values_list("export_id", flat=True)) == [export.pk]
    assert not no_consent.export_recipients.exists()
    assert export.job.progress_done == export.job.progress_total == 2


def test_erased_customers_and_customers_who_left_the_segment_are_not_exported(brief, marketer):
    approved(brief, person(1))
    approved(brief, person(2, erased_at=timezone.now()))
    gone = approved(brief, person(3))
    SegmentMembership.objects.filter(customer_id=gone.customer_id).delete()

    export = export_of(brief, marketer)

    assert [r["customer_id"] for r in csv_rows(export)] == ["C-1"]
    assert export.skipped == {"not_in_segment": 1}


@pytest.mark.parametrize(
    ("channel", "preset", "consent", "extra"),
    [
        ("sms", "klaviyo", "consent_sms", {"attributes": {"Mobile Phone": "01511 2345678"}}),
        ("push", "braze_csv", "consent_push", {}),
        ("google_ads", "generic_csv", "consent_ads", {}),
        ("meta_ads", "generic_jsonl", "consent_ads", {}),
    ],
)
def test_each_channel_needs_its_own_consent(marketer, channel, preset, consent, extra):
    catalog = CatalogFactory(currency="GBP")
    brief = BriefFactory(catalog=catalog, channel=channel)
    mug(catalog)
    approved(brief, person(1, consent_email=True, **extra))
    approved(brief, person(2, **{consent: True}, **extra))

    export = export_of(brief, marketer, preset=preset)

    assert export.rows_written == 1
    assert export.skipped == {"no_consent": 1}
    assert ExportRecipient.objects.get().customer.external_id == "C-2"
    if preset == "klaviyo":  # the phone comes from the imported attribute, in E.164
        assert csv_rows(export)[0]["Phone Number"] == "+4915112345678"


def test_product_text_needs_no_consent(marketer):
    catalog = CatalogFactory(currency="GBP")
    brief = BriefFactory(catalog=catalog, channel="product_text")
    mug(catalog, sku="MUG-1")
    approved(brief, person(1, consent_email=False))

    export = export_of(brief, marketer, preset="generic_jsonl")

    line = json.loads(file_bytes(export).decode())
    assert line["customer_id"] == "C-1" and line["short"].startswith("A sturdy mug")
    assert line["product_skus"] == ["MUG-1"] and line["product_titles"] == ["Blue Mug"]


def test_audience_lists_need_the_ads_consent_and_hold_one_row_per_customer(brief, marketer):
    only_email = person(1)
    both = person(2, consent_ads=True, name="Pat O'Neil", attributes={"Zip": "10115"})
    for customer in (only_email, both):
        approved(brief, customer)
        approved(brief, customer, variant=2)
        approved(brief, customer, locale="de")

    export = export_of(brief, marketer, preset="google_customer_match")

    rows = csv_rows(export)
    assert len(rows) == 1  # one row per customer, not per draft
    assert rows[0]["Email"] == sha256_hex("person2@example.test")
    assert rows[0]["Country"] == "DE" and rows[0]["Zip"] == "10115"
    assert export.skipped == {"no_consent": 1}


def test_a_segment_brief_writes_its_copy_for_each_consenting_member(marketer):
    catalog = CatalogFactory(currency="GBP")
    segment = Segment.objects.create(catalog=catalog, name="Loyal", kind=Segment.Kind.RULE)
    brief = BriefFactory(catalog=catalog, segment=segment, audience=Brief.Audience.SEGMENT)
    mug(catalog)
    draft = draft_make(brief=brief, segment=segment, status=APPROVED)
    draft_make(brief=brief, segment=segment, variant=2)  # pending: never exported
    members = [person(1), person(2), person(3, consent_email=False)]
    for m in members:
        SegmentMembership.objects.create(segment=segment, customer=m)

    export = export_of(brief, marketer, preset="mailchimp")

    rows = csv_rows(export)
    assert [r["Email Address"] for r in rows] == ["person1@example.test", "person2@example.test"]
    assert all("Loyal" in r["Tags"] for r in rows)
    assert set(ExportRecipient.objects.values_list("draft_id", flat=True)) == {draft.pk}
    assert export.skipped == {"no_consent": 1}
    assert export.summary["audience"] == 3


# ----------------------------------------------------------------------------- which copy


def test_one_row_per_customer_in_their_language_with_the_best_approved_variant(marketer):
    catalog = CatalogFactory(currency="GBP")
    brief = BriefFactory(catalog=catalog, locales=["en", "de"])
    mug(catalog)
    german = person(1, language="de")
    french = person(2, language="fr")
    picky = person(3, language="en")
    approved(brief, german, locale="en", variant=1)
    de2 = approved(brief, german, locale="de", variant=2)
    approved(brief, german, locale="de", variant=3)
    en1 = approved(brief, french, locale="en", variant=1)
    approved(brief, french, locale="de", variant=1)
    draft_make(brief=brief, customer=picky, locale="en", variant=1)  # pending
    en2 = approved(brief, picky, locale="en", variant=2)

    export = export_of(brief, marketer)

    got = {r["customer_id"]: (r["draft_id"], r["locale"], r["variant"]) for r in csv_rows(export)}
    assert got == {
        "C-1": (str(de2.pk), "de", "2"),  # their language; its best approved variant
        "C-2": (str(en1.pk), "en", "1"),  # not written in French: the brief's first language
        "C-3": (str(en2.pk), "en", "2"),  # variant 1 is not approved
    }
    assert export.summary["locales"] == {"de": 1, "en": 2}


def test_a_split_spreads_the_variants_records_them_and_keeps_them_per_customer(brief, marketer):
    customers = [person(n) for n in range(40)]
    for c in customers:
        for variant in (1, 2):
            approved(brief, c, variant=variant)

    first = export_of(brief, marketer, split_variants=True)
    recipients = list(ExportRecipient.objects.filter(export=first).select_related("draft"))
    assert len(recipients) == 40
    by_variant = {v: sum(r.variant == v for r in recipients) for v in (1, 2)}
    assert by_variant[1] >= 8 and by_variant[2] >= 8
    assert all(r.draft.variant == r.variant for r in recipients)
    assert first.summary["variants"] == {str(k): v for k, v in by_variant.items()}

    second = export_of(brief, marketer, split_variants=True)
    again = dict(ExportRecipient.objects.filter(export=second).values_list("customer", "variant"))
    assert again == {r.customer_id: r.variant for r in recipients}


# ----------------------------------------------------------------------------- control group


def test_the_control_group_is_drawn_recorded_and_left_out(brief, marketer):
    customers = [person(n) for n in range(100)]
    for c in customers:
        approved(brief, c)

    export = export_of(brief, marketer, control_share=20)

    held = set(ControlMember.objects.filter(export=export).values_list("customer_id", flat=True))
    written = {r["customer_id"] for r in csv_rows(export)}
    assert 8 <= len(held) <= 35
    assert export.control_size == len(held) and export.control_share == 20
    assert export.rows_written + len(held) == 100
    held_ids = {c.external_id for c in customers if c.pk in held}
    assert not held_ids & written
    assert not ExportRecipient.objects.filter(export=export, customer_id__in=held).exists()
    assert all(m.brief_id == brief.pk for m in ControlMember.objects.all())


def test_later_exports_of_the_brief_hold_out_the_same_customers(brief, marketer):
    customers = [person(n) for n in range(60)]
    for c in customers:
        approved(brief, c)
    first = export_of(brief, marketer, control_share=30)
    held = set(ControlMember.objects.values_list("customer_id", flat=True))
    newcomer = person(99)
    approved(brief, newcomer)

    second = export_of(brief, marketer, control_share=0)  # asks for none: the group stays
    third = export_of(brief, marketer, preset="mailchimp", control_share=50)

    for later in (second, third):
        assert later.control_share == 30 and later.summary["control_from_export"] == first.pk
        exported = set(
            ExportRecipient.objects.filter(export=later).values_list("customer_id", flat=True)
        )
        assert not exported & held
        assert later.control_size == len(held) + (newcomer.pk not in exported)
    assert set(
        ControlMember.objects.filter(export=first).values_list("customer_id", flat=True)
    ) == (held)
    assert exports.brief_control_group(brief).export_id == first.pk


# ----------------------------------------------------------------------------- warnings, format


def test_rows_that_do_not_fit_are_left_out_with_warnings_never_cut(brief, marketer):
    approved(brief, person(1))
    long = approved(brief, person(2), fields={**PASSING_FIELDS["email"], "subject": "Mug " * 70})
    no_email = approved(brief, person(3, email=""))

    export = export_of(brief, marketer, preset="mailchimp")

    assert [r["Email Address"] for r in csv_rows(export)] == ["person1@example.test"]
    assert export.skipped == {"too_long": 1, "missing_identifier": 1}
    warnings = {(w["draft_id"], w["column"], w["code"]) for w in export.warnings}
    assert (long.pk, "SUBJECT", "too_long") in warnings
    assert (no_email.pk, "", "missing_identifier") in warnings
    reason = next(w["reason"] for w in export.warnings if w["code"] == "too_long")
    assert "280 bytes" in reason and "255" in reason
    assert all(w["skipped"] for w in export.warnings)
    assert export.warning_counts == {"too_long": 1, "missing_identifier": 1}


def test_a_file_over_the_targets_limit_gets_a_warning_and_stays_whole(brief, marketer, monkeypatch):
    for n in range(3):
        approved(brief, person(n))
    small = dataclasses.replace(PRESETS["klaviyo"], max_file_bytes=200)
    monkeypatch.setitem(PRESETS, "klaviyo", small)

    export = export_of(brief, marketer, preset="klaviyo")

    assert export.rows_written == 3 and len(csv_rows(export)) == 3
    assert export.warnings[0]["code"] == exports.FILE_TOO_LARGE
    assert "Klaviyo takes at most 200 bytes per upload" in export.warnings[0]["reason"]
    assert "did not cut it" in export.warnings[0]["reason"]


def test_csv_has_an_optional_bom_and_protects_formulas(brief, marketer):
    approved(brief, person(1, name="=HYPERLINK(1) Smith"))

    plain = export_of(brief, marketer, preset="mailchimp")
    excel = export_of(brief, marketer, preset="mailchimp", excel_bom=True)

    assert not file_bytes(plain).startswith(b"\xef\xbb\xbf")
    assert file_bytes(excel).startswith(b"\xef\xbb\xbf")
    row = csv_rows(excel)[0]
    assert row["First Name"] == "'=HYPERLINK(1)"
    assert file_bytes(plain).count(b"\r\n") == 2  # header + one row, CRLF
    assert excel.file_name.endswith(".csv") and "mailchimp" in excel.file_name


def test_json_presets_ignore_the_bom(brief, marketer):
    approved(brief, person(1))
    export = export_of(brief, marketer, preset="braze_json", excel_bom=True)
    assert export.excel_bom is False
    body = json.loads(file_bytes(export))
    assert body["attributes"][0]["external_id"] == "C-1"


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"preset": "nope"}, "preset"),
        ({"control_share": 51}, "control_share"),
        ({"control_share": -1}, "control_share"),
        ({"control_share": "ten"}, "control_share"),
        ({"preset": "meta_custom_audience", "split_variants": True}, "split_variants"),
    ],
)
def test_bad_requests_are_refused_and_store_nothing(brief, marketer, changes, field):
    approved(brief, person(1))
    with pytest.raises(ValidationError) as caught:
        start(brief, marketer, **changes)
    assert field in caught.value.error_dict
    assert not Export.objects.exists()
    assert not Job.objects.filter(kind=Job.Kind.COPY_EXPORT).exists()


def test_a_preset_that_does_not_take_the_channel_is_refused(marketer):
    catalog = CatalogFactory(currency="GBP")
    brief = BriefFactory(catalog=catalog, channel="sms")
    mug(catalog)
    approved(brief, person(1, consent_sms=True))
    with pytest.raises(ValidationError) as caught:
        start(brief, marketer, preset="mailchimp")
    assert "Mailchimp takes email copy, not 'sms'" in caught.value.error_dict["preset"][0].message


def test_nothing_approved_means_nothing_to_export(brief, marketer):
    draft_make(brief=brief, customer=person(1))
    with pytest.raises(ValidationError, match="approve drafts of this brief first"):
        start(brief, marketer)
    assert not Export.objects.exists()


def test_one_export_of_a_brief_at_a_time(brief, marketer):
    approved(brief, person(1))
    first = start(brief, marketer)
    with pytest.raises(ValidationError, match=f"Export #{first.pk} of this brief is still"):
        start(brief, marketer)
    run(first)
    assert start(brief, marketer).pk != first.pk


def test_exporting_needs_the_permission(brief, approver, no_role_user):
    approved(brief, person(1))
    for user in (approver, no_role_user):
        with pytest.raises(PermissionDenied):
            start(brief, user)
    assert not Export.objects.exists()


def test_downloading_needs_the_permission_and_is_audited(brief, marketer, approver):
    approved(brief, person(1))
    export = export_of(brief, marketer)
    with pytest.raises(PermissionDenied):
        exports.export_file_open(export=export, user=approver)

    found = exports.export_file_open(export=export, user=marketer)
    with found.fileobj:
        assert found.fileobj.read() == file_bytes(export)
    assert found.filename == export.file_name and found.content_type.startswith("text/csv")
    created, downloaded = AuditEvent.objects.filter(object_type="copygen.export").order_by("pk")
    assert created.action == AuditEvent.Action.EXPORT_CREATED
    assert created.details["preset"] == "generic_csv" and created.actor == marketer
    assert downloaded.action == AuditEvent.Action.EXPORT_DOWNLOADED
    assert downloaded.details["rows"] == 1
    assert "person1" not in json.dumps([created.details, downloaded.details])


def test_an_unfinished_export_has_no_download(brief, marketer):
    approved(brief, person(1))
    export = start(brief, marketer)
    with pytest.raises(ValidationError, match="has not finished"):
        exports.export_file_open(export=export, user=marketer)


# ----------------------------------------------------------------------------- job


def test_a_redelivered_job_writes_the_same_file_and_rows_once(brief, marketer):
    for n in range(30):
        approved(brief, person(n))
    export = export_of(brief, marketer, control_share=20)
    before = file_bytes(export)
    recipients = set(ExportRecipient.objects.values_list("customer_id", "draft_id"))
    control = set(ControlMember.objects.values_list("customer_id", flat=True))
    # As if the worker died after the commit, before the broker got the ack: run it again.
    Job.objects.filter(pk=export.job_id).update(
        status=Job.Status.RUNNING, heartbeat_at=None, result={}
    )

    again = run(export)

    assert again.job.status == Job.Status.SUCCEEDED
    assert file_bytes(again) == before
    assert set(ExportRecipient.objects.values_list("customer_id", "draft_id")) == recipients
    assert set(ControlMember.objects.values_list("customer_id", flat=True)) == control
    assert leftovers() == [export.file.name]


def test_a_finished_job_returns_at_once(brief, marketer):
    approved(brief, person(1))
    export = export_of(brief, marketer)
    stamp = Path(export_storage().path(export.file.name)).stat().st_mtime_ns
    run(export)
    assert Path(export_storage().path(export.file.name)).stat().st_mtime_ns == stamp


def test_cancel_keeps_nothing(brief, marketer, monkeypatch):
    for n in range(5):
        approved(brief, person(n))
    export = start(brief, marketer)
    claim = exports.job_claim

    def claim_then_cancel(**kwargs):
        job = claim(**kwargs)
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        return job

    monkeypatch.setattr(exports, "job_claim", claim_then_cancel)
    export = run(export)

    assert export.job.status == Job.Status.CANCELLED
    assert not export.file and export.rows_written == 0
    assert not ExportRecipient.objects.exists() and not ControlMember.objects.exists()
    assert not Draft.objects.filter(export_recipients__isnull=False).exists()
    assert leftovers() == []


def test_an_unexpected_error_fails_the_job_and_leaves_no_file(brief, marketer, monkeypatch):
    approved(brief, person(1))
    export = start(brief, marketer)

    def boom(*args, **kwargs):
        raise RuntimeError("customer person1@example.test broke it")

    monkeypatch.setattr(exports, "_recipients_insert", boom)
    export = run(export)

    assert export.job.status == Job.Status.FAILED
    assert "RuntimeError" in export.job.error and "person1" not in export.job.error
    assert not export.file and leftovers() == []
    assert not Draft.objects.filter(export_recipients__isnull=False).exists()


# ----------------------------------------------------------------------------- erasure


def test_erasure_deletes_files_with_the_customer_and_their_control_membership(
    brief, marketer, admin_user, django_capture_on_commit_callbacks
):
    customers = [person(n) for n in range(40)]
    for c in customers:
        approved(brief, c, fields={**PASSING_FIELDS["email"]})
    with_control = export_of(brief, marketer, control_share=25)
    held = ControlMember.objects.values_list("customer_id", flat=True)
    exported = ExportRecipient.objects.filter(export=with_control).values_list(
        "customer_id", flat=True
    )
    in_file = next(c for c in customers if c.pk in set(exported))
    in_control = next(c for c in customers if c.pk in set(held))
    path = Path(export_storage().path(with_control.file.name))

    with django_capture_on_commit_callbacks(execute=True):
        customer_erase(user=admin_user, customer=in_control)
    assert not ControlMember.objects.filter(customer=in_control).exists()
    assert path.exists()  # they were held out, never in the file

    with django_capture_on_commit_callbacks(execute=True):
        customer_erase(user=admin_user, customer=in_file)
    with_control.refresh_from_db()
    assert not path.exists() and not with_control.file
    assert "erased" in with_control.file_removed
    assert not ExportRecipient.objects.filter(customer=in_file).exists()
    with pytest.raises(ValidationError, match="erased"):
        exports.export_file_open(export=with_control, user=marketer)


def test_a_download_refuses_a_file_whose_customer_was_erased_meanwhile(brief, marketer):
    kept, erased = person(1), person(2)
    approved(brief, kept)
    approved(brief, erased)
    export = export_of(brief, marketer)
    path = Path(export_storage().path(export.file.name))
    # The erasure hook did not run (it failed, or the erasure committed mid-export).
    type(erased).objects.filter(pk=erased.pk).update(erased_at=timezone.now())

    with pytest.raises(ValidationError, match="erased"):
        exports.export_file_open(export=export, user=marketer)
    assert not path.exists()


def test_warnings_that_name_an_erased_customer_are_dropped(brief, marketer):
    gone = person(1, email="")
    approved(brief, gone)
    approved(brief, person(2))
    export = export_of(brief, marketer, preset="mailchimp")
    assert [w["customer"] for w in export.warnings] == ["C-1"]

    exports.exports_forget_customer(customer_id=gone.pk)

    export.refresh_from_db()
    assert export.warnings == [] and export.file  # C-1 was never in the file


def test_deleting_the_brief_deletes_its_export_files(
    brief, marketer, django_capture_on_commit_callbacks
):
    approved(brief, person(1))
    export = export_of(brief, marketer)
    path = Path(export_storage().path(export.file.name))
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        brief_delete(brief=brief, user=marketer)
    assert not path.exists()
    assert not Export.objects.exists() and not ExportRecipient.objects.exists()
