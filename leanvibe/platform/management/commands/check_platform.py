"""``manage.py check_platform``: every part of the platform checked, a line each; exit code 1 if
any check fails (skipped ones do not count). ``--json`` prints one JSON object for machines."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leanvibe.platform.checks import CheckResult, Status, platform_check_run, platform_checks

MARKS = {Status.OK: "✓", Status.FAILED: "✗", Status.SKIPPED: "-"}


class Command(BaseCommand):
    help = (
        "Check the database, Redis, migrations in every schema, Celery workers per queue, beat, "
        "disk space, Stripe and its webhook endpoint, the agents' sandbox and inference backend."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the results as one JSON object.")
        parser.add_argument(
            "--only", nargs="+", metavar="CHECK", help="Run only these checks (names as printed)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        checks = platform_checks()
        if options["only"]:
            known = {check.name for check in checks}
            unknown = sorted(set(options["only"]) - known)
            if unknown:
                raise CommandError(
                    f"unknown check(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
                )
            checks = [check for check in checks if check.name in options["only"]]
        results: list[CheckResult] = []
        width = max(len(check.name) for check in checks) if checks else 0
        for check in checks:
            live = not options["json"] and self.stdout.isatty()
            if live:  # the check's name while it runs, replaced by its line
                self.stdout.write(f"  … {check.name}", ending="")
                self.stdout.flush()
            result = platform_check_run(check)
            results.append(result)
            if not options["json"]:
                style = {
                    Status.OK: self.style.SUCCESS,
                    Status.FAILED: self.style.ERROR,
                    Status.SKIPPED: self.style.WARNING,
                }[result.status]
                took = f"{result.seconds * 1000:6.0f} ms"
                self.stdout.write(
                    style(f"{MARKS[result.status]} {result.name:<{width}}  {took}  {result.detail}")
                )
        failed = [result.name for result in results if result.status == Status.FAILED]
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "ok": not failed,
                        "checks": [
                            {
                                "name": r.name,
                                "status": str(r.status),
                                "detail": r.detail,
                                "seconds": round(r.seconds, 3),
                            }
                            for r in results
                        ],
                    }
                )
            )
        elif failed:
            self.stdout.write(self.style.ERROR(f"{len(failed)} check(s) failed: {', '.join(failed)}"))
        else:
            self.stdout.write(self.style.SUCCESS(f"all {len(results)} checks passed or skipped"))
        if failed:
            sys.exit(1)
