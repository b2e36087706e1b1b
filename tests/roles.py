"""The role groups as the data migrations make them, for tests whose flush removed them.

Transactional tests (live_server, real workers) end with a flush that empties auth_group;
post_migrate brings the permissions back, but not the data migrations' roles.
"""

from __future__ import annotations

import importlib

from django.contrib.auth.models import Group, Permission

# Every data migration that grants the roles permissions, in order: "name" is a marketing
# migration, "app.name" one of another app.
ROLE_MIGRATIONS = (
    "0002_roles",
    "0007_roles_segments_categories",
    "recommendations.0002_roles",
    "copygen.0002_roles",
    "copygen.0003_exports",
    "copygen.0004_campaign_results",
    "api.0002_roles",
)


def _module(migration: str) -> str:
    app, _, name = migration.rpartition(".")
    return f"{app or 'marketing'}.migrations.{name}"


def role_permissions(name: str) -> list[tuple[str, str]]:
    """(app_label, codename) of every permission the migrations give role ``name``."""
    return [
        perm
        for migration in ROLE_MIGRATIONS
        for perm in importlib.import_module(_module(migration)).ROLE_PERMISSIONS.get(name, [])
    ]


def role_group(name: str) -> Group:
    """The role's group, rebuilt with its permissions when a flush removed it."""
    group, created = Group.objects.get_or_create(name=name)
    if created:
        group.permissions.set(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in role_permissions(name)
        )
    return group
