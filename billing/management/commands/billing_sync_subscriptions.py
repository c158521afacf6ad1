"""``manage.py billing_sync_subscriptions [tenant ...]``: re-read every tenant's subscription
from Stripe and apply it, as a webhook would (after restoring a backup, whose billing state is
the backup's; or to repair drift). Exit code 1 when one could not be read."""

from __future__ import annotations

import sys
from typing import Any

import stripe
from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing import services
from billing.models import BillingAccount
from billing.stripe_api import billing_enabled
from tenants import selectors


class Command(BaseCommand):
    help = "Re-read tenants' subscriptions from Stripe and apply what Stripe says (all by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenants", nargs="*", help="Tenant ids or subdomains (default: every tenant)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not billing_enabled():
            raise CommandError("billing is off (no STRIPE_SECRET_KEY): nothing to sync")
        accounts = BillingAccount.objects.exclude(stripe_subscription_id="").select_related("tenant")
        refs: list[str] = options["tenants"]
        if refs:
            ids = []
            for ref in refs:
                tenant = selectors.tenant_get_by_ref(ref)
                if tenant is None:
                    raise CommandError(f"No organisation {ref!r}")
                ids.append(tenant.pk)
            accounts = accounts.filter(tenant_id__in=ids)
        rows = list(accounts.order_by("tenant__schema_name"))
        failed = 0
        for index, account in enumerate(rows, start=1):
            name = account.tenant.schema_name
            before = (account.status, account.plan, account.access)
            try:
                synced = services.subscription_sync(subscription_id=account.stripe_subscription_id)
            except stripe.StripeError as exc:
                failed += 1
                self.stderr.write(self.style.ERROR(f"{name}: {exc.user_message or exc}"))
                continue
            if synced is not None:
                after = (synced.status, synced.plan, synced.access)
                change = "unchanged" if after == before else f"{'/'.join(before)} → {'/'.join(after)}"
                self.stdout.write(f"{name}: {change}")
            if sys.stderr.isatty():
                self.stderr.write(f"\r{index}/{len(rows)}", ending="")
        self.stdout.write(f"{len(rows) - failed} of {len(rows)} subscription(s) synced")
        if failed:
            raise SystemExit(1)
