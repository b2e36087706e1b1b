from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from marketing.views import (
    audit,
    browse,
    catalogs,
    categories,
    erasure,
    health,
    imports,
    jobs,
    pages,
    profiles,
    segments,
)

marketing_patterns = [
    path("", pages.home, name="home"),
    path("about/", pages.about, name="about"),
    # Catalogs (admins create, rename, delete; everyone logged in reads)
    path("catalogs/", catalogs.catalog_list, name="catalog-list"),
    path("catalogs/new/", catalogs.catalog_create, name="catalog-create"),
    path("catalogs/<int:pk>/", catalogs.catalog_detail, name="catalog-detail"),
    path("catalogs/<int:pk>/edit/", catalogs.catalog_update, name="catalog-update"),
    path("catalogs/<int:pk>/delete/", catalogs.catalog_delete, name="catalog-delete"),
    # Browsing
    path("catalogs/<int:catalog_pk>/products/", browse.product_list, name="product-list"),
    path("products/<int:pk>/", browse.product_detail, name="product-detail"),
    path("customers/", browse.customer_list, name="customer-list"),
    path("customers/<int:pk>/", browse.customer_detail, name="customer-detail"),
    path("customers/<int:pk>/erase/", erasure.customer_erase, name="customer-erase"),
    # Imports
    path("catalogs/<int:catalog_pk>/import/", imports.upload_create, name="upload-create"),
    path("uploads/<int:pk>/mapping/", imports.upload_mapping, name="upload-mapping"),
    # Profiles
    path("catalogs/<int:pk>/profiles/refresh/", profiles.profile_refresh, name="profile-refresh"),
    path("catalogs/<int:pk>/models/", profiles.profile_models, name="profile-models"),
    # Segments
    path("catalogs/<int:catalog_pk>/segments/", segments.segment_list, name="segment-list"),
    path("segments/<int:pk>/", segments.segment_detail, name="segment-detail"),
    path("segments/<int:pk>/members.csv", segments.segment_members_csv, name="segment-members-csv"),
    path("catalogs/<int:catalog_pk>/segments/new/", segments.segment_create, name="segment-create"),
    path("catalogs/<int:catalog_pk>/segments/count/", segments.segment_count, name="segment-count"),
    path("segments/<int:pk>/edit/", segments.segment_update, name="segment-update"),
    path("segments/<int:pk>/delete/", segments.segment_delete, name="segment-delete"),
    # Categories (derived from product text; admins rename them)
    path("catalogs/<int:catalog_pk>/categories/", categories.category_list, name="category-list"),
    path("categories/<int:pk>/", categories.category_row, name="category-row"),
    path("categories/<int:pk>/rename/", categories.category_rename, name="category-rename"),
    # Jobs
    path("jobs/", jobs.job_list, name="job-list"),
    path("jobs/<int:pk>/", jobs.job_detail, name="job-detail"),
    path("jobs/<int:pk>/status/", jobs.job_status, name="job-status"),
    path("jobs/<int:pk>/cancel/", jobs.job_cancel, name="job-cancel"),
    path("jobs/<int:pk>/report.csv", jobs.job_report, name="job-report"),
    # Audit log (admins) and the public health check
    path("audit/", audit.audit_log, name="audit-log"),
    path("audit/export.csv", audit.audit_log_csv, name="audit-log-csv"),
    path("health/", health.health, name="health"),
]

urlpatterns = [
    path("", include((marketing_patterns, "marketing"))),
    path("", include("recommendations.urls", namespace="recommendations")),
    path("", include("copygen.urls", namespace="copygen")),
    path("api/v1/", include("api.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
