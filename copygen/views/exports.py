"""Exports: start one from a brief, its page (live progress, then the summary and the
download), the polled status card, the download, and the history (all, or one brief's).

Everyone with ``copygen.view_export`` reads the history and summaries (approvers too);
``add_export`` starts an export and ``download_export`` downloads a file (marketers and
admins) — the services check them again. Files hold personal data: they are only ever sent
by `export_download`, as an attachment, and each download is audited.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from copygen import selectors_briefs
from copygen import selectors_exports as selectors
from copygen.forms import ExportForm
from copygen.models import Brief, Export
from copygen.services import exports as services
from marketing.htmx import stop_polling_when_finished, wants_partial
from marketing.models import Catalog
from marketing.permissions import require_perm
from marketing.services.jobs import job_live_progress
from marketing.views.jobs import announce_job_start

VIEW = "copygen.view_export"
ADD = "copygen.add_export"
DOWNLOAD = "copygen.download_export"
VIEW_BRIEF = "copygen.view_brief"
EXPORTS_PER_PAGE = 25


def _get_export_for_user(request: HttpRequest, pk: int, *, perm: str | None = None) -> Export:
    """The export (404 if missing), once the user may see exports and holds ``perm`` (403)."""
    export = selectors.export_get(pk=pk)
    require_perm(request.user, VIEW)
    if perm:
        require_perm(request.user, perm)
    return export


def _get_brief_for_user(request: HttpRequest, pk: int, *, perm: str | None = None) -> Brief:
    brief = selectors_briefs.brief_get(pk=pk)
    require_perm(request.user, VIEW_BRIEF)
    if perm:
        require_perm(request.user, perm)
    return brief


def _abilities(request: HttpRequest) -> dict[str, bool]:
    """What the pages offer; the views enforce it, templates only hide dead ends."""
    return {
        "can_view": request.user.has_perm(VIEW),
        "can_export": request.user.has_perm(ADD),
        "can_download": request.user.has_perm(DOWNLOAD),
    }


# ----------------------------------------------------------------------------- create


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def export_create(request: HttpRequest, pk: int) -> HttpResponse:
    """The export form of a brief (also on the brief's page); POST starts the export and
    shows its page. Invalid input re-renders the form with the reasons (nothing stored)."""
    brief = _get_brief_for_user(request, pk, perm=ADD)
    form = ExportForm(request.POST or None, brief=brief)
    if request.method == "POST" and form.is_valid():
        try:
            export = services.export_create(user=request.user, brief=brief, **form.cleaned_data)
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            announce_job_start(request, export.job_id, "Export started.")
            return redirect(export)
    context = {
        "brief": brief,
        "catalog": brief.catalog,
        "form": form,
        "panel": selectors.export_brief_panel(brief=brief),
        "nav": "copy",
        **_abilities(request),
    }
    return render(request, "copygen/export_form.html", context)


@login_required
@require_http_methods(["GET", "HEAD"])
def export_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The brief page's export section (loaded by htmx; part of the brief's page, so
    whoever reads the brief gets it): the form for those who export, recent exports for
    those who read exports. Without htmx, the export form's page (or the brief's history)."""
    brief = _get_brief_for_user(request, pk)
    abilities = _abilities(request)
    if not wants_partial(request):
        if abilities["can_export"]:
            return redirect("copygen:export-create", pk=brief.pk)
        require_perm(request.user, VIEW)
        return redirect(f"{reverse('copygen:export-list')}?brief={brief.pk}")
    context = {
        "brief": brief,
        "form": ExportForm(brief=brief) if abilities["can_export"] else None,
        "panel": selectors.export_brief_panel(brief=brief, history=abilities["can_view"]),
        **abilities,
    }
    return render(request, "copygen/export_panel.html", context)


# ----------------------------------------------------------------------------- detail


def _status_context(export: Export) -> dict:
    return {
        "job": job_live_progress(export.job),
        "status_url": reverse("copygen:export-status", args=[export.pk]),
        "unit": "customers",
    }


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def export_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The export's settings, its job's progress while it runs, then the summary and the
    download; htmx (after `job-finished`) re-renders only the summary."""
    export = _get_export_for_user(request, pk)
    context = {
        "export": export,
        "brief": export.brief,
        "catalog": export.catalog,
        "summary": selectors.export_summary(export=export),
        "nav": "copy",
        **_abilities(request),
    }
    if wants_partial(request):
        return render(request, "copygen/export_detail.html#summary", context)
    if export.job is not None:
        context.update(_status_context(export))
    return render(request, "copygen/export_detail.html", context)


@login_required
@require_http_methods(["GET", "HEAD"])
def export_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled progress card; once the job ends, polling stops and `job-finished` fires."""
    export = _get_export_for_user(request, pk)
    if export.job is None:
        return render(request, "copygen/export_detail.html#no-job", {"export": export})
    context = _status_context(export)
    response = render(request, "copygen/export_status.html", context)
    return stop_polling_when_finished(request, response, context["job"])


@login_required
@require_http_methods(["GET", "HEAD"])
def export_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The file, as an attachment (audited); without one, back to the export's page."""
    export = _get_export_for_user(request, pk, perm=DOWNLOAD)
    try:
        found = services.export_file_open(export=export, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(export)
    response = FileResponse(
        found.fileobj,
        as_attachment=True,
        filename=found.filename,
        content_type=found.content_type,
    )
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


# ----------------------------------------------------------------------------- history


def _int_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name, "")
    return int(raw) if raw.isdigit() else None


@login_required
@require_http_methods(["GET", "HEAD"])
def export_list(request: HttpRequest) -> HttpResponse:
    """Every export, newest first (``?brief=`` or ``?catalog=`` narrows it): who, when,
    which preset, how many rows."""
    require_perm(request.user, VIEW)
    brief_pk = _int_param(request, "brief")
    brief = Brief.objects.filter(pk=brief_pk).first() if brief_pk is not None else None
    catalog_pk = _int_param(request, "catalog")
    catalog = Catalog.objects.filter(pk=catalog_pk).first() if catalog_pk is not None else None
    page = Paginator(
        selectors.export_list(brief=brief, catalog=catalog), EXPORTS_PER_PAGE
    ).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "exports": page.object_list,
        "brief": brief,
        "catalog": catalog,
        "nav": "copy",
        **_abilities(request),
    }
    return render(request, "copygen/export_list.html", context)
