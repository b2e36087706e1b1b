"""API tokens: per-user, revocable, stored as a SHA-256 digest (the secret is shown once)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from marketing.models import Catalog


class Scope(models.TextChoices):
    CONTENT_READ = "content:read", "Read approved content"
    RECOMMENDATIONS_READ = "recommendations:read", "Read recommendations"
    EVENTS_WRITE = "events:write", "Send behaviour events"


# What the token's user must hold, at every request, for a token to use a scope. Every scope
# also needs api.use_api (marketers and admins, migration 0002). Content and recommendations
# name customers by external id, so they need view_customer as well.
SCOPE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Scope.CONTENT_READ: ("api.use_api", "copygen.view_draft", "marketing.view_customer"),
    Scope.RECOMMENDATIONS_READ: (
        "api.use_api",
        "recommendations.view_recommendation",
        "marketing.view_customer",
    ),
    Scope.EVENTS_WRITE: ("api.use_api", "marketing.import_data"),
}


class ApiToken(models.Model):
    """A bearer token of one user. Only ``digest`` (SHA-256 of the whole secret) is stored;
    ``prefix`` (its first 8 characters) lets people tell tokens apart.

    A token never has more rights than its user: each request checks the user's current
    permissions for the scope (SCOPE_PERMISSIONS), so taking a user out of a role or
    deactivating them stops their tokens at once. Revoking sets ``revoked_at``; the row
    stays for the record. A token limited to a catalog goes with that catalog (CASCADE:
    never widened to every catalog).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. Klaviyo sync")
    prefix = models.CharField(max_length=8)
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the secret, hex")
    scopes = models.JSONField(default=list)
    catalog = models.ForeignKey(
        Catalog,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_tokens",
        help_text="Empty: every catalog",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["user", "-created_at"],
                condition=Q(revoked_at__isnull=True),
                name="api_token_user_active",
            )
        ]
        permissions = [("use_api", "Can create and use API tokens")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def scope_labels(self) -> list[str]:
        labels = dict(Scope.choices)
        return [labels.get(s, s) for s in self.scopes]
