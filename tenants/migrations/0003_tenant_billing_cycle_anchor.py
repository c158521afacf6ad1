from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_tenant_followup_sent_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="billing_cycle_anchor",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
