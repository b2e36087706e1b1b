"""Recommendation pages, included by marketing.urls under the `recommendations` namespace."""

from django.urls import path

from recommendations import views

app_name = "recommendations"

urlpatterns = [
    path("catalogs/<int:catalog_pk>/recommendations/", views.run_list, name="run-list"),
    path("catalogs/<int:catalog_pk>/recommendations/new/", views.run_create, name="run-create"),
    path("recommendations/runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("recommendations/runs/<int:pk>/status/", views.run_status, name="run-status"),
    path("recommendations/runs/<int:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("recommendations/runs/<int:pk>/segments/", views.run_segments, name="run-segments"),
    path("recommendations/runs/<int:pk>/customers/", views.run_customers, name="run-customers"),
    path(
        "recommendations/runs/<int:pk>/customers/<int:customer_pk>/",
        views.run_preview,
        name="run-preview",
    ),
]
