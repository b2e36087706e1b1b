"""Briefs: the list, create (per catalog), edit, delete, start drafting, and a brief's page
with its drafting job's live progress and the counts of its drafts.

Everyone with ``copygen.view_brief`` reads (approvers too); ``add_brief``, ``change_brief``
(also to start drafting) and ``delete_brief`` write — the services check them again. The
progress card polls ``brief-status``; when the job ends, polling stops and ``job-finished``
makes the page's results section reload itself.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from copygen import selectors as draft_selectors
from copygen import selectors_briefs as selectors
from copygen.engine.occasions import occasion_name
from copygen.forms import BriefForm, brand_initial
from copygen.models import CHANNEL_LABELS, LOCALE_LABELS, Brief
from copygen.services import briefs as services
from marketing.htmx import stop_polling_when_finished, wants_partial
from marketing.models import Catalog
from marketing.permissions import require_perm
from marketing.services.jobs import job_live_progress
from marketing.views.jobs import announce_job_start

VIEW = "copygen.view_brief"
ADD = "copygen.add_brief"
CHANGE = "copygen.change_brief"
DELETE = "copygen.delete_brief"
BRIEFS_PER_PAGE = 25


def _get_brief_for_user(request: HttpRequest, pk: int, *, perm: str | None = None) -> Brief:
    """The brief (404 if missing), once the user may see briefs and holds ``perm`` (403)."""
    brief = selectors.brief_get(pk=pk)
    require_perm(request.user, VIEW)
    if perm:
        require_perm(request.user, perm)
    return brief


def _abilities(request: HttpRequest) -> dict[str, bool]:
    """What the pages offer; the views enforce it, templates only hide dead ends."""
    user = request.user
    return {
        "can_add": user.has_perm(ADD),
        "can_change": user.has_perm(CHANGE),
        "can_delete": user.has_perm(DELETE),
    }


def _catalog_param(request: HttpRequest) -> Catalog | None:
    raw = request.GET.get("catalog", "")
    if not raw.isdigit():
        return None
    return Catalog.objects.filter(pk=int(raw)).first()


# ----------------------------------------------------------------------------- list


@login_required
@require_http_methods(["GET", "HEAD"])
def brief_list(request: HttpRequest) -> HttpResponse:
    require_perm(request.user, VIEW)
    catalog = _catalog_param(request)
    page = Paginator(selectors.brief_list(catalog=catalog), BRIEFS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "page": page,
        "briefs": page.object_list,
        "catalog": catalog,
        "catalogs": selectors.brief_catalogs(),
        "channel_labels": CHANNEL_LABELS,
        "nav": "copy",
        **_abilities(request),
    }
    return render(request, "copygen/brief_list.html", context)


# ----------------------------------------------------------------------------- create, edit


def _start_after_save(request: HttpRequest, brief: Brief) -> None:
    """ "Save and draft now": start the job, or say why it cannot start."""
    try:
        job = services.brief_draft_start(brief=brief, user=request.user)
    except ValidationError as exc:
        messages.error(request, f"Saved, but drafting did not start: {' '.join(exc.messages)}")
    else:
        announce_job_start(request, job.pk, "Saved; drafting started.")


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def brief_create(request: HttpRequest) -> HttpResponse:
    require_perm(request.user, ADD)
    catalog = _catalog_param(request)
    if catalog is None:
        context = {"catalogs": selectors.brief_catalogs(), "nav": "copy"}
        return render(request, "copygen/brief_form.html", context)
    initial = {"locales": [catalog.default_language] if catalog.default_language else ["en"]}
    initial.update(brand_initial(catalog))
    form = BriefForm(request.POST or None, catalog=catalog, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            brief = services.brief_create(
                user=request.user, catalog=catalog, **form.service_fields()
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            if "draft" in request.POST and request.user.has_perm(CHANGE):
                _start_after_save(request, brief)
            else:
                messages.success(request, f"Brief “{brief.name}” created.")
            return redirect(brief)
    context = {
        "catalog": catalog,
        "form": form,
        "action": f"{reverse('copygen:brief-create')}?catalog={catalog.pk}",
        "nav": "copy",
        **_abilities(request),
    }
    return render(request, "copygen/brief_form.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def brief_update(request: HttpRequest, pk: int) -> HttpResponse:
    brief = _get_brief_for_user(request, pk, perm=CHANGE)
    form = BriefForm(request.POST or None, catalog=brief.catalog, brief=brief)
    if request.method == "POST" and form.is_valid():
        try:
            brief = services.brief_update(brief=brief, user=request.user, **form.service_fields())
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            if "draft" in request.POST:
                _start_after_save(request, brief)
            else:
                messages.success(request, f"Brief “{brief.name}” saved.")
            return redirect(brief)
    context = {
        "brief": brief,
        "catalog": brief.catalog,
        "form": form,
        "action": reverse("copygen:brief-update", args=[brief.pk]),
        "active_job": brief.job if brief.job and brief.job.is_active else None,
        "nav": "copy",
        **_abilities(request),
    }
    return render(request, "copygen/brief_form.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def brief_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation and shows what goes; only POST deletes."""
    brief = _get_brief_for_user(request, pk, perm=DELETE)
    error = None
    if request.method == "POST":
        try:
            counts = services.brief_delete(brief=brief, user=request.user)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            total = sum(counts.values())
            messages.success(
                request, f"Brief “{brief.name}” deleted with {total:,} draft{'s' * (total != 1)}."
            )
            return redirect("copygen:brief-list")
    context = {
        "brief": brief,
        "counts": draft_selectors.draft_counts(brief=brief),
        "error": error,
        "nav": "copy",
    }
    return render(request, "copygen/brief_confirm_delete.html", context)


