"""Importing an export's campaign results: upload the tool's report, check the column mapping,
then follow the job (polled progress, then the counts, the rejected-rows report and the way
to the brief's results).

Uploading and starting need ``copygen.add_campaignresult`` (marketers, admins); the job's
page needs ``copygen.view_campaignresult`` (approvers read it too). An upload is its
uploader's: someone else's is 403, one of another export's catalog 404. The services check
the permission again. The rejected rows download through the jobs' report download.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from copygen import selectors_exports
from copygen.models import Export
from copygen.services import results_import as services
from marketing.analytics.importing import ImportFileError
from marketing.forms import FileUploadForm, MappingForm
from marketing.htmx import render_page, stop_polling_when_finished
from marketing.models import Job, Upload
from marketing.permissions import require_perm
from marketing.services.jobs import job_live_progress
from marketing.uploads import ImportSizeLimitHandler, install_size_limit
from marketing.views.jobs import announce_job_start, report_preview

ADD = services.ADD_PERM
VIEW = services.VIEW_PERM
KIND = Upload.Kind.CAMPAIGN_RESULTS
HELP = (
    "The campaign tool's report with one row per recipient (or per event: rows of one "
    "recipient are added up). Each row needs the Tailor draft id, the customer id or the "
    "email address the export wrote; sent, delivered, opened, clicked and converted take "
    "yes/no or counts; revenue and the times are optional."
)


def _get_export_for_import(request: HttpRequest, pk: int) -> Export:
    """The export (404 if missing), once the user may import results (403)."""
    export = selectors_exports.export_get(pk=pk)
    require_perm(request.user, ADD)
    return export


def _get_upload_for_user(request: HttpRequest, export: Export, pk: int) -> Upload:
    """A results upload of the export's catalog (404 otherwise) that the user made (403)."""
    upload = get_object_or_404(Upload, pk=pk, kind=KIND, catalog_id=export.catalog_id)
    if upload.created_by_id != request.user.pk and not request.user.is_superuser:
        raise PermissionDenied("This upload belongs to someone else.")
    return upload


def _get_job_for_user(request: HttpRequest, pk: int) -> Job:
    """A results import job (404 for any other job), once the user may read results (403)."""
    job = get_object_or_404(
        Job.objects.select_related("created_by"), pk=pk, kind=Job.Kind.RESULTS_IMPORT
    )
    require_perm(request.user, VIEW)
    return job


# ----------------------------------------------------------------------------- upload


@csrf_exempt
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def results_import_upload(request: HttpRequest, pk: int) -> HttpResponse:
    """The upload form; a file over IMPORT_MAX_BYTES is refused while it arrives.

    As the data import's upload: permission first (an outsider's body is never parsed),
    then the size-limit handler, then the CSRF check, which reads the body.
    """
    export = _get_export_for_import(request, pk)
    limiter = install_size_limit(request)
    return _upload(request, export, limiter)


@csrf_protect
def _upload(request: HttpRequest, export: Export, limiter: ImportSizeLimitHandler) -> HttpResponse:
    form = FileUploadForm(request.POST or None, request.FILES or None)
    file_error = None
    if request.method == "POST" and limiter.error:
        file_error = limiter.error
    elif request.method == "POST" and form.is_valid():
        try:
            upload = services.results_upload_create(
                export=export, file=form.cleaned_data["file"], user=request.user
            )
        except ImportFileError as exc:
            file_error = str(exc)
        except ValidationError as exc:
            file_error = "; ".join(exc.messages)
        else:
            return redirect("copygen:results-import-mapping", pk=export.pk, upload_pk=upload.pk)
    return render(
        request,
        "copygen/results_import_upload.html",
        {
            "export": export,
            "brief": export.brief,
            "form": form,
            "file_error": file_error,
            "importable": export.status == Job.Status.SUCCEEDED,
            "help": HELP,
            "nav": "copy",
        },
    )


# ----------------------------------------------------------------------------- mapping


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def results_import_mapping(request: HttpRequest, pk: int, upload_pk: int) -> HttpResponse:
    """The columns Tailor guessed, one select per field; POST starts the import."""
    export = _get_export_for_import(request, pk)
    upload = _get_upload_for_user(request, export, upload_pk)
    columns = upload.detected.get("columns", [])
    form = MappingForm(request.POST or None, kind=KIND, columns=columns)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            job = services.results_import_start(
                export=export, upload=upload, mapping=form.mapping(), user=request.user
            )
        except ValidationError as exc:
            error = "; ".join(exc.messages)
        else:
            announce_job_start(request, job.pk, f"Import of {upload.original_name} started.")
            return redirect("copygen:results-import-detail", pk=job.pk)
    sample = upload.detected.get("sample", [])
    return render(
        request,
        "copygen/results_import_mapping.html",
        {
            "export": export,
            "brief": export.brief,
            "upload": upload,
            "form": form,
            "error": error,
            "columns": columns,
            "sample_rows": [[row.get(c, "") for c in columns] for row in sample],
            "help": HELP,
            "nav": "copy",
        },
    )


# ----------------------------------------------------------------------------- job


def _export_of(job: Job) -> Export:
    export = (
        Export.objects.select_related("brief", "catalog")
        .filter(pk=(job.params or {}).get("export_id"))
        .first()
    )
    if export is None:
        raise Http404("The export of these results was deleted.")
    return export


def _status_context(job: Job) -> dict:
    return {
        "job": job_live_progress(job),
        "status_url": reverse("copygen:results-import-status", args=[job.pk]),
        "unit": "rows",
    }


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def results_import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The import's progress while it runs, then what it stored and what it rejected; htmx
    (after `job-finished`) re-renders only the summary."""
    job = _get_job_for_user(request, pk)
    export = _export_of(job)
    context = {
        **_status_context(job),
        "export": export,
        "brief": export.brief,
        "report": report_preview(job),
        "can_import": request.user.has_perm(ADD),
        "nav": "copy",
    }
    return render_page(request, "copygen/results_import_detail.html", context, partial="summary")


@login_required
@require_http_methods(["GET", "HEAD"])
def results_import_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled progress card; once the job ends, polling stops and `job-finished` fires."""
    job = _get_job_for_user(request, pk)
    context = _status_context(job)
    response = render(request, "copygen/results_import_status.html", context)
    return stop_polling_when_finished(request, response, context["job"])
