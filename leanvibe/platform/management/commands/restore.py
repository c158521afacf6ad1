"""``manage.py restore FILE|s3://bucket/key [--database-url URL | --force]``: a backup, back in."""

from __future__ import annotations

import time
from typing import Any

import environ
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from leanvibe.platform.backups import BackupError, backup_restore_from
from leanvibe.platform.targets import TargetError, target_exists


class Command(BaseCommand):
    help = (
        "Restore a backup made by manage.py backup (encrypted ones with BACKUP_ENCRYPTION_KEY) into "
        "another database (--database-url), or into this one with --force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The backup file, or s3://bucket/key.")
        parser.add_argument("--database-url", help="The database to restore into (it must exist).")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Restore into the project's own database, replacing what it holds.",
        )
        parser.add_argument("--jobs", type=int, default=2, help="pg_restore processes.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            if not target_exists(path):
                raise CommandError(f"no backup file at {path}")
        except TargetError as exc:
            raise CommandError(str(exc)) from exc
        if options["database_url"]:
            database = environ.Env.db_url_config(options["database_url"])
        elif options["force"]:
            database = settings.DATABASES["default"]
        else:
            raise CommandError(
                "Say where: --database-url URL (a new database), or --force to replace this project's own."
            )
        started = time.perf_counter()
        self.stdout.write(f"restoring {path} into {database['NAME']} (pg_restore) ...")
        try:
            backup_restore_from(path, database=database, jobs=options["jobs"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"restored in {time.perf_counter() - started:.1f} s"))
