from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenants import selectors, services


class Command(BaseCommand):
    help = "Suspend an organisation, by id or subdomain."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("tenant", help="Tenant id or subdomain")

    def handle(self, *args: Any, **options: Any) -> None:
        ref = options["tenant"]
        try:
            tenant = selectors.tenant_get_by_id(uuid.UUID(ref))
        except ValueError:
            tenant = selectors.tenant_get_by_subdomain(ref.lower())
        if tenant is None:
            raise CommandError(f"No organisation {ref!r}")
        services.tenant_suspend(tenant=tenant)
        self.stdout.write(
            self.style.SUCCESS(f"{tenant.organization_name} ({tenant.schema_name}) is now {tenant.status}")
        )
