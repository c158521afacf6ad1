"""``manage.py billing_revenue_snapshot [--date YYYY-MM-DD]``: record the day's MRR snapshot
(what the daily beat task does). Idempotent: run again, the day's row is updated. The figures
are the mirrored Stripe state as it is now; ``--date`` only labels the row (to fill in a day the
beat missed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.revenue import revenue_snapshot_take


class Command(BaseCommand):
    help = "Record the day's revenue snapshot (MRR, ARR, subscriptions, MRR by plan)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="the day to record, YYYY-MM-DD (default: today)")

    def handle(self, *args: Any, **options: Any) -> None:
        day = None
        if options.get("date"):
            try:
                day = dt.date.fromisoformat(options["date"])
            except ValueError as exc:
                raise CommandError(f"--date must be YYYY-MM-DD, not {options['date']!r}") from exc
        self.stdout.write("computing MRR from the mirrored subscriptions...")
        snapshot, created = revenue_snapshot_take(day=day)
        plans = ", ".join(f"{plan} {cents}" for plan, cents in snapshot.by_plan.items())
        self.stdout.write(
            f"{'created' if created else 'updated'} snapshot {snapshot.date}: MRR {snapshot.mrr} cents, "
            f"ARR {snapshot.arr} cents, {snapshot.active_subscriptions} active subscriptions, "
            f"{snapshot.paying_tenants} paying tenants; by plan: {plans or 'none'}"
        )
