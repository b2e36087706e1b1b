"""Campaign results per recipient (the results import writes them, the results page reads
them), and the roles' permissions: marketers and admins import and view results, approvers
view them."""

import django.db.models.deletion
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

ROLE_PERMISSIONS = {
    "admin": [("copygen", "add_campaignresult"), ("copygen", "view_campaignresult")],
    "marketer": [("copygen", "add_campaignresult"), ("copygen", "view_campaignresult")],
    "approver": [("copygen", "view_campaignresult")],
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
        ("copygen", "0003_exports"),
        ("marketing", "0012_kinds_results_import"),
    ]

    operations = [
        migrations.CreateModel(
            name="CampaignResult",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("variant", models.PositiveSmallIntegerField()),
                ("locale", models.CharField(max_length=8)),
                ("channel", models.CharField(max_length=16)),
                ("sent", models.BooleanField(default=True)),
                ("delivered", models.BooleanField(blank=True, null=True)),
                ("opened", models.BooleanField(default=False)),
                ("clicked", models.BooleanField(default=False)),
                ("converted", models.BooleanField(default=False)),
                (
                    "revenue",
                    models.DecimalField(blank=True, decimal_places=2, max_digits=14, null=True),
                ),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                ("opened_at", models.DateTimeField(blank=True, null=True)),
                ("clicked_at", models.DateTimeField(blank=True, null=True)),
                ("converted_at", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "brief",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="results",
                        to="copygen.brief",
                    ),
                ),
                (
                    "customer",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="marketing.customer",
                    ),
                ),
                (
                    "draft",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="results",
                        to="copygen.draft",
                    ),
                ),
                (
                    "export",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="results",
                        to="copygen.export",
                    ),
                ),
                (
                    "upload",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="marketing.upload",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["brief", "variant"], name="campaign_result_brief")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("export", "customer"), name="campaign_result_unique"
                    )
                ],
            },
        ),
        migrations.RunPython(grant, revoke),
    ]
