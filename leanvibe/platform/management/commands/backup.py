"""``manage.py backup [PATH | s3://bucket/prefix/] [--encrypt]``: the whole database, ``pg_dump -Fc``."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from leanvibe.platform.backups import BackupError, backup_to


class Command(BaseCommand):
    help = "Back up the whole database (every schema) with pg_dump's custom format, optionally encrypted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "output",
            nargs="?",
            default=None,
            help=(
                "A file, a folder to name one in, s3://bucket/key or s3://bucket/prefix/ "
                "(default: BACKUP_TARGET, itself by default here)."
            ),
        )
        parser.add_argument(
            "--encrypt", action="store_true", help="Encrypt with BACKUP_ENCRYPTION_KEY (a Fernet key)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        self.stdout.write("dumping the database (pg_dump -Fc) ...")
        try:
            path, size = backup_to(options["output"] or settings.BACKUP_TARGET, encrypt=options["encrypt"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(f"{path} ({size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f} s")
        )
