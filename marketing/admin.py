"""Django admin for the shared domain, tuned for big tables.

Events run to millions of rows: their changelist never counts the whole table, foreign
keys to customers and products are raw ids (no select with 100k options), and every list
fetches its related rows in the same query. Catalogs are validated by the catalog pages'
form and saved and deleted through the catalog services, so the admin cannot store a catalog
an import would trip over, and deletes set-wise instead of listing every event on the
confirmation page.

Users: staff who are not superusers may manage accounts (with the auth permissions) but can
neither grant superuser status or single permissions, nor change or delete a superuser.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import cached_property

from marketing import selectors
from marketing.forms import CatalogAdminForm
from marketing.models import (
    AuditEvent,
    Catalog,
    Customer,
    DerivedCategory,
    Event,
    Job,
    Product,
    Profile,
    ProfileRun,
    Segment,
    SegmentMembership,
    Upload,
)
from marketing.services import catalogs as catalog_services
from marketing.services import customers as customer_services


class EstimatedCountPaginator(Paginator):
    """Counts at most a few thousand rows; past that, PostgreSQL's planner estimate.

    The admin shows "1 2 3 … 9,800" from this number; an estimate that is slightly off only
    moves the last page link, while an exact COUNT(*) over all events costs seconds.
    """

    @cached_property
    def count(self) -> int:
        if connection.vendor != "postgresql":
            # SQLite has no row estimates; the embedded database is small enough to count.
            return super().count
        return selectors.count_bounded(self.object_list, cap=10_000, estimate=True).value


@admin.register(Catalog)
class CatalogAdmin(admin.ModelAdmin):
    form = CatalogAdminForm
    list_display = ("name", "currency", "default_language", "timezone", "products", "created_at")
    search_fields = ("name",)
    list_filter = ("currency",)
    readonly_fields = ("created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Catalog]:
        products = (
            Product.objects.filter(catalog=OuterRef("pk"))
            .order_by()
            .values("catalog")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(product_count=Coalesce(Subquery(products), 0))

    @admin.display(description="Products", ordering="product_count")
    def products(self, obj: Catalog) -> int:
        return obj.product_count

    def save_model(
        self, request: HttpRequest, obj: Catalog, form: CatalogAdminForm, change: bool
    ) -> None:
        """Save through the services, which check the permission and the rules once more."""
        values = {name: form.cleaned_data[name] for name in CatalogAdminForm.Meta.fields}
        if change:
            catalog_services.catalog_update(catalog=obj, **values, user=request.user)
            return
        created = catalog_services.catalog_create(**values, user=request.user)
        for field in Catalog._meta.concrete_fields:  # the admin logs and redirects with `obj`
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False

    def get_deleted_objects(self, objs, request: HttpRequest):
        """Summarise instead of listing every product and event of the catalog.

        A catalog with a queued or running import is "protected": the admin then refuses
        the delete, as the catalog pages do (the service checks again when it deletes).
        """
        summary, protected = [], []
        for catalog in objs:
            stats = selectors.catalog_stats(catalog=catalog)
            summary.append(
                f"Catalog “{catalog}” with {stats.products} products, {stats.events} events "
                f"and {stats.uploads} uploads (customers and jobs stay)"
            )
            protected.extend(
                f"{job} into “{catalog}” is {job.get_status_display().lower()}: "
                "cancel it or wait for it to finish"
                for job in selectors.catalog_active_imports(catalog=catalog)
            )
        perms_needed = set()
        if not self.has_delete_permission(request):
            perms_needed.add(self.opts.verbose_name)
        return summary, {self.opts.verbose_name_plural: len(summary)}, perms_needed, protected

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except catalog_services.CatalogBusy as exc:  # an import started after the check
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return redirect(reverse("admin:marketing_catalog_change", args=[object_id]))

    def delete_model(self, request: HttpRequest, obj: Catalog) -> None:
        catalog_services.catalog_delete(catalog=obj, user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Catalog]) -> None:
        for catalog in queryset:
            try:
                catalog_services.catalog_delete(catalog=catalog, user=request.user)
            except catalog_services.CatalogBusy as exc:
                self.message_user(
                    request,
                    f"“{catalog}” was not deleted: {' '.join(exc.messages)}",
                    messages.ERROR,
                )


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = (
        "sku",
        "title",
        "catalog",
        "category",
        "brand",
        "price",
        "in_stock",
        "updated_at",
    )
    list_filter = ("catalog", "in_stock")
    search_fields = ("=sku", "title")
    list_select_related = ("catalog",)
    readonly_fields = ("created_at", "updated_at")
    show_full_result_count = False


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = (
        "external_id",
        "name",
        "email",
        "country",
        "language",
        "consent_email",
        "consent_sms",
        "consent_push",
        "consent_ads",
        "created_at",
        "erased_at",
    )
    list_filter = (
        ("erased_at", admin.EmptyFieldListFilter),
        "consent_email",
        "consent_sms",
        "consent_push",
        "consent_ads",
        "country",
    )
    search_fields = ("=external_id", "name", "email")
    readonly_fields = ("erased_at", "created_at", "updated_at")
    show_full_result_count = False
    actions = ["erase_selected"]

    # A plain delete would skip the audit trail and leave the customer's files and reports:
    # customers go only through the erasure service (the action below, or the customer page).
    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        """An erased customer stays anonymous: no one may type data back into the row."""
        if obj is not None and obj.erased_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(customer_services.ERASURE_PERM)

    @admin.action(description="Erase selected customers", permissions=["erase"])
    def erase_selected(self, request: HttpRequest, queryset: QuerySet[Customer]):
        """Django's intermediate confirmation, then the erasure service for each customer."""
        customers = list(queryset.filter(erased_at__isnull=True).order_by("pk"))
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Erase customers?",
                "opts": self.opts,
                "customers": [
                    (c, customer_services.customer_erasure_preview(customer=c)) for c in customers
                ],
                "already_erased": queryset.filter(erased_at__isnull=False).count(),
                "active_imports": customer_services.active_imports(),
                "queryset": queryset,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/marketing/customer/erase_selected_confirmation.html", context
            )
        # One read of the stored files for all of them, before any erasure locks anything.
        scan = customer_services.customer_erasure_scan(customers=customers)
        erased, stopped = 0, False
        for customer in customers:
            try:
                result = customer_services.customer_erase(
                    user=request.user, customer=customer, scan=scan
                )
            except customer_services.CustomerErasureError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                stopped = True
                break
            except Customer.DoesNotExist:
                continue
            erased += not result.already_erased
        if stopped:
            self.message_user(
                request,
                f"Erased {erased} customer(s); the others were not erased.",
                messages.WARNING,
            )
        else:
            self.message_user(request, f"Erased {erased} customer(s).", messages.SUCCESS)
        return None


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "occurred_at",
        "kind",
        "catalog",
        "customer",
        "product",
        "quantity",
        "value",
        "source",
    )
    list_filter = ("kind", "catalog")
    # Exact matches only: a substring search would scan every event.
    search_fields = ("=source", "=customer__external_id")
    search_help_text = "Exact order/invoice reference or customer external id."
    raw_id_fields = ("customer", "product")
    # Not select_related: joining before the ORDER BY … LIMIT makes PostgreSQL join all
    # events first (2 s at 1M rows). The page's 100 rows fetch their relations afterwards.
    list_select_related = ()
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would scan every event
    paginator = EstimatedCountPaginator

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).prefetch_related("catalog", "customer", "product")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Events come from imports: their id is a hash of the natural key, not typed in."""
        return False


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ("original_name", "catalog", "kind", "file_size", "created_by", "created_at")
    list_filter = ("kind", "catalog")
    search_fields = ("original_name",)
    list_select_related = ("catalog", "created_by")
    raw_id_fields = ("created_by",)
    readonly_fields = ("size", "detected", "created_at")

    @admin.display(description="Size", ordering="size")
    def file_size(self, obj: Upload) -> str:
        return filesizeformat(obj.size)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "kind",
        "status",
        "catalog",
        "progress",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "kind", "catalog")
    search_fields = ("message", "celery_id", "worker")
    list_select_related = ("catalog", "created_by")
    raw_id_fields = ("created_by",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "progress_done",
        "progress_total",
        "attempts",
        "worker",
        "celery_id",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )

    @admin.display(description="Progress")
    def progress(self, obj: Job) -> str:
        return f"{obj.percent}%"


@admin.register(ProfileRun)
class ProfileRunAdmin(admin.ModelAdmin):
    """Written by profile refresh jobs; read here, never typed in."""

    list_display = ("__str__", "catalog", "as_of", "customers", "horizon_days", "created_at")
    list_filter = ("catalog",)
    list_select_related = ("catalog",)
    raw_id_fields = ("catalog", "job")
    readonly_fields = [f.name for f in ProfileRun._meta.concrete_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    """Computed by profile refresh jobs (each replaces the catalog's profiles): read-only."""

    list_display = (
        "customer",
        "catalog",
        "rfm_segment",
        "recency_days",
        "frequency",
        "monetary",
        "clv_12m",
        "churn_probability",
    )
    list_filter = ("catalog", "rfm_segment")
    search_fields = ("customer__external_id",)
    list_select_related = ("catalog", "customer")
    raw_id_fields = ("catalog", "customer", "run")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class TailorUserAdmin(UserAdmin):
    """Django's user admin, minus the ways a non-superuser could raise their own rights."""

    SUPERUSER_ONLY_FIELDS = ("is_superuser", "user_permissions")

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += self.SUPERUSER_ONLY_FIELDS
        return fields

    def _protects(self, request: HttpRequest, obj) -> bool:
        """A superuser's account is out of reach for everyone who is not one."""
        return obj is not None and obj.is_superuser and not request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return not self._protects(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return not self._protects(request, obj) and super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request: HttpRequest):
        """The bulk delete action checks no object permission: refuse superusers here."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if any(self._protects(request, user) for user in objs):
            perms_needed = {*perms_needed, "superuser accounts"}
        return deleted, counts, perms_needed, protected


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """RFM and learned segments are rewritten by each profile refresh: read-only here."""

    list_display = ("name", "kind", "catalog", "size", "revenue_share", "refreshed_at")
    list_filter = ("kind", "catalog")
    list_select_related = ("catalog",)
    search_fields = ("name",)
    raw_id_fields = ("catalog", "created_by")
    readonly_fields = [f.name for f in Segment._meta.concrete_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        """Rule segments are deleted on their page (the service audits it and serialises with
        profile refreshes); the others are the refresh's to replace."""
        return False


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(admin.ModelAdmin):
    """Written by profile refreshes and rule materialisation: read-only here."""

    list_display = ("segment", "customer")
    list_select_related = ("segment", "customer")
    raw_id_fields = ("segment", "customer")
    list_filter = ("segment__kind",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # a removed member would come back with the next refresh, unaudited


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail, read-only: entries are written by the services, never by hand."""

    list_display = ("created_at", "action", "actor_username", "object_type", "object_id", "summary")
    list_filter = ("action", "object_type")
    search_fields = ("=object_id", "actor_username")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.concrete_fields]

    @admin.display(description="Details")
    def summary(self, obj: AuditEvent) -> str:
        return ", ".join(f"{key} {value}" for key, value in (obj.details or {}).items())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class DerivedCategoryAdminForm(forms.ModelForm):
    """Checks a new name as the rename service does, so the admin shows errors on the field."""

    class Meta:
        model = DerivedCategory
        fields = ("name",)

    def clean_name(self) -> str:
        # Imported here: it loads scikit-learn, and every process (workers too) imports the
        # admin through django.setup().
        from marketing.services import categories as category_services

        try:
            return category_services.category_name_check(
                category=self.instance, name=self.cleaned_data.get("name", "")
            )
        except ValidationError as exc:  # {"name": …} from the service: this field's errors
            raise forms.ValidationError(exc.messages) from exc


class _RenameRefused(Exception):
    """The rename service refused what the form accepted (a concurrent rename or removal)."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(" ".join(messages))
        self.messages = messages


@admin.register(DerivedCategory)
class DerivedCategoryAdmin(admin.ModelAdmin):
    """Derived by profile refreshes; admins only rename them, through the service (which
    audits the rename and refreshes profiles). No adding or deleting: derivation owns that."""

    form = DerivedCategoryAdminForm
    list_display = ("name", "auto_name", "catalog", "size", "renamed_by", "renamed_at")
    list_filter = ("catalog",)
    list_select_related = ("catalog", "renamed_by")
    search_fields = ("name", "auto_name")
    fields = ("catalog", "name", "auto_name", "terms", "size", "renamed_by", "renamed_at")
    readonly_fields = ("catalog", "auto_name", "terms", "size", "renamed_by", "renamed_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        """A rename the service refuses after the form passed rolls the whole change back
        (no history entry, no "changed successfully") and says why."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _RenameRefused as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return redirect(request.get_full_path())

    def save_model(
        self, request: HttpRequest, obj: DerivedCategory, form: forms.ModelForm, change: bool
    ) -> None:
        from marketing.services import categories as category_services  # as in clean_name

        try:
            renamed = category_services.category_rename(
                user=request.user, category=obj, name=form.cleaned_data["name"]
            )
        except ValidationError as exc:  # removed or renamed concurrently since the form
            raise _RenameRefused(exc.messages) from exc
        obj.refresh_from_db()
        if renamed.refresh_job is not None:
            self.message_user(
                request, "Customer profiles are being refreshed with the new name.", messages.INFO
            )
