"""Shared by ``tenant_suspend`` and ``tenant_resume``: find a tenant by id or subdomain, act on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenants import selectors
from tenants.models import Tenant


class TenantStatusCommand(BaseCommand):
    action: Callable[..., Tenant]

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("tenant", help="Tenant id or subdomain")

    def handle(self, *args: Any, **options: Any) -> None:
        ref = options["tenant"]
        tenant = selectors.tenant_get_by_ref(ref)
        if tenant is None:
            raise CommandError(f"No organisation {ref!r}")
        type(self).action(tenant=tenant)
        self.stdout.write(
            self.style.SUCCESS(f"{tenant.organization_name} ({tenant.schema_name}) is now {tenant.status}")
        )
