"""``manage.py billing_flush_usage``: what the beat task does every minute, by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.metering import usage_flush


class Command(BaseCommand):
    help = "Move closed usage windows from Redis to the usage ledger (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(done: int, total: int) -> None:
            self.stdout.write(f"  {done}/{total} windows flushed")

        result = usage_flush(progress=progress)
        self.stdout.write(
            self.style.SUCCESS(f"{result.windows} closed windows, {result.rows_created} new ledger rows.")
        )
