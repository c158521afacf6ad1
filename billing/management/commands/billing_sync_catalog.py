"""``manage.py billing_sync_catalog``: make Stripe's products, prices and meters match the plan
catalogue (``tenants.plans``); safe to run on every deploy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.catalog import catalog_sync
from billing.stripe_api import billing_enabled


class Command(BaseCommand):
    help = "Create or update the Stripe catalogue (products, prices by lookup key, meters) from the plans."

    def handle(self, *args: Any, **options: Any) -> None:
        if not billing_enabled():
            raise CommandError("STRIPE_SECRET_KEY is not set: billing is off.")
        prices = catalog_sync(report=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(f"catalogue in sync: {len(prices)} prices"))
