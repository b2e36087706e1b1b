"""The audit log: who did what to which record, filterable, with a CSV of the filtered log.

Admins only (`marketing.view_auditevent`, granted to the admin role by migration 0007): the
trail shows every user's actions. It holds no personal data by contract (see
`marketing.services.audit`), and the page names objects by type and id only.
"""

from __future__ import annotations

import csv

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe

from marketing import selectors, selectors_audit
from marketing.csvsafe import safe_cell
from marketing.htmx import wants_partial
from marketing.models import AuditEvent
from marketing.permissions import require_perm
from marketing.selectors_audit import AuditFilter

VIEW_PERM = "marketing.view_auditevent"
PAGE_SIZE = 50


class AuditFilterForm(forms.Form):
    """The log's filters; an invalid one is reported and ignored, the others still apply."""

    action = forms.ChoiceField(
        required=False, choices=[("", "Any action"), *AuditEvent.Action.choices]
    )
    user = forms.CharField(required=False, max_length=150)
    object_type = forms.ChoiceField(required=False, label="Object")
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, users: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["object_type"].choices = [
            ("", "Any object"),
            *selectors_audit.object_type_choices(),
        ]
        chosen = (self.data.get("user") or "").strip()
        names = users if not chosen or chosen in users else [*users, chosen]
        self.fields["user"].widget = forms.Select(
            choices=[("", "Anyone"), *((name, name) for name in names)]
        )

    def clean(self) -> dict:
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> AuditFilter:
        """The filters that are valid (call after is_valid())."""
        data = getattr(self, "cleaned_data", {})
        return AuditFilter(
            action=data.get("action") or "",
            user=(data.get("user") or "").strip(),
            object_type=data.get("object_type") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )


def _filters_for_user(request: HttpRequest) -> tuple[AuditFilterForm, AuditFilter]:
    """The bound filter form and its valid filters, once the user may read the trail (403)."""
    require_perm(request.user, VIEW_PERM)
    form = AuditFilterForm(request.GET or None, users=selectors_audit.audit_actors())
    form.is_valid()
    return form, form.filters()


def _query_without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@login_required
@require_safe
def audit_log(request: HttpRequest) -> HttpResponse:
    form, filters = _filters_for_user(request)
    page = selectors.paginate(
        selectors_audit.audit_events(filters=filters),
        page=selectors.page_number(request.GET.get("page")),
        per_page=PAGE_SIZE,
    )
    query = _query_without_page(request)
    context = {
        "form": form,
        "filters": filters,
        "page": page,
        "rows": selectors_audit.audit_rows(page.object_list, admin_links=request.user.is_staff),
        "csv_url": reverse("marketing:audit-log-csv") + (f"?{query}" if query else ""),
        "nav": "audit",
    }
    if wants_partial(request):
        return render(request, "marketing/audit_log.html#log", context)
    return render(request, "marketing/audit_log.html", context)


class _Echo:
    """A write-only file for csv.writer: each row comes back as the text to stream."""

    def write(self, value: str) -> str:
        return value


@login_required
@require_safe
def audit_log_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The whole filtered log as CSV (streamed); every cell is formula-protected."""
    _, filters = _filters_for_user(request)
    writer = csv.writer(_Echo())
    rows = selectors_audit.audit_csv_rows(selectors_audit.audit_events(filters=filters))
    response = StreamingHttpResponse(
        (writer.writerow([safe_cell(cell) for cell in row]) for row in rows),
        content_type="text/csv; charset=utf-8",
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
    return response
