"""``manage.py journey_check <tenant>``: each level's steps with ✓/✗, as recorded and as the
platform's records compute them; exit code 1 when they disagree (the seed's ``validate-step.sh``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenants import selectors
from tenants.journey.models import LevelUnlocked
from tenants.journey.registry import LEVELS
from tenants.journey.services import journey_states


class Command(BaseCommand):
    help = "Show an organisation's journey and check it against the platform's records."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("tenant", help="Tenant id or subdomain")

    def handle(self, *args: Any, **options: Any) -> None:
        ref = options["tenant"]
        tenant = selectors.tenant_get_by_ref(ref)
        if tenant is None:
            raise CommandError(f"No organisation {ref!r}")
        states = journey_states(tenant)
        unlocked = dict(
            LevelUnlocked.objects.filter(tenant_id=tenant.pk).values_list("number", "unlocked_at")
        )
        disagreements = 0
        self.stdout.write(f"{tenant.organization_name} ({tenant.schema_name})")
        for level in LEVELS:
            when = unlocked.get(level.number)
            status = f"unlocked {when:%Y-%m-%d %H:%M}" if when else "locked"
            self.stdout.write(f"\nLevel {level.number} {level.badge} {level.name}: {status}")
            for state in (s for s in states if s.level == level.number):
                mark = "✓" if state.recorded else "✗"
                line = f"  {mark} {state.title} [{state.step}]"
                if state.recorded:
                    line += f" {state.recorded:%Y-%m-%d %H:%M}"
                if not state.agrees:
                    disagreements += 1
                    seen = "done" if state.computed else "not done"
                    line += f"  ← the records say {seen}"
                    self.stdout.write(self.style.ERROR(line))
                else:
                    self.stdout.write(line)
        if disagreements:
            self.stdout.write(
                self.style.ERROR(
                    f"\n{disagreements} step(s) disagree with the records "
                    "(journey_backfill ticks the missed ones)"
                )
            )
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS("\nThe journey agrees with the records."))
