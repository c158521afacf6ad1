"""``manage.py tenant_export <id or subdomain> [PATH | s3://bucket/prefix/] [--encrypt]``."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants import selectors
from tenants.moves import MoveError, tenant_export


class Command(BaseCommand):
    help = (
        "Export one organisation (its schema and its public rows) into one archive, to move it to "
        "another database with tenant_import."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="Tenant id or subdomain.")
        parser.add_argument(
            "output",
            nargs="?",
            default=".",
            help="A file, a folder to name one in (default: here), s3://bucket/key or s3://bucket/prefix/.",
        )
        parser.add_argument(
            "--encrypt", action="store_true", help="Encrypt with BACKUP_ENCRYPTION_KEY (a Fernet key)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = selectors.tenant_get_by_ref(options["tenant"])
        if tenant is None:
            raise CommandError(f"No organisation {options['tenant']!r}")
        started = time.perf_counter()
        try:
            result = tenant_export(
                tenant=tenant,
                target=options["output"],
                encrypt=options["encrypt"],
                progress=self.stdout.write,
            )
        except MoveError as exc:
            raise CommandError(str(exc)) from exc
        counts = result.manifest["counts"]
        self.stdout.write(
            f"{sum(counts['schema'].values())} rows in {len(counts['schema'])} tables of schema "
            f"{tenant.schema_name}; public: "
            + ", ".join(f"{label} {n}" for label, n in counts["public"].items())
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.location} ({result.size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f} s"
            )
        )
