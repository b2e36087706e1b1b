"""LOG_FORMAT=json: one JSON object per line with time, level, logger, message, request id and
job id; e-mail addresses masked in both formats."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.urls import reverse

from marketing.logs import ContextFilter, JsonFormatter, TextFormatter, job_id_of
from marketing.models import Job
from tests.factories import CatalogFactory, JobFactory
from tests.integration.import_support import lines, run_inline

ROOT = Path(__file__).resolve().parents[1]
EMAILS = ("kim.lee@example.test", "lou@example.test")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run code in a fresh process configured by marketing.settings (as web and workers are)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "marketing.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# The project's LOGGING setting as Django applies it (django.setup() without loading the apps).
TYPICAL_IMPORT_LINES = """
    import logging
    from django.conf import settings
    from django.utils.log import configure_logging

    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
    log = logging.getLogger("marketing.services.imports")
    log.warning("import job %s: the database refused a value (%s)", 42, "DataError, SQLSTATE 22001")
    try:
        raise ValueError('duplicate key: Key (email)=(kim.lee@example.test) already exists')
    except ValueError:
        logging.getLogger("marketing.tasks").exception("could not mark job %s failed", 42)
"""


def test_json_format_emits_one_object_per_line_with_the_keys():
    done = run_python(TYPICAL_IMPORT_LINES, LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(records) == 2, done.stderr

    warning, error = records
    assert list(warning)[:4] == ["time", "level", "logger", "message"]
    assert warning["level"] == "WARNING"
    assert warning["logger"] == "marketing.services.imports"
    assert warning["message"] == (
        "import job 42: the database refused a value (DataError, SQLSTATE 22001)"
    )
    assert warning["job_id"] == 42
    assert warning["time"].endswith("+00:00")
    assert (error["level"], error["job_id"]) == ("ERROR", 42)
    assert "ValueError" in error["exc_info"] and "[email]" in error["exc_info"]
    assert "kim.lee@example.test" not in done.stderr


def test_text_format_is_the_default_and_masks_addresses_too():
    done = run_python("import marketing.settings", LOG_FORMAT="")
    assert done.returncode != 0  # an empty value is not a format
    assert "LOG_FORMAT must be text or json" in done.stderr

    env = {k: v for k, v in os.environ.items() if k != "LOG_FORMAT"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TYPICAL_IMPORT_LINES)],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "marketing.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING marketing.services.imports import job 42: the database" in done.stderr
    assert not any(line.startswith("{") for line in done.stderr.splitlines())
    assert "kim.lee@example.test" not in done.stderr and "[email]" in done.stderr


@pytest.mark.parametrize(
    ("msg", "args", "job_id"),
    [
        ("import job %s failed: %s", (7, "X"), 7),
        ("task %s for job %s failed: %r", ("abc", "12", None), 12),
        ("100%% of job %d", (3,), 3),
        ("job %s lost its worker %s; retrying", (5, "host:1"), 5),
        ("database busy: %s %s answered 503", ("GET", "/"), None),
        ("report of job %s cannot be read", ("not-a-number",), None),
        ("job %s", (), None),
    ],
)
def test_the_job_id_is_read_from_the_projects_log_calls(msg, args, job_id):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, None)
    assert job_id_of(record) == job_id


@pytest.fixture
def captured():
    """Records of the views' loggers, formatted as LOG_FORMAT=json formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    loggers = [logging.getLogger(n) for n in ("marketing.views.jobs", "marketing.services")]
    for logger in loggers:
        logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.mark.django_db
def test_a_request_logs_its_request_id_and_job_id(client, marketer, captured):
    job = JobFactory(kind=Job.Kind.IMPORT, status=Job.Status.FAILED)
    Job.objects.filter(pk=job.pk).update(report_file="reports/gone.csv")
    client.force_login(marketer)

    response = client.get(reverse("marketing:job-report", args=[job.pk]))

    assert response.status_code == 404
    (record,) = [r for r in captured() if r["logger"] == "marketing.views.jobs"]
    assert record["request_id"] == response["X-Request-ID"]
    assert len(response["X-Request-ID"]) == 32
    assert record["job_id"] == job.pk
    assert record["message"].startswith(f"report of job {job.pk} cannot be opened")


@pytest.mark.django_db
def test_a_proxys_request_id_is_kept_only_when_well_formed(client, marketer):
    client.force_login(marketer)
    url = reverse("marketing:job-list")
    kept = client.get(url, headers={"X-Request-ID": "lb-7f3a9c21-0001"})
    assert kept["X-Request-ID"] == "lb-7f3a9c21-0001"
    for bad in ("short", "x" * 65, "evil\nline injected", "a@b.example ok"):
        replaced = client.get(url, headers={"X-Request-ID": bad})
        assert replaced["X-Request-ID"] != bad and len(replaced["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_an_import_of_customers_logs_no_address(marketer, monkeypatch, captured):
    """A real import that fails inside the database step: what it logs names no customer."""
    from marketing.services.imports import rows

    def refuse(self, frame, status):
        raise RuntimeError(f"row refused: {frame.iloc[0].to_dict()}")  # data in the message

    monkeypatch.setattr(rows._CustomerIndex, "upsert", refuse)
    catalog = CatalogFactory(name="Logs")
    content = lines(
        "customer_id,email,name", f"kim-1,{EMAILS[0]},Kim Lee", f"lou-2,{EMAILS[1]},Lou Park"
    )
    job = run_inline(catalog, marketer, "customers", content)

    assert job.status == Job.Status.FAILED
    records = captured()
    assert any(r.get("job_id") == job.pk for r in records), records
    text = json.dumps(records)
    for value in (*EMAILS, "Kim Lee", "kim-1"):
        assert value not in text


def test_formatters_mask_addresses_in_messages_and_tracebacks():
    record = logging.LogRecord(
        "marketing.x",
        logging.ERROR,
        __file__,
        1,
        "login failed for %s",
        ("a.b+c@mail.example",),
        None,
    )
    assert TextFormatter("%(message)s").format(record) == "login failed for [email]"
    assert json.loads(JsonFormatter().format(record))["message"] == "login failed for [email]"
