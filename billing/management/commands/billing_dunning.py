"""``manage.py billing_dunning [--dry-run]``: run the dunning sweep (beat runs it every 15
minutes) or, with ``--dry-run``, list what it would do."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from billing.dunning import dunning_sweep


class Command(BaseCommand):
    help = "Send due payment reminders and suspend tenants whose grace period is over."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List what would be done; change nothing.")

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        actions = dunning_sweep(dry_run=dry_run)
        prefix = "would: " if dry_run else ""
        for action in actions:
            self.stdout.write(f"{prefix}{action}")
        self.stdout.write(f"{len(actions)} action(s){' (dry run)' if dry_run else ''}")
