"""Proxies of dj-stripe's Event and Invoice for batch processing (``billing.models.webhooks``),
and an index of the webhook triggers waiting to be processed (processing looks for a customer's
among them; the table keeps every trigger ever received)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0004_test_clocks'),
        ('djstripe', '0001_squashed_2_11'),
    ]

    operations = [
        migrations.CreateModel(
            name='BatchEvent',
            fields=[
            ],
            options={
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('djstripe.event',),
        ),
        migrations.CreateModel(
            name='InvoiceMirror',
            fields=[
            ],
            options={
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('djstripe.invoice',),
        ),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS billing_webhook_triggers_waiting "
            "ON djstripe_webhookeventtrigger (created) WHERE valid AND NOT processed",
            "DROP INDEX IF EXISTS billing_webhook_triggers_waiting",
        ),
    ]

