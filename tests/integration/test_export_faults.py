"""A worker SIGKILLed in the middle of an export, then a new worker: the file is written once
(one row per recipient, recorded once), and while the job hangs or waits for its retry the
user sees it running and cannot download anything. A job whose workers keep dying fails
with a message and leaves nothing on disk. PostgreSQL restarting at the same points (its
connections cut; pg_proxy) ends the same way: the task retries until the database is back.

The first worker (`tests.integration.hanging_export_worker`) hangs either while writing the
temp file (its first rows flushed to disk) or in the final transaction after moving the file
into place (the recipients written, nothing committed); the test kills it there, or restarts
the database under it and lets it go on.
"""

from __future__ import annotations

import csv
import io
import socket
from pathlib import Path

import pytest
from django.urls import reverse

from copygen.models import ControlMember, Draft, Export, ExportRecipient, export_storage
from copygen.services.exports import export_create
from marketing.models import Job
from tests.copygen_factories import BriefFactory, draft_make, mug
from tests.factories import CatalogFactory, CustomerFactory
from tests.integration.conftest import WorkerProcess, wait_for
from tests.integration.pg_proxy import CUT, cut_paused_worker
from tests.test_exports_service import grant_export_roles

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

CUSTOMERS = 60
CONSENTING = 54  # every tenth customer never consented
HANG_AFTER_ROWS = 20


@pytest.fixture(autouse=True)
def _exports(settings, tmp_path, _roles):
    settings.DATA_DIR = tmp_path / "data"
    grant_export_roles()  # tests/roles.py rebuilds the groups after a flush


def export_brief():
    """An email brief with two approved variants for each of CUSTOMERS customers."""
    catalog = CatalogFactory(currency="GBP")
    mug(catalog)
    brief = BriefFactory(catalog=catalog, channel="email", name="Killed export")
    for n in range(CUSTOMERS):
        customer = CustomerFactory(
            external_id=f"K-{n:02d}",
            email=f"k{n}@example.test",
            name=f"Kim Killed{n}",
            consent_email=n % 10 != 0,
        )
        for variant in (1, 2):
            draft_make(
                brief=brief, customer=customer, variant=variant, status=Draft.Status.APPROVED
            )
    return brief


def start_export(brief, user) -> Export:
    return export_create(
        user=user, brief=brief, preset="klaviyo", control_share=20, split_variants=True
    )


def files_on_disk() -> list[str]:
    directory = Path(export_storage().location)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def ended(export: Export, timeout: float = 45) -> Job:
    wait_for(
        lambda: Job.objects.filter(pk=export.job_id).exclude(status__in=Job.ACTIVE).exists(),
        timeout=timeout,
        what=f"export job {export.job_id} to end",
    )
    export.refresh_from_db()
    return Job.objects.get(pk=export.job_id)


def hang_first_worker(
    worker: WorkerProcess, hang_at: str, tmp_path: Path, brief, user, *, env: dict | None = None
):
    """Start the hanging worker (env: more of its environment) and an export; return it and
    the file it hangs over."""
    marker = tmp_path / "hanging-export"
    worker.start(
        module="tests.integration.hanging_export_worker",
        env={
            "DATA_DIR": str(tmp_path / "data"),
            "HANG_EXPORT_AT": hang_at,
            "HANG_EXPORT_ROWS": str(HANG_AFTER_ROWS),
            "HANG_MARKER": str(marker),
            **(env or {}),
        },
    )
    export = start_export(brief, user)
    wait_for(marker.exists, timeout=30, interval=0.05, what=f"the export to hang ({hang_at})")
    on_disk = Path(marker.read_text())
    if hang_at == "writing":
        assert on_disk.name.startswith(f"export-{export.pk}.csv.part-")
        assert len(list(csv.DictReader(io.StringIO(on_disk.read_text("utf-8"))))) == (
            HANG_AFTER_ROWS
        )
    else:  # moved into place, the transaction that records it still open
        assert on_disk.name == f"export-{export.pk}.csv"
    assert on_disk.exists(), worker.log()
    return export, on_disk


def assert_no_file_offered(client, export: Export, *, status: str) -> None:
    """What the user sees of an export that has no file (yet): its status, no download."""
    export.refresh_from_db()
    assert not export.file
    assert not ExportRecipient.objects.filter(export=export).exists()
    assert not ControlMember.objects.filter(export=export).exists()
    download = reverse("copygen:export-download", args=[export.pk])
    page = client.get(reverse("copygen:export-detail", args=[export.pk])).content.decode()
    assert download not in page
    card = client.get(reverse("copygen:export-status", args=[export.pk])).content.decode()
    assert f'data-status="{status}"' in card
    response = client.get(download, follow=True)
    assert response.redirect_chain == [(export.get_absolute_url(), 302)]
    assert "This export has no file: it has not finished successfully." in (
        response.content.decode()
    )


@pytest.mark.parametrize("hang_at", ["writing", "finishing"])
def test_a_worker_killed_mid_export_is_retried_and_writes_the_file_once(
    hang_at, marketer, client, worker_process, tmp_path
):
    brief = export_brief()
    client.force_login(marketer)
    export, _ = hang_first_worker(worker_process, hang_at, tmp_path, brief, marketer)
    first_pid = worker_process.proc.pid
    assert_no_file_offered(client, export, status="running")
    worker_process.kill()

    job = Job.objects.get(pk=export.job_id)
    assert (job.status, job.attempts) == (Job.Status.RUNNING, 1), worker_process.log()
    assert job.worker == f"{socket.gethostname()}:{first_pid}"
    assert_no_file_offered(client, export, status="running")

    worker_process.start(env={"DATA_DIR": str(tmp_path / "data")})
    job = ended(export)

    assert job.status == Job.Status.SUCCEEDED, (job.error, worker_process.log())
    assert job.attempts == 2
    assert job.worker == f"{socket.gethostname()}:{worker_process.proc.pid}"
    assert_written_once(client, export)


