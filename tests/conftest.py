"""Shared fixtures: one user per role (alice admin, mary marketer, avery approver, nora none)."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth.models import Group, Permission, User

ROLE_PERMISSIONS = importlib.import_module("marketing.migrations.0002_roles").ROLE_PERMISSIONS


def _role(name: str) -> Group:
    """The role's group, rebuilt as the migration made it when a flush removed it.

    Transactional tests (live_server, real workers) end with a flush that empties
    auth_group; post_migrate brings the permissions back, but not the data migration's roles.
    """
    group, created = Group.objects.get_or_create(name=name)
    if created:
        group.permissions.set(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in ROLE_PERMISSIONS[name]
        )
    return group


def _user(username: str, role: str | None) -> User:
    user = User.objects.create_user(username, f"{username}@example.test", "pw-" + username)
    if role:
        user.groups.add(_role(role))
    return user


@pytest.fixture
def admin_user(db) -> User:
    return _user("alice", "admin")


@pytest.fixture
def marketer(db) -> User:
    return _user("mary", "marketer")


@pytest.fixture
def approver(db) -> User:
    return _user("avery", "approver")


@pytest.fixture
def no_role_user(db) -> User:
    return _user("nora", None)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Uploads and reports of a test go to its own folder."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
