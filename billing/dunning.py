"""Dunning: after ``invoice.payment_failed`` the tenant keeps its plan for a grace period
(``BILLING_GRACE_DAYS``) while Stripe retries the card; the billing email hears on days 0, 3
and 7 (``BILLING_DUNNING_EMAIL_DAYS``, counted from when Stripe says the payment failed, in
the time of the tenant's test clock if it is on one), each once (claimed with a conditional UPDATE, so two
sweeps never send the same one); then the tenant is suspended for non-payment until
``invoice.paid``. The sweep runs from beat; ``manage.py billing_dunning --dry-run`` shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from billing import access_flags, services
from billing.models import Access, BillingAccount
from leanvibe.validators import strip_control_characters
from tenants.links import tenant_url


@dataclass(frozen=True)
class DunningAction:
    tenant_id: str
    schema_name: str
    action: str  # "email day N", "suspend"

    def __str__(self) -> str:
        return f"{self.schema_name} ({self.tenant_id}): {self.action}"


def _email_day_due(failed_at: datetime, now: datetime) -> int | None:
    elapsed = now - failed_at
    due = [day for day in settings.BILLING_DUNNING_EMAIL_DAYS if elapsed >= timedelta(days=day)]
    return max(due) if due else None


def _email_claim(account: BillingAccount, day: int) -> bool:
    """True for the one sweep that moves the account to ``day``."""
    return (
        BillingAccount.objects.filter(id=account.id, payment_failed_at=account.payment_failed_at)
        .filter(Q(dunning_email_day__isnull=True) | Q(dunning_email_day__lt=day))
        .update(dunning_email_day=day)
        == 1
    )


def dunning_email_send(account: BillingAccount, day: int) -> int:
    tenant = account.tenant
    grace_end = account.payment_failed_at + timedelta(days=settings.BILLING_GRACE_DAYS)  # type: ignore[operator]
    context = {
        "tenant": tenant,
        "day": day,
        "grace_end": grace_end,
        "billing_url": tenant_url(tenant, "/billing/"),
    }
    body = render_to_string("billing/email/payment_failed.txt", context)
    subject = strip_control_characters(
        f"Payment failed for {tenant.organization_name}: please update your card"
    )
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [tenant.billing_email])


def dunning_sweep(*, dry_run: bool, at: datetime | None = None) -> list[DunningAction]:
    wall = timezone.now()
    actions: list[DunningAction] = []
    grace = timedelta(days=settings.BILLING_GRACE_DAYS)
    dunning = BillingAccount.objects.filter(payment_failed_at__isnull=False).select_related("tenant")
    for account in dunning.order_by("payment_failed_at"):
        # A tenant on a Stripe test clock is swept at the clock's time (unless told a time).
        now = at or account.billing_now(wall)
        failed_at = account.payment_failed_at or now
        day = _email_day_due(failed_at, now)
        due = day is not None and (account.dunning_email_day is None or account.dunning_email_day < day)
        if day is not None and due and (dry_run or _email_claim(account, day)):
            actions.append(
                DunningAction(str(account.tenant_id), account.tenant.schema_name, f"email day {day}")
            )
            if not dry_run:
                dunning_email_send(account, day)
        if now >= failed_at + grace and account.access != Access.SUSPENDED:
            decided = account if dry_run else services.account_recompute(account_id=account.id, now=now)
            if dry_run or decided.access == Access.SUSPENDED:
                actions.append(DunningAction(str(account.tenant_id), account.tenant.schema_name, "suspend"))
    if not dry_run:
        # Re-publish the guard's flags (Redis may have lost them).
        flagged = BillingAccount.objects.filter(~Q(access=Access.OK) | Q(payment_failed_at__isnull=False))
        for row in flagged.values_list("tenant_id", "access", "payment_failed_at"):
            access_flags.access_publish(tenant_id=row[0], access=row[1], dunning=row[2] is not None)
    return actions
