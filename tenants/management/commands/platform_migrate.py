"""Migrate everything a deploy needs: the public schema, the template, every tenant, the pool."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from tenants import schemas
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Migrate the public schema, the tenant template schema and every tenant; refill the pool."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-pool", action="store_true", help="Do not refill the schema pool.")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        self.stdout.write("[1/4] public schema")
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=max(0, verbosity - 1))
        self.stdout.write("[2/4] tenant template schema")
        schemas.template_migrate(verbosity=max(0, verbosity - 1))
        tenants = list(Tenant.objects.values_list("schema_name", flat=True))
        self.stdout.write(f"[3/4] {len(tenants)} tenant schema(s)")
        for index, schema_name in enumerate(tenants, 1):
            call_command(
                "migrate_schemas",
                schema_name=schema_name,
                tenant=True,
                interactive=False,
                verbosity=max(0, verbosity - 1),
            )
            self.stdout.write(f"      {index}/{len(tenants)} {schema_name}")
        if options["no_pool"]:
            self.stdout.write("[4/4] schema pool: skipped")
            return
        made = schemas.schema_pool_refill()
        self.stdout.write(f"[4/4] schema pool: {made} new clone(s)")
        self.stdout.write(self.style.SUCCESS("All schemas are migrated."))