def assert_written_once(client, export: Export) -> None:
    """One file, no temp file of an earlier attempt, one row per recipient recorded once."""
    assert files_on_disk() == [f"export-{export.pk}.csv"]
    response = client.get(reverse("copygen:export-download", args=[export.pk]))
    assert response.status_code == 200
    content = b"".join(response.streaming_content).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(content)))
    recipients = list(ExportRecipient.objects.filter(export=export).select_related("customer"))
    held = set(ControlMember.objects.filter(export=export).values_list("customer_id", flat=True))
    assert len(rows) == len(recipients) == export.rows_written == CONSENTING - len(held)
    assert export.control_size == len(held) > 0
    emails = [row["Email"] for row in rows]
    assert len(set(emails)) == len(emails)
    assert set(emails) == {r.customer.email for r in recipients}
    assert len({r.customer_id for r in recipients}) == len(recipients)
    assert not {r.customer_id for r in recipients} & held


@pytest.mark.parametrize("hang_at", ["writing", "finishing"])
def test_an_export_cut_by_a_database_restart_is_retried_and_writes_the_file_once(
    hang_at, marketer, client, pg_proxy, worker_process, tmp_path
):
    """PostgreSQL restarts while the export is paused inside its transaction: the attempt
    rolls back, its task retries while the database is away, and the first retry once it is
    back releases the cut attempt's claim and writes the file, in the same worker."""
    brief = export_brief()
    client.force_login(marketer)
    release = tmp_path / "go-on"
    export, on_disk = hang_first_worker(
        worker_process,
        hang_at,
        tmp_path,
        brief,
        marketer,
        env={"DATABASE_URL": pg_proxy.database_url(), "HANG_RELEASE": str(release)},
    )
    worker = Job.objects.get(pk=export.job_id).worker

    cut_paused_worker(pg_proxy, worker_process, release)

    job = Job.objects.get(pk=export.job_id)
    assert (job.status, job.attempts) == (Job.Status.RUNNING, 1), worker_process.log()
    assert f"{CUT} (OperationalError); retrying in" in worker_process.log()
    assert_no_file_offered(client, export, status="running")
    # The cut attempt removed its temp file; a file it had moved into place stays until the
    # next attempt (nothing records it, so nobody can download it).
    assert files_on_disk() == ([on_disk.name] if hang_at == "finishing" else [])

    pg_proxy.start()
    job = ended(export)

    assert job.status == Job.Status.SUCCEEDED, (job.error, worker_process.log())
    assert job.attempts == 2  # the retry released the cut attempt's claim and ran again
    assert job.worker == worker == f"{socket.gethostname()}:{worker_process.proc.pid}"
    assert_written_once(client, export)


def test_an_export_cut_by_a_database_restart_with_no_attempt_left_fails_and_leaves_no_file(
    marketer, client, pg_proxy, worker_process, tmp_path
):
    """MAX_JOB_ATTEMPTS=1: the retry once the database is back fails the job instead of
    running it again, and deletes the file the cut attempt had moved into place."""
    brief = export_brief()
    client.force_login(marketer)
    release = tmp_path / "go-on"
    export, on_disk = hang_first_worker(
        worker_process,
        "finishing",
        tmp_path,
        brief,
        marketer,
        env={
            "DATABASE_URL": pg_proxy.database_url(),
            "HANG_RELEASE": str(release),
            "MAX_JOB_ATTEMPTS": "1",
        },
    )
    cut_paused_worker(pg_proxy, worker_process, release)
    assert on_disk.exists()

    pg_proxy.start()
    job = ended(export)

    assert job.status == Job.Status.FAILED, worker_process.log()
    assert job.attempts == 1
    assert job.error.startswith("Gave up after 1 attempt: ")
    assert "or lost the database. Nothing was changed." in job.error
    assert files_on_disk() == []
    assert_no_file_offered(client, export, status="failed")


@pytest.mark.parametrize("hang_at", ["writing", "finishing"])
def test_an_export_whose_worker_keeps_dying_fails_clearly_and_leaves_no_file(
    hang_at, marketer, client, worker_process, tmp_path
):
    """The attempts are spent (MAX_JOB_ATTEMPTS=1 here): the next worker fails the job
    instead of running it, and deletes what the killed attempt left on disk."""
    brief = export_brief()
    client.force_login(marketer)
    export, on_disk = hang_first_worker(worker_process, hang_at, tmp_path, brief, marketer)
    worker_process.kill()

    worker_process.start(env={"DATA_DIR": str(tmp_path / "data"), "MAX_JOB_ATTEMPTS": "1"})
    job = ended(export)

    assert job.status == Job.Status.FAILED, worker_process.log()
    assert job.attempts == 1
    assert job.error.startswith("Gave up after 1 attempt: the worker kept dying")
    assert job.error.endswith("Nothing was changed.")
    assert not on_disk.exists()
    assert files_on_disk() == []
    assert_no_file_offered(client, export, status="failed")
    page = client.get(reverse("copygen:export-detail", args=[export.pk])).content.decode()
    assert "Gave up after 1 attempt" in page
    assert "No file was written." in page

    again = start_export(brief, marketer)  # the failed export blocks nothing
    assert ended(again).status == Job.Status.SUCCEEDED, worker_process.log()
    assert files_on_disk() == [f"export-{again.pk}.csv"]
    assert ExportRecipient.objects.filter(export=again).count() == again.rows_written > 0
