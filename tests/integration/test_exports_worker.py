"""Exports on PostgreSQL with a real Celery worker over the broker: a marketer's export is
queued on commit, written by the worker (control group drawn and recorded, variants split
and recorded, one row per consenting customer), and a task delivered twice leaves one file
and one set of rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from copygen.models import ControlMember, Draft, Export, ExportRecipient, export_storage
from copygen.services.exports import export_create
from copygen.tasks import copy_export_task
from marketing.models import Job
from tests.copygen_factories import BriefFactory, draft_make, mug
from tests.factories import CatalogFactory, CustomerFactory
from tests.integration.conftest import wait_for
from tests.test_exports_service import grant_export_roles

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _exports(settings, tmp_path, _roles):
    settings.DATA_DIR = tmp_path / "data"
    grant_export_roles()  # tests/roles.py rebuilds the groups after a flush


@pytest.fixture
def brief():
    catalog = CatalogFactory(currency="GBP")
    mug(catalog)
    brief = BriefFactory(catalog=catalog, channel="email", name="Worker export")
    for n in range(60):
        customer = CustomerFactory(
            external_id=f"W-{n:02d}",
            email=f"w{n}@example.test",
            name=f"Wim Worker{n}",
            country="Netherlands",
            consent_email=n % 10 != 0,  # 6 never consented
        )
        for variant in (1, 2):
            draft_make(
                brief=brief, customer=customer, variant=variant, status=Draft.Status.APPROVED
            )
    return brief


def finished(export: Export, timeout: float = 90) -> Export:
    wait_for(
        lambda: Job.objects.filter(pk=export.job_id).exclude(status__in=Job.ACTIVE).exists(),
        timeout=timeout,
        what=f"export job {export.job_id} to finish",
    )
    export.refresh_from_db()
    assert export.job.status == Job.Status.SUCCEEDED, (export.job.status, export.job.error)
    return export


def rows_of(export: Export) -> list[dict[str, str]]:
    path = Path(export_storage().path(export.file.name))
    return list(csv.DictReader(io.StringIO(path.read_text("utf-8"))))


def test_a_real_worker_writes_the_export(brief, marketer, celery_worker):
    export = finished(
        export_create(
            user=marketer, brief=brief, preset="klaviyo", control_share=20, split_variants=True
        )
    )

    rows = rows_of(export)
    held = set(ControlMember.objects.filter(export=export).values_list("customer_id", flat=True))
    recipients = list(ExportRecipient.objects.filter(export=export).select_related("customer"))
    assert len(rows) == len(recipients) == export.rows_written == 54 - len(held)
    assert export.control_size == len(held) > 0
    assert export.skipped == {"no_consent": 6}
    assert {r["Email"] for r in rows} == {r.customer.email for r in recipients}
    assert not {r.customer_id for r in recipients} & held
    # One row per customer; each records the variant it got, and both variants are used.
    assert len({r["Email"] for r in rows}) == len(rows)
    by_draft = {str(r.draft_id): r.variant for r in recipients}
    assert all(by_draft[row["tailor_draft_id"]] == int(row["tailor_variant"]) for row in rows)
    assert {r.variant for r in recipients} == {1, 2}
    assert Draft.objects.filter(export_recipients__export=export).count() == len(recipients)
    assert export.job.attempts == 1 and export.job.progress_done == 60


def test_a_redelivered_task_rewrites_the_same_file_and_rows(brief, marketer, celery_worker):
    export = finished(export_create(user=marketer, brief=brief, preset="generic_csv"))
    first = rows_of(export)
    # As if the worker died after its commit but before acking: the message comes again
    # while the job looks running with a stale heartbeat.
    Job.objects.filter(pk=export.job_id).update(status=Job.Status.RUNNING, heartbeat_at=None)
    copy_export_task.delay(export.job_id)

    wait_for(
        lambda: Job.objects.filter(
            pk=export.job_id, attempts=2, status=Job.Status.SUCCEEDED
        ).exists(),
        timeout=60,
        what="the redelivered task to finish",
    )
    export.refresh_from_db()
    assert rows_of(export) == first
    assert ExportRecipient.objects.filter(export=export).count() == len(first) == 54
    assert sorted(p.name for p in Path(export_storage().location).iterdir()) == [export.file.name]
