from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from leanvibe.errors import DomainError
from tenants.links import tenant_url
from tenants.plans import Plan
from tenants.services import tenant_provision


class Command(BaseCommand):
    help = "Create an organisation: its schema, owner account and Welcome project."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("organization_name")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--billing-email", help="Defaults to the admin email.")
        parser.add_argument("--plan", choices=list(Plan.values), default=Plan.STARTER)
        parser.add_argument("--admin-password", help="Generated and printed when omitted.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"Provisioning {options['organization_name']!r}...")
        try:
            result = tenant_provision(
                organization_name=options["organization_name"],
                billing_email=options["billing_email"] or options["admin_email"],
                admin_email=options["admin_email"],
                plan=options["plan"],
                admin_password=options["admin_password"],
            )
        except (ValidationError, DomainError) as exc:
            raise CommandError(str(exc)) from exc
        tenant = result.tenant
        self.stdout.write(self.style.SUCCESS(f"Created {tenant.organization_name} ({tenant.id})"))
        self.stdout.write(f"  subdomain: {tenant.schema_name}")
        self.stdout.write(f"  sign in:   {tenant_url(tenant, '/accounts/login/')}")
        self.stdout.write(f"  owner:     {result.owner_email}")
        if result.generated_password:
            self.stdout.write(f"  password:  {result.generated_password}")