# ----------------------------------------------------------------------------- drafting


@login_required
@require_POST
def brief_draft(request: HttpRequest, pk: int) -> HttpResponse:
    """Start the brief's drafting job, then show its page (with the progress bar)."""
    brief = _get_brief_for_user(request, pk, perm=CHANGE)
    try:
        job = services.brief_draft_start(brief=brief, user=request.user)
    except ValidationError as exc:
        messages.error(request, f"Drafting did not start: {' '.join(exc.messages)}")
    else:
        announce_job_start(request, job.pk, "Drafting started.")
    return redirect(brief)


def _status_context(brief: Brief) -> dict:
    """What `_brief_status.html` needs to poll through the brief's own URL."""
    unit = "customers" if brief.audience == Brief.Audience.CUSTOMERS else "segment"
    return {
        "job": job_live_progress(brief.job),
        "status_url": reverse("copygen:brief-status", args=[brief.pk]),
        "unit": unit,
    }


@login_required
@require_http_methods(["GET", "HEAD"])
def brief_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled progress card; once the job ends, polling stops and `job-finished` fires."""
    brief = _get_brief_for_user(request, pk)
    if brief.job is None:
        raise Http404("This brief has not been drafted yet.")
    context = _status_context(brief)
    response = render(request, "copygen/_brief_status.html", context)
    return stop_polling_when_finished(request, response, context["job"])


# ----------------------------------------------------------------------------- detail


def _settings(brief: Brief) -> list[tuple[str, str]]:
    """The brief's settings in words (label, text)."""
    languages = ", ".join(LOCALE_LABELS.get(c, c) for c in brief.locales)
    if brief.customer_language:
        languages = f"Each customer's own language (else {LOCALE_LABELS.get(brief.locales[0])})"
    per = "customer" if brief.audience == Brief.Audience.CUSTOMERS else "segment"
    rows = [
        ("Audience", brief.get_audience_display()),
        ("Channel", brief.get_channel_display()),
        ("Tone", brief.get_tone_display()),
        ("Languages", languages),
        ("Products per message", str(brief.products_per_message)),
        ("Variants", f"{brief.variants} per {per} and language"),
        ("Occasion", occasion_name(brief.occasion) if brief.occasion else "None"),
    ]
    if brief.channel == "sms":
        rows.append(("SMS segments", str(brief.sms_segments)))
    return rows


def _results_context(request: HttpRequest, brief: Brief) -> dict:
    counts = draft_selectors.draft_counts(brief=brief)
    info = brief.info or {}
    result = (brief.job.result if brief.job and brief.job.result else None) or info.get("result")
    sentiment = info.get("sentiment") or {}
    list_url = reverse("copygen:draft-list")
    reasons = [{"reason": r, "count": n} for r, n in (result or {}).get("dropped_reasons", [])]
    return {
        "brief": brief,
        "catalog": brief.catalog,
        "settings": _settings(brief),
        "hand_picked": selectors.brief_hand_picked(brief=brief)
        if brief.source == Brief.Source.PRODUCTS
        else [],
        "run": services.brief_run(brief) if brief.source == Brief.Source.RECOMMENDATIONS else None,
        "counts": counts,
        "result": result,
        "reasons": reasons,
        "info": info,
        "sentiment": sentiment if sentiment.get("method") == "tfidf+logreg" else None,
        "sentiment_lexicon": sentiment.get("method") == "lexicon",
        "drafts_url": f"{list_url}?brief={brief.pk}",
        "result_languages": [LOCALE_LABELS.get(c, c) for c in (result or {}).get("locales", [])],
        "active": brief.job is not None and brief.job.is_active,
        **_abilities(request),
    }


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def brief_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The brief's settings, its job's progress while it runs, then its drafts' counts;
    htmx (after the `job-finished` event) re-renders only the results."""
    brief = _get_brief_for_user(request, pk)
    context = _results_context(request, brief)
    if wants_partial(request):
        return render(request, "copygen/brief_detail.html#results", context)
    if brief.job is not None:
        context.update(_status_context(brief))
    context["nav"] = "copy"
    return render(request, "copygen/brief_detail.html", context)
