from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from tenants import selectors


class Command(BaseCommand):
    help = "List organisations with plan, status, domain and user count."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--status", choices=["active", "suspended"])
        parser.add_argument("--plan", choices=["starter", "professional", "enterprise"])

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = list(
            selectors.tenant_list(status=options["status"], plan=options["plan"]).prefetch_related("domains")
        )
        counts = selectors.tenant_user_counts(tenants)
        header = f"{'ID':36}  {'SUBDOMAIN':30}  {'PLAN':12}  {'STATUS':9}  {'USERS':>5}  NAME"
        self.stdout.write(header)
        for t in tenants:
            users = counts.get(t.id, 0)
            self.stdout.write(
                f"{t.id!s:36}  {t.schema_name:30}  {t.plan:12}  {t.status:9}  {users:>5}  "
                f"{t.organization_name}"
            )
        self.stdout.write(f"{len(tenants)} organisation(s)")
