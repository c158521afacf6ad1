"""Emails to a tenant's owner."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django_tenants.utils import schema_context

from leanvibe.validators import strip_control_characters
from tenants.links import TENANT_URLCONF, tenant_url
from tenants.models import Tenant


def _owner_emails(tenant: Tenant) -> list[str]:
    from accounts.models import Role, User

    with schema_context(tenant.schema_name):
        return list(User.objects.filter(role=Role.OWNER, is_active=True).values_list("email", flat=True))


def _confirmation_url(tenant: Tenant, recipients: list[str]) -> str | None:
    """A link confirming the sole owner's address if it is not verified yet (allauth's own
    confirmation, its key stored in the tenant's schema), else None."""
    from allauth.account.models import EmailAddress, EmailConfirmation
    from django.urls import reverse
    from django.utils import timezone

    if len(recipients) != 1:
        return None
    with schema_context(tenant.schema_name):
        address = EmailAddress.objects.filter(email=recipients[0], verified=False).first()
        if address is None:
            return None
        confirmation = EmailConfirmation.create(address)
        confirmation.sent = timezone.now()
        confirmation.save(update_fields=["sent"])
    path = reverse("account_confirm_email", args=[confirmation.key], urlconf=TENANT_URLCONF)
    return tenant_url(tenant, path)


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
