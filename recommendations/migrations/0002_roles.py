"""Give the roles the model-run permissions: marketers and admins start runs and read the
recommendations; approvers read them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_PERMISSIONS = {
    "admin": [
        ("recommendations", "add_modelrun"),
        ("recommendations", "view_modelrun"),
        ("recommendations", "view_recommendation"),
    ],
    "marketer": [
        ("recommendations", "add_modelrun"),
        ("recommendations", "view_modelrun"),
        ("recommendations", "view_recommendation"),
    ],
    "approver": [
        ("recommendations", "view_modelrun"),
        ("recommendations", "view_recommendation"),
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
        ("recommendations", "0001_initial"),
        ("marketing", "0007_roles_segments_categories"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
