"""Jobs: list, detail with a live progress bar, cancel, and the rejected-rows report."""

from __future__ import annotations

import csv
import io
import itertools
import logging

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import trigger_client_event

from marketing import selectors
from marketing.csvsafe import unsafe_cell
from marketing.htmx import stop_polling_when_finished, wants_partial
from marketing.models import Job
from marketing.services import jobs as job_services
from marketing.services.jobs import CancelOutcome

logger = logging.getLogger(__name__)

REPORT_PREVIEW_ROWS = 50


def announce_job_start(request: HttpRequest, job_id: int | None, started: str) -> None:
    """Flash ``started``, unless the job already failed to be sent (the job queue could not
    be reached, see `job_enqueue`): then flash that, so the user is not told it started."""
    job = Job.objects.filter(pk=job_id).only("status", "attempts", "message").first()
    if job is not None and job.status == Job.Status.FAILED and not job.attempts:
        messages.error(request, job.message)
    else:
        messages.success(request, started)


def _get_job_for_user(request: HttpRequest, pk: int, *, write: bool = False) -> Job:
    job = get_object_or_404(Job.objects.select_related("catalog", "created_by"), pk=pk)
    if not request.user.has_perm("marketing.view_job"):
        raise PermissionDenied("You may not see jobs.")
    if write and not request.user.has_perm("marketing.change_job"):
        raise PermissionDenied("You may not change jobs.")
    return job


@require_safe
def job_list(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("marketing.view_job"):
        raise PermissionDenied("You may not see jobs.")
    status = request.GET.get("status", "")
    jobs = selectors.job_list()
    if status in Job.Status.values:
        jobs = jobs.filter(status=status)
    page = Paginator(jobs, 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "jobs": page.object_list,
        "status": status,
        "nav": "jobs",
        "statuses": Job.Status.choices,
    }
    if wants_partial(request):
        return render(request, "marketing/job_list.html#jobs", context)
    return render(request, "marketing/job_list.html", context)


@require_safe
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = job_services.job_live_progress(_get_job_for_user(request, pk))
    context = {"job": job, "report": report_preview(job), "nav": "jobs"}
    if wants_partial(request):
        return render(request, "marketing/job_detail.html#summary", context)
    return render(request, "marketing/job_detail.html", context)


@require_safe
def job_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled fragment. Once the job ends, polling stops and `job-finished` fires."""
    job = job_services.job_live_progress(_get_job_for_user(request, pk))
    response = render(request, "marketing/_job_status.html", {"job": job})
    return stop_polling_when_finished(request, response, job)


CANCEL_MESSAGES = {
    CancelOutcome.CANCELLED: (
        messages.SUCCESS,
        "Cancelled before it started; nothing was changed.",
    ),
    CancelOutcome.REQUESTED: (
        messages.INFO,
        "Cancellation requested: the job stops at its next checkpoint and keeps nothing.",
    ),
    CancelOutcome.FINISHED: (messages.WARNING, "The job had already finished; nothing to cancel."),
}


@require_POST
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = _get_job_for_user(request, pk, write=True)
    job, outcome = job_services.job_cancel(job=job, user=request.user)
    if wants_partial(request):
        # The swapped status card says what happened; a flash would show on the next page.
        response = render(request, "marketing/_job_status.html", {"job": job})
        if not job.is_active:
            trigger_client_event(response, "job-finished", {"id": job.pk, "status": job.status})
        return response
    level, text = CANCEL_MESSAGES[outcome]
    messages.add_message(request, level, text)
    return redirect(job)


@require_safe
def job_report(request: HttpRequest, pk: int) -> HttpResponse:
    job = _get_job_for_user(request, pk)
    if not job.report_file:
        raise Http404("This job has no report.")
    try:
        fh = job.report_file.open("rb")
    except OSError as exc:
        logger.warning("report of job %s cannot be opened: %s", job.pk, exc)
        raise Http404("The report file is no longer available.") from exc
    return FileResponse(
        fh,
        as_attachment=True,
        filename=f"job-{job.pk}-rejected-rows.csv",
        content_type="text/csv",
    )


def report_preview(job: Job) -> dict | None:
    """The first rows of the rejected-rows report, for the job page.

    Reads only those rows (a report can have millions). The total comes from the job's result
    when the import counted its issues; otherwise the page says only whether there are more.
    """
    if not job.report_file:
        return None
    total = (job.result or {}).get("issues")
    try:
        with job.report_file.open("rb") as fh:
            reader = csv.reader(io.TextIOWrapper(fh, encoding="utf-8", newline=""))
            header = next(reader, None) or []
            rows = list(itertools.islice(reader, REPORT_PREVIEW_ROWS + 1))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        logger.warning("report of job %s cannot be read: %s", job.pk, exc)
        return {"missing": True, "total": total}
    return {
        "header": header,
        "rows": [[unsafe_cell(cell) for cell in row] for row in rows[:REPORT_PREVIEW_ROWS]],
        "more": len(rows) > REPORT_PREVIEW_ROWS,
        "total": total,
    }
