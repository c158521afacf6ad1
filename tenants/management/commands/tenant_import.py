"""``manage.py tenant_import ARCHIVE [--rename NEW_SUBDOMAIN] [--database-url URL]``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.moves import MoveError, tenant_import


class Command(BaseCommand):
    help = (
        "Import an organisation exported by tenant_export (a file or s3://bucket/key) into this "
        "database, or another one with --database-url. Refuses an id, subdomain or schema that is "
        "taken unless --rename gives it a new subdomain (and id)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive", help="The archive: a file or s3://bucket/key.")
        parser.add_argument("--rename", metavar="NEW_SUBDOMAIN", help="Import as a copy with this subdomain.")
        parser.add_argument(
            "--database-url",
            help="Import into this database (migrated by the same release) instead of the project's.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["database_url"]:
            self._elsewhere(options)
            return
        started = time.perf_counter()
        try:
            result = tenant_import(
                source=options["archive"], rename=options["rename"], progress=self.stdout.write
            )
        except MoveError as exc:
            raise CommandError(str(exc)) from exc
        for note in result.notes:
            self.stdout.write(self.style.WARNING(note))
        for label, outcomes in result.rows.items():
            self.stdout.write(
                f"{label}: " + (", ".join(f"{n} {what}" for what, n in outcomes.items()) or "none")
            )
        tenant = result.tenant
        self.stdout.write(
            self.style.SUCCESS(
                f"imported {tenant.organization_name} as {tenant.schema_name} ({tenant.id}) "
                f"in {time.perf_counter() - started:.1f} s"
            )
        )

    def _elsewhere(self, options: dict[str, Any]) -> None:
        """The same command, run by a process whose database is the other one (every query of
        the import, django-tenants' schema switching included, then goes there)."""
        command = [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "tenant_import",
            options["archive"],
        ]
        if options["rename"]:
            command += ["--rename", options["rename"]]
        env = {
            **os.environ,
            "DATABASE_URL": options["database_url"],
            "BACKUP_ENCRYPTION_KEY": settings.BACKUP_ENCRYPTION_KEY,
            "BACKUP_S3_ENDPOINT_URL": settings.BACKUP_S3_ENDPOINT_URL,
            "BACKUP_S3_REGION": settings.BACKUP_S3_REGION,
        }
        lines: list[str] = []
        with subprocess.Popen(  # noqa: S603 - this project's manage.py
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            for line in process.stdout or ():
                lines.append(line.rstrip("\n"))
                self.stdout.write(line.rstrip("\n"))
        if process.returncode != 0:
            last = next((line for line in reversed(lines) if line.strip()), "no output")
            raise CommandError(f"the import into the other database failed: {last}")
