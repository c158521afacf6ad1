"""Emails to a tenant's owners about changes to how its members sign in."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import Role, User
from leanvibe.validators import strip_control_characters

if TYPE_CHECKING:
    from tenants.models import Tenant


def owners_notify_security_change(*, tenant: Tenant, actor_email: str, change: str) -> list[str]:
    """Email every active owner of ``tenant`` (the current schema) once the transaction commits.
    Returns the recipients."""
    recipients = list(
        User.objects.filter(role=Role.OWNER, is_active=True).order_by("pk").values_list("email", flat=True)
    )
    if not recipients:
        return []
    body = render_to_string(
        "accounts/email/security_change.txt",
        {
            "tenant": tenant,
            "change": change,
            "actor": actor_email or "LeanVibe",
            "when": timezone.now(),
        },
    )
    subject = strip_control_characters(f"Sign-in settings changed in {tenant.organization_name}")
    transaction.on_commit(partial(send_mail, subject, body, settings.DEFAULT_FROM_EMAIL, recipients))
    return recipients
