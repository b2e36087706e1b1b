# Copy studio: the drafting job kind and the audit actions of briefs and drafts.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('marketing', '0009_membership_spend_order'),
    ]

    operations = [
        migrations.AlterField(
            model_name='job',
            name='kind',
            field=models.CharField(choices=[('import', 'Import'), ('profile_refresh', 'Profile refresh'), ('model_run', 'Recommendation run'), ('copy_draft', 'Copy drafting')], max_length=32),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('customer_erased', 'Customer erased'), ('category_renamed', 'Derived category renamed'), ('segment_created', 'Rule segment created'), ('segment_changed', 'Rule segment changed'), ('segment_deleted', 'Rule segment deleted'), ('brief_created', 'Brief created'), ('brief_changed', 'Brief changed'), ('brief_deleted', 'Brief deleted'), ('brief_drafting_started', 'Drafting started'), ('draft_edited', 'Draft edited'), ('draft_approved', 'Draft approved'), ('draft_rejected', 'Draft rejected'), ('draft_reopened', 'Draft reopened')], max_length=64),
        ),
    ]
