"""API tokens in the Django admin: listed without their digest, revoked (audited), never
created or edited here (a token's secret is shown once, on the token page)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from api.models import ApiToken
from api.services.tokens import token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "catalog", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    list_select_related = ("user", "catalog")
    search_fields = ("name", "prefix", "user__username")
    fields = (
        "name",
        "prefix",
        "user",
        "scopes",
        "catalog",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # revoke instead: the row stays for the record

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(token_revoke(token=t, actor=request.user) for t in queryset)
        messages.success(request, f"Revoked {revoked} token{'s' if revoked != 1 else ''}.")
