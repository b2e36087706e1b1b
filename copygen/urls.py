"""Copy studio pages, included by marketing.urls under the `copygen` namespace."""

from django.urls import path

from copygen.views import briefs, drafts, exports, results, results_import

app_name = "copygen"

urlpatterns = [
    # Briefs and their drafting jobs
    path("copy/", briefs.brief_list, name="brief-list"),
    path("copy/briefs/new/", briefs.brief_create, name="brief-create"),
    path("copy/briefs/<int:pk>/", briefs.brief_detail, name="brief-detail"),
    path("copy/briefs/<int:pk>/edit/", briefs.brief_update, name="brief-update"),
    path("copy/briefs/<int:pk>/delete/", briefs.brief_delete, name="brief-delete"),
    path("copy/briefs/<int:pk>/draft/", briefs.brief_draft, name="brief-draft"),
    path("copy/briefs/<int:pk>/status/", briefs.brief_status, name="brief-status"),
    # Exports of approved copy
    path("copy/briefs/<int:pk>/export/", exports.export_create, name="export-create"),
    path("copy/briefs/<int:pk>/exports/", exports.export_panel, name="export-panel"),
    path("copy/exports/", exports.export_list, name="export-list"),
    path("copy/exports/<int:pk>/", exports.export_detail, name="export-detail"),
    path("copy/exports/<int:pk>/status/", exports.export_status, name="export-status"),
    path("copy/exports/<int:pk>/download/", exports.export_download, name="export-download"),
    # Campaign results import (the tool's per-recipient report of an export)
    path(
        "copy/exports/<int:pk>/results/import/",
        results_import.results_import_upload,
        name="results-import",
    ),
    path(
        "copy/exports/<int:pk>/results/import/<int:upload_pk>/",
        results_import.results_import_mapping,
        name="results-import-mapping",
    ),
    path(
        "copy/results/imports/<int:pk>/",
        results_import.results_import_detail,
        name="results-import-detail",
    ),
    path(
        "copy/results/imports/<int:pk>/status/",
        results_import.results_import_status,
        name="results-import-status",
    ),
    # Campaign results
    path("copy/briefs/<int:pk>/results/", results.brief_results, name="brief-results"),
    path(
        "copy/briefs/<int:pk>/results/panel/",
        results.brief_results_panel,
        name="brief-results-panel",
    ),
    path("copy/results/", results.results_overview, name="results-overview"),
    # Review
    path("copy/drafts/", drafts.draft_list, name="draft-list"),
    path("copy/drafts/bulk-approve/", drafts.draft_bulk_approve, name="draft-bulk-approve"),
    path("copy/drafts/<int:pk>/", drafts.draft_detail, name="draft-detail"),
    path("copy/drafts/<int:pk>/check/", drafts.draft_check, name="draft-check"),
    path("copy/drafts/<int:pk>/edit/", drafts.draft_edit, name="draft-edit"),
    path("copy/drafts/<int:pk>/review/", drafts.draft_review, name="draft-review"),
    path("copy/drafts/<int:pk>/reopen/", drafts.draft_reopen, name="draft-reopen"),
]
