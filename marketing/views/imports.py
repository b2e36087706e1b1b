"""Upload a file, fix the column mapping, start the import job."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from marketing.analytics.importing import ImportFileError
from marketing.forms import MappingForm, UploadForm
from marketing.models import Catalog, Upload
from marketing.services import imports as import_services
from marketing.uploads import ImportSizeLimitHandler, install_size_limit
from marketing.views.jobs import announce_job_start

KIND_HELP = {
    Upload.Kind.PRODUCTS: "One row per product: SKU and title required; price, category, brand, "
    "URLs and stock optional; other columns become attributes.",
    Upload.Kind.CUSTOMERS: "One row per customer: an external id required; email, name, country, "
    "language and consents optional.",
    Upload.Kind.EVENTS: "One row per behaviour event: time required; customer (blank = anonymous), "
    "SKU, kind (view, cart, purchase, return, …), quantity, value.",
    Upload.Kind.ONLINE_RETAIL: "The UCI Online Retail invoice layout (InvoiceNo, StockCode, "
    "Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country): one file gives products, "
    "customers, purchases and returns.",
    Upload.Kind.REVIEWS: "Product reviews with a star rating and text (e.g. the Women's E-Commerce "
    "Clothing Reviews layout); reviewers stay anonymous.",
}


def _get_catalog_for_import(request: HttpRequest, pk: int) -> Catalog:
    catalog = get_object_or_404(Catalog, pk=pk)
    if not request.user.has_perm("marketing.import_data"):
        raise PermissionDenied("You may not import data.")
    return catalog


def _get_upload_for_user(request: HttpRequest, pk: int) -> Upload:
    upload = get_object_or_404(Upload.objects.select_related("catalog"), pk=pk)
    if not request.user.has_perm("marketing.import_data"):
        raise PermissionDenied("You may not import data.")
    if upload.created_by_id != request.user.pk and not request.user.is_superuser:
        raise PermissionDenied("This upload belongs to someone else.")
    return upload


@csrf_exempt
def upload_create(request: HttpRequest, catalog_pk: int) -> HttpResponse:
    """Store an upload; a file over IMPORT_MAX_BYTES is refused while it arrives.

    The size-limit handler must be in place before anything reads the body, and the CSRF
    check reads it (request.POST), so the check runs inside, after the handler is installed
    (Django's "Modifying upload handlers on the fly"). Permission comes first: an outsider's
    body is never parsed at all.
    """
    catalog = _get_catalog_for_import(request, catalog_pk)
    limiter = install_size_limit(request)
    return _upload_create(request, catalog, limiter)


@csrf_protect
def _upload_create(
    request: HttpRequest, catalog: Catalog, limiter: ImportSizeLimitHandler
) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    file_error = None
    if request.method == "POST" and limiter.error:
        # The file was refused on the way in; show why, keeping the chosen kind.
        file_error = limiter.error
        form = UploadForm(initial={"kind": request.POST.get("kind")})
    elif request.method == "POST" and form.is_valid():
        try:
            upload = import_services.upload_create(
                catalog=catalog,
                kind=form.cleaned_data["kind"],
                file=form.cleaned_data["file"],
                user=request.user,
            )
        except ImportFileError as exc:
            file_error = str(exc)
        except ValidationError as exc:
            file_error = "; ".join(exc.messages)
        else:
            return redirect("marketing:upload-mapping", pk=upload.pk)
    return render(
        request,
        "marketing/upload_form.html",
        {
            "catalog": catalog,
            "form": form,
            "file_error": file_error,
            "kind_help": KIND_HELP,
            "nav": "catalogs",
        },
    )


def upload_mapping(request: HttpRequest, pk: int) -> HttpResponse:
    upload = _get_upload_for_user(request, pk)
    columns = upload.detected.get("columns", [])
    form = MappingForm(request.POST or None, kind=upload.kind, columns=columns)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            job = import_services.import_start(
                upload=upload, mapping=form.mapping(), user=request.user
            )
        except ValidationError as exc:
            error = "; ".join(exc.messages)
        else:
            announce_job_start(request, job.pk, f"Import of {upload.original_name} started.")
            return redirect(job)
    sample = upload.detected.get("sample", [])
    return render(
        request,
        "marketing/upload_mapping.html",
        {
            "upload": upload,
            "catalog": upload.catalog,
            "form": form,
            "error": error,
            "columns": columns,
            "sample_rows": [[row.get(c, "") for c in columns] for row in sample],
            "kind_help": KIND_HELP.get(upload.kind, ""),
            "nav": "catalogs",
        },
    )
