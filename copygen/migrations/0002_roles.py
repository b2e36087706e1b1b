"""Give the roles the copy studio's permissions: marketers and admins write briefs and edit
drafts; approvers (and admins) approve, reject and reopen them; everyone reads."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_PERMISSIONS = {
    "admin": [
        ("copygen", "add_brief"),
        ("copygen", "change_brief"),
        ("copygen", "delete_brief"),
        ("copygen", "view_brief"),
        ("copygen", "change_draft"),
        ("copygen", "view_draft"),
        ("copygen", "approve_draft"),
    ],
    "marketer": [
        ("copygen", "add_brief"),
        ("copygen", "change_brief"),
        ("copygen", "delete_brief"),
        ("copygen", "view_brief"),
        ("copygen", "change_draft"),
        ("copygen", "view_draft"),
    ],
    "approver": [
        ("copygen", "view_brief"),
        ("copygen", "view_draft"),
        ("copygen", "approve_draft"),
    ],
}


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for app_label, codename in perms:
            perm = Permission.objects.get(content_type__app_label=app_label, codename=codename)
            group.permissions.add(perm)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group = Group.objects.filter(name=role).first()
        if group is None:
            continue
        for app_label, codename in perms:
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("copygen", "0001_initial"),
        ("recommendations", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
