"""Joins the usage ledger and the subscriptions migrations, written side by side."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_subscriptions"),
        ("billing", "0001_usage"),
    ]

    operations: list[migrations.operations.base.Operation] = []
