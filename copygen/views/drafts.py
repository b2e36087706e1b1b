"""Review of drafts: the filtered table with bulk approval, and a draft's page with the inline
editor (live checks as you type), review actions and history.

Everyone with ``copygen.view_draft`` reads; ``copygen.change_draft`` edits (and runs the
live checks); ``copygen.approve_draft`` approves, rejects and reopens. The services check
the permissions again and own every rule (locking, four eyes, checks on current data).

htmx: the filters swap ``#results``; the editor's fields post to ``draft-check`` (debounced)
and swap ``#draft-checks``; Save and the review forms swap ``#draft-main`` and update
``#messages`` out of band. Every form also works as a plain POST (redirect after success).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from copygen import selectors
from copygen.engine.channels import GSM7, FieldSpec, channel_fields, measure, sms_segments
from copygen.engine.checks import CHECK_LABELS, CHECKS
from copygen.engine.types import CheckResult
from copygen.models import CHANNEL_LABELS, LOCALE_LABELS, Draft
from copygen.services import drafts as draft_services
from copygen.services import sources
from marketing import selectors as marketing_selectors
from marketing.htmx import wants_partial
from marketing.permissions import require_perm

VIEW_PERM = "copygen.view_draft"
CHANGE_PERM = draft_services.CHANGE_PERM
APPROVE_PERM = draft_services.APPROVE_PERM
DRAFTS_PER_PAGE = 50
FIELD_PREFIX = "field-"


# ----------------------------------------------------------------------------- fetch


def _get_draft_for_user(request: HttpRequest, pk: int, *, perm: str | None = None) -> Draft:
    """The draft (404 if missing), once the user may see drafts and hold ``perm`` (403)."""
    draft = selectors.draft_get(pk=pk)
    require_perm(request.user, VIEW_PERM)
    if perm:
        require_perm(request.user, perm)
    return draft


# ----------------------------------------------------------------------------- filters


def _choice(label: str, choices) -> forms.ChoiceField:
    return forms.ChoiceField(label=label, required=False, choices=[("", "Any"), *choices])


class DraftFilterForm(forms.Form):
    """The drafts table's filters (GET). Invalid values are ignored with a message."""

    catalog = forms.TypedChoiceField(label="Catalog", required=False, coerce=int, empty_value=None)
    brief = forms.TypedChoiceField(label="Brief", required=False, coerce=int, empty_value=None)
    segment = forms.TypedChoiceField(label="Segment", required=False, coerce=int, empty_value=None)
    status = _choice("Status", Draft.Status.choices)
    locale = _choice("Locale", LOCALE_LABELS.items())
    channel = _choice("Channel", CHANNEL_LABELS.items())
    failing = _choice("Failing check", [(name, CHECK_LABELS.get(name, name)) for name in CHECKS])
    passes = _choice("Checks", [("yes", "Pass"), ("no", "Fail")])
    customer = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, options: dict[str, list], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["catalog"].choices = [("", "Any")] + [
            (c.pk, c.name) for c in options["catalogs"]
        ]
        self.fields["brief"].choices = [("", "Any")] + [(b.pk, b.name) for b in options["briefs"]]
        self.fields["segment"].choices = [("", "Any")] + [
            (s.pk, s.name) for s in options["segments"]
        ]

    def filters(self) -> dict[str, Any]:
        """Keyword values for selectors.draft_list from the fields that were valid."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return {key: data[key] for key in selectors.FILTER_KEYS if data.get(key) not in ("", None)}


def _pk_param(data, key: str) -> int | None:
    raw = str(data.get(key, "") if data else "")
    return int(raw) if raw.isdigit() and len(raw) < 12 else None


def _filter_form(data) -> DraftFilterForm:
    options = selectors.draft_filter_options(
        catalog=_pk_param(data, "catalog"),
        brief=_pk_param(data, "brief"),
        segment=_pk_param(data, "segment"),
    )
    form = DraftFilterForm(data or None, options=options)
    form.is_valid()
    return form


def _list_url(filters: dict[str, Any]) -> str:
    url = reverse("copygen:draft-list")
    return f"{url}?{urlencode(filters)}" if filters else url


# ----------------------------------------------------------------------------- list


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def draft_list(request: HttpRequest) -> HttpResponse:
    require_perm(request.user, VIEW_PERM)
    form = _filter_form(request.GET)
    filters = form.filters()
    page = marketing_selectors.paginate(
        selectors.draft_list(filters=filters).values_list("pk", flat=True),
        page=marketing_selectors.page_number(request.GET.get("page")),
        per_page=DRAFTS_PER_PAGE,
    )
    page.object_list = selectors.draft_rows(ids=page.object_list)
    context = {
        "form": form,
        "filters": filters,
        "filter_items": sorted(filters.items()),
        "page": page,
        "drafts": page.object_list,
        "filtered": bool(filters),
        "can_approve": request.user.has_perm(APPROVE_PERM),
        "bulk_max": draft_services.BULK_APPROVE_MAX,
        "four_eyes": settings.COPY_FOUR_EYES,
        "nav": "copy",
    }
    if wants_partial(request):
        return render(request, "copygen/draft_list.html#results", context)
    return render(request, "copygen/draft_list.html", context)


@login_required
@require_POST
def draft_bulk_approve(request: HttpRequest) -> HttpResponse:
    """Approve the ticked drafts (``ids``), or with ``scope=filter`` every pending draft of the
    filter that passes every check; the result says what was skipped and why."""
    require_perm(request.user, VIEW_PERM)
    require_perm(request.user, APPROVE_PERM)
    form = _filter_form(request.POST)
    filters = form.filters()
    if request.POST.get("scope") == "filter":
        # Every pending draft of the filter: the service re-checks each and says how many
        # it skipped and why.
        candidates: Any = selectors.draft_list(filters=filters).filter(status=Draft.Status.PENDING)
    else:
        candidates = [int(v) for v in request.POST.getlist("ids") if v.isdigit() and len(v) < 12][
            : draft_services.BULK_APPROVE_MAX
        ]
        if not candidates:
            messages.warning(request, "Tick the drafts to approve first.")
            return redirect(_list_url(filters))
    result = draft_services.drafts_bulk_approve(user=request.user, drafts=candidates)
    level = messages.SUCCESS if result["approved"] else messages.WARNING
    messages.add_message(request, level, result["message"])
    return redirect(_list_url(filters))


# ----------------------------------------------------------------------------- detail


def _limit_text(spec: FieldSpec, sms_allowed: int) -> str:
    if spec.kind == "sms":
        return f"{sms_allowed} SMS segment{'s' if sms_allowed != 1 else ''}"
    if spec.kind == "list":
        each = f", each at most {spec.max_len}" if spec.max_len else ""
        return f"{spec.min_items}–{spec.max_items} items, one per line{each}"
    if spec.min_len and spec.max_len:
        return f"{spec.min_len}–{spec.max_len} characters"
    if spec.max_len:
        return f"at most {spec.max_len} characters"
    return ""


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def _editor_fields(draft: Draft, values: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per channel field: how to render it and its current text."""
    out = []
    for spec in channel_fields(draft.channel):
        value = values.get(spec.name, [] if spec.kind == "list" else "")
        text = _as_text(value)
        single = spec.kind == "text" and not spec.multiline and (spec.max_len or 999) <= 60
        rows = 3
        if spec.kind == "list":  # room for one more item than there is
            n = len(value) if isinstance(value, list) else 0
            rows = min(spec.max_items or 15, max(4, n + 1))
        elif spec.multiline:
            rows = 8
        out.append(
            {
                "name": spec.name,
                "input_name": FIELD_PREFIX + spec.name,
                "label": spec.label,
                "kind": spec.kind,
                "single": single,
                "rows": rows,
                "text": text,
                "items": value if isinstance(value, list) else None,
                "limit": _limit_text(spec, draft.brief.sms_segments),
                "required": spec.required,
            }
        )
    return out


