"""The API (JSON, bearer tokens) and the token pages, under /api/v1/ (namespace `api`)."""

from django.urls import path, re_path

from api.views import endpoints, tokens

app_name = "api"

urlpatterns = [
    # Token pages (people, logged in)
    path("tokens/", tokens.token_list, name="token-list"),
    path("tokens/new/", tokens.token_create, name="token-create"),
    path("tokens/<int:pk>/revoke/", tokens.token_revoke, name="token-revoke"),
    # JSON endpoints (tokens)
    path("openapi.json", endpoints.openapi, name="openapi"),
    path("briefs/<int:brief_id>/content", endpoints.brief_content, name="brief-content"),
    path("segments/<int:segment_id>/content", endpoints.segment_content, name="segment-content"),
    path(
        "customers/<path:external_id>/content",
        endpoints.customer_content,
        name="customer-content",
    ),
    path(
        "customers/<path:external_id>/recommendations",
        endpoints.customer_recommendations,
        name="customer-recommendations",
    ),
    path("events", endpoints.events, name="events"),
    # Anything else under /api/v1/ answers a JSON 404, not the HTML page.
    re_path(r"^(?!tokens\b)(?P<path>.*)$", endpoints.not_found, name="not-found"),
]
