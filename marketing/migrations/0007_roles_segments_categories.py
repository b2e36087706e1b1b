"""Give the roles the permissions for rule segments, derived categories and the audit trail."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_PERMISSIONS = {
    # Marketers (and admins) build rule segments; admins rename derived categories and
    # read the audit trail; everyone who sees customers sees segments.
    "admin": [
        ("marketing", "view_segment"),
        ("marketing", "add_segment"),
        ("marketing", "change_segment"),
        ("marketing", "delete_segment"),
        ("marketing", "view_derivedcategory"),
        ("marketing", "change_derivedcategory"),
        ("marketing", "view_auditevent"),
    ],
    "marketer": [
        ("marketing", "view_segment"),
        ("marketing", "add_segment"),
        ("marketing", "change_segment"),
        ("marketing", "delete_segment"),
        ("marketing", "view_derivedcategory"),
    ],
    "approver": [
        ("marketing", "view_segment"),
        ("marketing", "view_derivedcategory"),
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
    dependencies = [("marketing", "0006_derived_categories_audit_erasure")]

    operations = [migrations.RunPython(grant, revoke)]
