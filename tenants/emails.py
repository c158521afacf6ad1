"""Emails to a tenant's owners: the welcome, and the follow-up sent once."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import schema_context

from leanvibe.validators import strip_control_characters
from tenants.links import tenant_url
from tenants.models import Tenant
from tenants.registry import tenant_contacts


def _owner_emails(tenant: Tenant) -> list[str]:
    with schema_context(tenant.schema_name):
        return tenant_contacts().owner_emails(tenant)


def _confirmation_url(tenant: Tenant, recipients: list[str]) -> str | None:
    """A link confirming the sole owner's address if it is not verified yet, else None."""
    if len(recipients) != 1:
        return None
    with schema_context(tenant.schema_name):
        return tenant_contacts().confirmation_url(tenant, recipients[0])


def _send(tenant: Tenant, template: str, subject: str, *, confirm: bool = False) -> int:
    recipients = _owner_emails(tenant)
    if not recipients:
        return 0
    context = {"tenant": tenant, "site_url": tenant_url(tenant)}
    if confirm:
        context["confirm_url"] = _confirmation_url(tenant, recipients)
    body = render_to_string(f"tenants/email/{template}.txt", context)
    # Names are refused with line breaks at input; one stored before that must not stop the mail.
    return send_mail(strip_control_characters(subject), body, settings.DEFAULT_FROM_EMAIL, recipients)


def send_welcome_email(tenant: Tenant) -> int:
    return _send(tenant, "welcome", f"Welcome to LeanVibe, {tenant.organization_name}", confirm=True)


def send_followup_email(tenant: Tenant) -> int:
    return _send(tenant, "followup", f"How is {tenant.organization_name} getting on with LeanVibe?")


def tenant_ids_due_followup() -> list[object]:
    """Active tenants older than ``FOLLOWUP_EMAIL_DELAY`` whose follow-up has not gone out."""
    cutoff = timezone.now() - timedelta(seconds=settings.FOLLOWUP_EMAIL_DELAY)
    return list(
        Tenant.objects.filter(
            status=Tenant.Status.ACTIVE, followup_sent_at__isnull=True, created_at__lte=cutoff
        ).values_list("id", flat=True)
    )


def tenant_send_followup(*, tenant_id: object) -> int:
    """Send the follow-up email once: the tenant is claimed by a conditional update, so two
    workers (or a redelivered message) cannot both send it. A failed send releases the claim."""
    claimed = Tenant.objects.filter(
        id=tenant_id, status=Tenant.Status.ACTIVE, followup_sent_at__isnull=True
    ).update(followup_sent_at=timezone.now())
    if not claimed:
        return 0
    tenant = Tenant.objects.get(id=tenant_id)
    try:
        return send_followup_email(tenant)
    except Exception:
        Tenant.objects.filter(id=tenant_id).update(followup_sent_at=None)
        raise
