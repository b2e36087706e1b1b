"""Exports of approved copy: Export, its recipients (one per row written: also the drafts'
export marks), the briefs' control groups; and the roles' export permissions (marketers and
admins export and download, approvers read the history)."""

import django.db.models.deletion
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

import copygen.models

ROLE_PERMISSIONS = {
    "admin": [
        ("copygen", "add_export"),
        ("copygen", "view_export"),
        ("copygen", "download_export"),
    ],
    "marketer": [
        ("copygen", "add_export"),
        ("copygen", "view_export"),
        ("copygen", "download_export"),
    ],
    "approver": [
        ("copygen", "view_export"),
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
        ('copygen', '0002_roles'),
        ('marketing', '0011_job_kind_export_audit_api'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Export',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('preset', models.CharField(max_length=40)),
                ('channel', models.CharField(max_length=16)),
                ('excel_bom', models.BooleanField(default=False)),
                ('control_share', models.PositiveSmallIntegerField(default=0, help_text='Percent of the consenting audience held out (0-50)')),
                ('split_variants', models.BooleanField(default=False, help_text='Spread the approved variants over the customers (A/B test)')),
                ('seed', models.BigIntegerField(help_text='Seeds the control group and the variant split')),
                ('file', models.FileField(blank=True, max_length=255, storage=copygen.models.export_storage, upload_to='')),
                ('file_name', models.CharField(blank=True, help_text='Name of the download', max_length=255)),
                ('file_size', models.BigIntegerField(default=0)),
                ('file_removed', models.CharField(blank=True, max_length=300)),
                ('rows_written', models.PositiveIntegerField(default=0)),
                ('rows_skipped', models.PositiveIntegerField(default=0)),
                ('control_size', models.PositiveIntegerField(default=0)),
                ('skipped', models.JSONField(blank=True, default=dict)),
                ('warnings', models.JSONField(blank=True, default=list)),
                ('warning_counts', models.JSONField(blank=True, default=dict)),
                ('summary', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('brief', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='exports', to='copygen.brief')),
                ('catalog', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='marketing.catalog')),
                ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('job', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='exports', to='marketing.job')),
            ],
            options={
                'ordering': ['-created_at', '-pk'],
                'permissions': [('download_export', 'Can download export files')],
                'constraints': [models.CheckConstraint(condition=models.Q(('control_share__lte', 50)), name='export_control_share_at_most_50')],
            },
        ),
        migrations.CreateModel(
            name='ControlMember',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('brief', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='control_members', to='copygen.brief')),
                ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='marketing.customer')),
                ('export', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='control_members', to='copygen.export')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('brief', 'customer'), name='control_member_unique')],
            },
        ),
        migrations.CreateModel(
            name='ExportRecipient',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('variant', models.PositiveSmallIntegerField()),
                ('locale', models.CharField(max_length=8)),
                ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='marketing.customer')),
                ('draft', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='export_recipients', to='copygen.draft')),
                ('export', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='recipients', to='copygen.export')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('export', 'customer'), name='export_recipient_unique')],
            },
        ),
        migrations.RunPython(grant, revoke),
    ]
