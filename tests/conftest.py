"""Shared fixtures: one user per role (alice admin, mary marketer, avery approver, nora none)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.roles import role_group


def _user(username: str, role: str | None) -> User:
    user = User.objects.create_user(username, f"{username}@example.test", "pw-" + username)
    if role:
        user.groups.add(role_group(role))
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
    # Tests change catalogs within seconds: the copy checks' title index must see it.
    settings.COPY_CHECK_INDEX_TTL_S = 0
