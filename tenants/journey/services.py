"""Ticking steps, unlocking levels, the unlock emails, and the backfill.

A feature calls ``journey_step_report(tenant=…, step=…)`` when the step happens, inside the
transaction that records it: the tick commits or rolls back with the event. A report of a step
this process has seen done costs nothing (the features report on hot paths, such as every API
call with a token). A level is unlocked, in the same transaction, by the report that completes it;
the tenant's advisory lock makes two reports of the last two steps of a level, committed at
the same time, see each other. The email follows the commit, claimed atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import schema_context
from psycopg import sql

from leanvibe.validators import strip_control_characters
from tenants.journey.models import LevelUnlocked, StepDone
from tenants.journey.registry import LEVELS, journey_step, journey_steps
from tenants.links import tenant_url
from tenants.models import Tenant
from tenants.registry import tenant_contacts

# Steps this process knows are done (committed): a done step never becomes undone, so a report
# of one costs nothing — no query, no Redis round trip — once this process has seen it done.
_done_here: set[tuple[str, str]] = set()
_LOCK_NAMESPACE = 0x4A52  # "JR": advisory locks of the journey, one per tenant


def journey_step_known_done(*, tenant: Tenant, step: str) -> bool:
    """True when this process has seen the step done (the features' fast path before the check
    of their own records that decides whether to report)."""
    return (str(tenant.pk), step) in _done_here


def journey_step_report(*, tenant: Tenant, step: str, at: datetime | None = None) -> bool:
    """Tick ``step`` for ``tenant`` (done at ``at``, default now). True when this call ticked
    it; False when it was already done. Unknown steps raise (a typo must not pass silently).
    The first report in a process costs one ``INSERT … ON CONFLICT``; once the step is known
    committed (ticked, or found ticked), none."""
    spec = journey_step(step)
    key = (str(tenant.pk), step)
    if key in _done_here:
        return False
    with transaction.atomic():
        ticked = _step_insert(tenant, step, at or timezone.now())
        if ticked:
            _level_unlock(tenant, spec.level)
    # Remembered once committed: a rolled-back tick (the event it belonged to failed) is not done.
    transaction.on_commit(lambda: _done_here.add(key))
    return ticked


def _step_insert(tenant: Tenant, step: str, at: datetime) -> bool:
    query = sql.SQL(
        "INSERT INTO public.{table} (tenant_id, step, done_at, recorded_at) VALUES (%s, %s, %s, now()) "
        "ON CONFLICT (tenant_id, step) DO NOTHING RETURNING id"
    ).format(table=sql.Identifier(StepDone._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(query, [tenant.pk, step, at])
        return cursor.fetchone() is not None


def _level_unlock(tenant: Tenant, level: int, *, email: bool = True) -> LevelUnlocked | None:
    """Unlock ``level`` if every one of its steps is done; the unlock time is the last step's."""
    steps = [s.id for s in journey_steps(level)]
    if not steps:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_LOCK_NAMESPACE, str(tenant.pk)])
    done = dict(StepDone.objects.filter(tenant_id=tenant.pk, step__in=steps).values_list("step", "done_at"))
    if len(done) < len(steps):
        return None
    unlocked_at = max(done.values())
    if LevelUnlocked.objects.filter(tenant_id=tenant.pk, number=level).exists():
        return None
    unlock = LevelUnlocked.objects.create(
        tenant_id=tenant.pk, number=level, unlocked_at=unlocked_at, emailed_at=None if email else unlocked_at
    )
    if email:
        from tenants.journey.tasks import journey_send_unlock_email

        unlock_id = unlock.pk
        transaction.on_commit(lambda: journey_send_unlock_email.delay(unlock_id))
    return unlock


def _owner_emails(tenant: Tenant) -> list[str]:
    with schema_context(tenant.schema_name):
        return tenant_contacts().owner_emails(tenant)


def journey_unlock_email_send(*, unlock_id: int) -> int:
    """Send the "Achievement unlocked" email of one unlock, once: the row is claimed with
    ``FOR UPDATE SKIP LOCKED`` and marked in the same transaction; a failed send rolls the
    mark back and the beat sweep tries again."""
    with transaction.atomic():
        unlock = (
            LevelUnlocked.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant")
            .filter(id=unlock_id, emailed_at__isnull=True)
            .first()
        )
        if unlock is None:
            return 0
        tenant = unlock.tenant
        level = LEVELS[unlock.number - 1]
        recipients = _owner_emails(tenant)
        sent = 0
        if recipients:
            following = LEVELS[unlock.number] if unlock.number < len(LEVELS) else None
            body = render_to_string(
                "journey/email/unlocked.txt",
                {
                    "tenant": tenant,
                    "level": level,
                    "next_level": following,
                    "next_steps": journey_steps(following.number) if following else [],
                    "site_url": tenant_url(tenant),
                },
            )
            subject = strip_control_characters(f"Achievement unlocked: {level.badge} {level.name}")
            sent = send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
        unlock.emailed_at = timezone.now()
        unlock.save(update_fields=["emailed_at"])
        return sent


def journey_unsent_unlock_ids(*, older_than_seconds: int = 60) -> list[int]:
    """Unlocks whose email has not gone out a while after (a lost message, a failed send)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        LevelUnlocked.objects.filter(emailed_at__isnull=True, unlocked_at__lte=cutoff).values_list(
            "id", flat=True
        )
    )


@dataclass(frozen=True)
class StepState:
    """A step as recorded (ticked) and as the records compute it. They disagree when the
    records show it done but it was never ticked (a missed report), or when it was ticked but
    the records, which keep their history, do not show it (a wrong report)."""

    step: str
    level: int
    title: str
    recorded: datetime | None
    computed: datetime | None
    history: bool

    @property
    def agrees(self) -> bool:
        if self.computed is not None:
            return self.recorded is not None
        return self.recorded is None or not self.history


def journey_computed(tenant: Tenant) -> dict[str, datetime | None]:
    """What the platform's records say of every registered step (the backfill's view)."""
    with schema_context(tenant.schema_name):
        return {step.id: step.done_at(tenant) for step in journey_steps()}


def journey_states(tenant: Tenant) -> list[StepState]:
    recorded = dict(StepDone.objects.filter(tenant_id=tenant.pk).values_list("step", "done_at"))
    computed = journey_computed(tenant)
    return [
        StepState(
            step=s.id,
            level=s.level,
            title=s.title,
            recorded=recorded.get(s.id),
            computed=computed[s.id],
            history=s.history,
        )
        for s in journey_steps()
    ]


def journey_backfill(tenant: Tenant) -> list[str]:
    """Tick what the tenant already did before its steps were reported (existing tenants, a
    new step added in a release), at the time the records say. Levels completed this way are
    unlocked without an email: the organisation reached them long ago."""
    ticked: list[str] = []
    computed = journey_computed(tenant)
    with transaction.atomic():
        for step_id, at in computed.items():
            if at is not None and _step_insert(tenant, step_id, at):
                ticked.append(step_id)
        for level in LEVELS:
            _level_unlock(tenant, level.number, email=False)
    return ticked