def _field_counts(draft: Draft, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Per field, its length as its limit counts it, and whether it is outside the limit."""
    allowed = draft.brief.sms_segments
    out = []
    for spec in channel_fields(draft.channel):
        value = values.get(spec.name)
        if spec.kind == "list":
            items = [str(v) for v in (value or []) if str(v).strip()]
            lengths = [measure(v, spec) for v in items]
            longest = max(lengths, default=0)
            over_items = sum(1 for n in lengths if spec.max_len and n > spec.max_len)
            bad_count = len(items) < spec.min_items or (
                spec.max_items is not None and len(items) > spec.max_items
            )
            text = f"{len(items)} of {spec.min_items}–{spec.max_items}; longest {longest}"
            if spec.max_len:
                text += f"/{spec.max_len}"
            if over_items:
                text += f" ({over_items} too long)"
            out.append({"label": spec.label, "text": text, "over": bad_count or bool(over_items)})
        elif spec.kind == "sms":
            encoding, segments, units = sms_segments(_as_text(value))
            unit = "characters" if encoding == GSM7 else "UCS-2 units"
            text = f"{units} {unit} ({encoding}) · {segments} segment"
            text += f"{'' if segments == 1 else 's'}, {allowed} allowed"
            out.append({"label": spec.label, "text": text, "over": segments > allowed})
        else:
            n = measure(_as_text(value), spec)
            over = bool(spec.max_len and n > spec.max_len) or bool(n and n < spec.min_len)
            text = f"{n}/{spec.max_len}" if spec.max_len else str(n)
            if spec.min_len:
                text += f" (at least {spec.min_len})"
            out.append({"label": spec.label, "text": text, "over": over})
    return out


_CHECK_ORDER = {name: i for i, name in enumerate(CHECKS)}


def _check_rows(results: list[CheckResult]) -> dict[str, Any]:
    """Failures for display (errors first, then in check order) and the checks that passed."""
    failures = [
        {
            "check": r.check,
            "label": CHECK_LABELS.get(r.check, r.check),
            "field": r.field,
            "message": r.message,
            "severity": r.severity,
        }
        for r in results
        if not r.ok
    ]
    failures.sort(key=lambda f: (f["severity"] != "error", _CHECK_ORDER.get(f["check"], 99)))
    failed = {f["check"] for f in failures}
    return {
        "failures": failures,
        "errors": sum(1 for f in failures if f["severity"] == "error"),
        "warnings": sum(1 for f in failures if f["severity"] != "error"),
        "passed": [CHECK_LABELS.get(n, n) for n in CHECKS if n not in failed],
    }


def _posted_fields(request: HttpRequest, draft: Draft) -> dict[str, Any]:
    """The editor's fields from the POST: lists as one item per line (blank lines dropped)."""
    values: dict[str, Any] = {}
    for spec in channel_fields(draft.channel):
        key = FIELD_PREFIX + spec.name
        if key not in request.POST:
            continue
        raw = request.POST.get(key, "")
        if spec.kind == "list":
            values[spec.name] = [line.strip() for line in raw.splitlines() if line.strip()]
        else:
            values[spec.name] = raw
    return values


def _errors_of(exc: ValidationError) -> dict[str, list[str]]:
    """Messages by field name; errors of no one field under "form"."""
    if hasattr(exc, "error_dict"):
        return {
            ("form" if key == NON_FIELD_ERRORS else key): [m for e in errs for m in e.messages]
            for key, errs in exc.error_dict.items()
        }
    return {"form": list(exc.messages)}


def _detail_context(
    request: HttpRequest,
    draft: Draft,
    *,
    values: dict[str, Any] | None = None,
    edit_errors: dict[str, list[str]] | None = None,
    review_errors: dict[str, list[str]] | None = None,
    comment: str = "",
) -> dict[str, Any]:
    """Everything #draft-main shows. Checks run now on the saved text against current product
    data (a price changed since drafting shows here before anyone approves)."""
    user = request.user
    saved_results = sources.check_fields(draft, draft.fields, source=draft.source)
    fresh = _check_rows(saved_results)
    if values is None:
        values = draft.fields
        shown = fresh
    else:
        try:
            shown = _check_rows(draft_services.draft_preview(draft=draft, fields=values))
        except ValidationError:
            shown = fresh
    can_edit = user.has_perm(CHANGE_PERM) and not draft.is_locked
    can_approve = user.has_perm(APPROVE_PERM)
    blocker = ""
    if can_approve and not draft.is_locked:
        if draft_services.four_eyes_blocks(draft=draft, user=user):
            blocker = draft_services.FOUR_EYES_MESSAGE
        elif fresh["errors"]:
            names = dict.fromkeys(f["label"] for f in fresh["failures"] if f["severity"] == "error")
            blocker = f"It fails {', '.join(names)}; edit it first."
    history = selectors.draft_history(draft=draft)
    return {
        "draft": draft,
        "brief": draft.brief,
        "channel_label": CHANNEL_LABELS.get(draft.channel, draft.channel),
        "locale_label": LOCALE_LABELS.get(draft.locale, draft.locale),
        "editor": _editor_fields(draft, values),
        "counts": _field_counts(draft, values),
        "checks": shown,
        "saved_checks": fresh,
        "previewing": values is not draft.fields,
        "edit_errors": edit_errors or {},
        "review_errors": review_errors or {},
        "comment": comment,
        "can_edit": can_edit,
        "can_approve": can_approve,
        "can_reject": can_approve and draft.status == Draft.Status.PENDING,
        "can_reopen": can_approve and draft.is_locked,
        "approve_blocker": blocker,
        "four_eyes": settings.COPY_FOUR_EYES,
        "history": history,
        "last_review": next((e for e in history if e.kind == "review"), None),
        "nav": "copy",
    }


def _render_main(
    request: HttpRequest, draft: Draft, *, status: int = 200, **kwargs: Any
) -> HttpResponse:
    """#draft-main for htmx (with #messages out of band), else the whole page."""
    context = _detail_context(request, draft, **kwargs)
    if wants_partial(request):
        context["messages_oob"] = True
        return render(request, "copygen/draft_detail.html#main", context, status=status)
    context["products"] = selectors.draft_products(draft=draft)
    return render(request, "copygen/draft_detail.html", context, status=status)


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def draft_detail(request: HttpRequest, pk: int) -> HttpResponse:
    draft = _get_draft_for_user(request, pk)
    return _render_main(request, draft)


@login_required
@require_POST
def draft_check(request: HttpRequest, pk: int) -> HttpResponse:
    """The live checks of the editor's text as typed (nothing is saved): #draft-checks."""
    draft = _get_draft_for_user(request, pk, perm=CHANGE_PERM)
    values = _posted_fields(request, draft)
    errors: list[str] = []
    try:
        results = draft_services.draft_preview(draft=draft, fields=values)
    except ValidationError as exc:
        errors = [m for ms in _errors_of(exc).values() for m in ms]
        results = []
    context = {
        "draft": draft,
        "checks": _check_rows(results),
        "counts": _field_counts(draft, values),
        "previewing": True,
        "check_errors": errors,
    }
    return render(request, "copygen/_draft_checks.html", context)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def draft_edit(request: HttpRequest, pk: int) -> HttpResponse:
    draft = _get_draft_for_user(request, pk, perm=CHANGE_PERM)
    values = _posted_fields(request, draft)
    before = draft.revision
    try:
        draft = draft_services.draft_edit(draft=draft, user=request.user, fields=values)
    except ValidationError as exc:
        draft.refresh_from_db()
        return _render_main(request, draft, values=values, edit_errors=_errors_of(exc))
    if draft.revision == before:
        messages.info(request, "Nothing changed, so nothing was saved.")
    elif draft.passes:
        messages.success(request, f"Saved revision {draft.revision}; it passes every check.")
    else:
        messages.warning(
            request,
            f"Saved revision {draft.revision}, but it fails "
            f"{draft_services.check_labels(_failing_list(draft))}: it cannot be approved yet.",
        )
    if wants_partial(request):
        return _render_main(request, selectors.draft_get(pk=draft.pk))
    return redirect(draft)


def _failing_list(draft: Draft) -> list[str]:
    return [n for n in draft.failing.strip(",").split(",") if n]


@login_required
@require_POST
@vary_on_headers("HX-Request")
def draft_review(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve (``action=approve``) or reject (``action=reject``, comment required)."""
    draft = _get_draft_for_user(request, pk, perm=APPROVE_PERM)
    action = request.POST.get("action", "")
    comment = request.POST.get("comment", "")
    try:
        if action == "approve":
            draft = draft_services.draft_approve(draft=draft, user=request.user, comment=comment)
            messages.success(request, "Approved. The draft is locked until an approver reopens it.")
        elif action == "reject":
            draft = draft_services.draft_reject(draft=draft, user=request.user, comment=comment)
            messages.success(request, "Rejected. A marketer's edit puts it back in review.")
        else:
            raise ValidationError("Choose approve or reject.")
    except ValidationError as exc:
        draft = selectors.draft_get(pk=draft.pk)  # the checks may have been refreshed
        return _render_main(request, draft, review_errors=_errors_of(exc), comment=comment)
    if wants_partial(request):
        return _render_main(request, selectors.draft_get(pk=draft.pk))
    return redirect(draft)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def draft_reopen(request: HttpRequest, pk: int) -> HttpResponse:
    draft = _get_draft_for_user(request, pk, perm=APPROVE_PERM)
    comment = request.POST.get("comment", "")
    try:
        draft = draft_services.draft_reopen(draft=draft, user=request.user, comment=comment)
    except ValidationError as exc:
        draft = selectors.draft_get(pk=draft.pk)
        return _render_main(request, draft, review_errors=_errors_of(exc), comment=comment)
    messages.success(request, "Reopened: the draft can be edited and reviewed again.")
    if wants_partial(request):
        return _render_main(request, selectors.draft_get(pk=draft.pk))
    return redirect(draft)
