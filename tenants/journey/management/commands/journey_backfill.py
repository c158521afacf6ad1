"""``manage.py journey_backfill [tenant ...]``: tick the steps the platform's records show done
(every active tenant by default), unlocking the levels they complete, without emails."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenants import selectors
from tenants.journey.services import journey_backfill
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Tick the journey steps organisations already did (all of them by default)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("tenants", nargs="*", help="Tenant ids or subdomains (default: every tenant)")

    def handle(self, *args: Any, **options: Any) -> None:
        refs: list[str] = options["tenants"]
        if refs:
            tenants = []
            for ref in refs:
                tenant = selectors.tenant_get_by_ref(ref)
                if tenant is None:
                    raise CommandError(f"No organisation {ref!r}")
                tenants.append(tenant)
        else:
            tenants = list(Tenant.objects.order_by("created_at"))
        total = len(tenants)
        ticked_total = 0
        for index, tenant in enumerate(tenants, start=1):
            ticked = journey_backfill(tenant)
            ticked_total += len(ticked)
            if ticked:
                self.stdout.write(f"{tenant.schema_name}: {', '.join(ticked)}")
            if sys.stderr.isatty() or index == total or index % 50 == 0:
                self.stderr.write(f"\r{index}/{total} organisations", ending="")
        self.stderr.write("")
        self.stdout.write(self.style.SUCCESS(f"{ticked_total} step(s) ticked in {total} organisation(s)"))
