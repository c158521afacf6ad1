"""``manage.py billing_test_clock <tenant> (--advance 15d | --to 2027-01-31T00:00)``: test mode
only (``BILLING_TEST_CLOCKS``). Moves the tenant's Stripe test clock forward, waits while
Stripe runs what falls due on the way (trial end, renewals, payment retries), applies the new
time here and prints where the tenant's billing stands."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing import services
from billing.models import BillingAccount
from leanvibe.errors import DomainError
from tenants import selectors

_SPAN = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def _span(value: str) -> timedelta:
    found = _SPAN.match(value.strip())
    if not found:
        raise CommandError(f"--advance takes a number and d, h or m (e.g. 15d), not {value!r}")
    return timedelta(**{_UNITS[found[2]]: int(found[1])})


class Command(BaseCommand):
    help = "Advance a tenant's Stripe test clock (test mode, BILLING_TEST_CLOCKS) and show its billing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="Tenant id or subdomain")
        when = parser.add_mutually_exclusive_group(required=True)
        when.add_argument("--advance", help="How far to move the clock: 15d, 12h, 30m")
        when.add_argument("--to", help="The clock's new time, ISO 8601 (UTC if no offset)")

    def handle(self, *args: Any, **options: Any) -> None:
        ref = options["tenant"]
        tenant = selectors.tenant_get_by_ref(ref)
        if tenant is None:
            raise CommandError(f"No organisation {ref!r}")
        account = BillingAccount.objects.filter(tenant=tenant).first()
        if account is None or not account.stripe_test_clock_id or account.test_clock_time is None:
            raise CommandError(
                f"{tenant.schema_name} is not on a test clock (BILLING_TEST_CLOCKS=1 when it was made)"
            )
        if options["to"]:
            try:
                to = datetime.fromisoformat(options["to"])
            except ValueError as exc:
                raise CommandError(f"--to: {exc}") from exc
            if to.tzinfo is None:
                to = to.replace(tzinfo=account.test_clock_time.tzinfo)
        else:
            to = account.test_clock_time + _span(options["advance"])
        if to <= account.test_clock_time:
            raise CommandError(
                f"the clock is at {account.test_clock_time:%Y-%m-%d %H:%M}; it only moves forward"
            )
        self.stdout.write(f"advancing {account.stripe_test_clock_id} to {to:%Y-%m-%d %H:%M} UTC ...")
        try:
            account = services.clock_advance(tenant=tenant, to=to)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        period_end = f"{account.current_period_end:%Y-%m-%d}" if account.current_period_end else "-"
        self.stdout.write(
            self.style.SUCCESS(
                f"{tenant.schema_name}: clock {account.test_clock_time:%Y-%m-%d %H:%M}, "
                f"{account.plan} {account.status or '-'}, access {account.access}, period ends {period_end}"
            )
        )
