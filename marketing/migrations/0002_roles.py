"""Create the role groups (admin, marketer, approver) with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_PERMISSIONS = {
    # Admins manage catalogs and users, and can do everything a marketer can.
    "admin": [
        ("marketing", "add_catalog"),
        ("marketing", "change_catalog"),
        ("marketing", "delete_catalog"),
        ("marketing", "view_catalog"),
        ("marketing", "import_data"),
        ("marketing", "change_product"),
        ("marketing", "view_product"),
        ("marketing", "view_customer"),
        ("marketing", "change_customer"),
        ("marketing", "delete_customer"),
        ("marketing", "view_event"),
        ("marketing", "view_job"),
        ("marketing", "change_job"),
        ("auth", "add_user"),
        ("auth", "change_user"),
        ("auth", "delete_user"),
        ("auth", "view_user"),
    ],
    "marketer": [
        ("marketing", "view_catalog"),
        ("marketing", "import_data"),
        ("marketing", "view_product"),
        ("marketing", "view_customer"),
        ("marketing", "view_event"),
        ("marketing", "view_job"),
        ("marketing", "change_job"),
    ],
    "approver": [
        ("marketing", "view_catalog"),
        ("marketing", "view_product"),
        ("marketing", "view_customer"),
        ("marketing", "view_event"),
        ("marketing", "view_job"),
    ],
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate; make sure they exist now.
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


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("marketing", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, drop_roles)]
