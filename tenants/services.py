"""Writes of tenants: provisioning, suspension, resumption."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from accounts.emails import email_canonical
from leanvibe.validators import validate_text_fields
from tenants.models import Domain, Tenant
from tenants.plans import Plan
from tenants.schemas import schema_create_for_tenant
from tenants.subdomains import candidates, slugify_organization

logger = logging.getLogger(__name__)

# Settings every new tenant starts with (security switches are off until an admin turns them on).
DEFAULT_TENANT_SETTINGS: dict[str, object] = {"require_mfa": False, "sso_only": False, "timezone": "UTC"}


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant: Tenant
    owner_email: str
    # Set only when the caller gave no password and one was generated for the owner.
    generated_password: str | None
    schema_source: str  # "pool" or "clone"


def subdomain_allocate(organization_name: str) -> str:
    """The first free subdomain for ``organization_name``: ``acme``, ``acme-1``, ``acme-2``..."""
    base = slugify_organization(organization_name)
    taken = set(
        Tenant.objects.filter(schema_name__startswith=base[:20]).values_list("schema_name", flat=True)
    )
    for candidate in candidates(base):
        if candidate not in taken and not schema_exists(candidate, case_sensitive=False):
            return candidate
    raise AssertionError("unreachable: candidates() is infinite")


def tenant_provision(
    *,
    organization_name: str,
    billing_email: str,
    admin_email: str,
    plan: str = Plan.STARTER,
    admin_password: str | None = None,
) -> ProvisionedTenant:
    """Create a tenant, its schema, its owner and a Welcome project, all or nothing.

    Emails (welcome now, follow-up later) are queued only once everything is committed.
    """
    from accounts.models import Role, User
    from accounts.services import user_create
    from agents.services import project_create

    organization_name = organization_name.strip()
    validate_text_fields(organization_name=organization_name)
    admin_email = email_canonical(admin_email)
    validate_email(admin_email)
    generated = None
    if admin_password is None:
        generated = admin_password = secrets.token_urlsafe(12)
    else:
        validate_password(admin_password, User(email=admin_email))
    # Hash outside the transaction: it is the slowest step and needs no lock.
    password_hash = make_password(admin_password)

    for attempt in range(3):
        try:
            with transaction.atomic():
                subdomain = subdomain_allocate(organization_name)
                tenant = Tenant(
                    schema_name=subdomain,
                    organization_name=organization_name,
                    billing_email=billing_email,
                    plan=plan,
                    settings=dict(DEFAULT_TENANT_SETTINGS),
                )
                tenant.full_clean()
                tenant.save()
                domain = Domain(domain=f"{subdomain}.{settings.BASE_DOMAIN}", tenant=tenant, is_primary=True)
                domain.full_clean()
                domain.save()
                source = schema_create_for_tenant(subdomain)
                with schema_context(subdomain):
                    owner = user_create(
                        email=admin_email, password=password_hash, password_is_hashed=True, role=Role.OWNER
                    )
                    # An owner who chose a password on the sign-up page/API has not proved the
                    # address yet: the welcome email carries the confirmation link.
                    _email_address_record(owner, verified=generated is not None)
                    project_create(
                        tenant=tenant,
                        name="Welcome",
                        description="Your first project. Rename it or start another.",
                    )
                transaction.on_commit(partial(_after_provision, tenant.id))
            break
        except IntegrityError:
            # Another sign-up took the same subdomain between our check and our insert.
            if attempt == 2:
                raise
    logger.info("provisioned tenant %s (%s) from %s", tenant.schema_name, tenant.id, source)
    return ProvisionedTenant(tenant, owner.email, generated, source)


def _email_address_record(user: object, *, verified: bool) -> None:
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=user, email=user.email, verified=verified, primary=True)  # type: ignore[attr-defined]


def _after_provision(tenant_id: object) -> None:
    from tenants import tasks

    tasks.tenant_send_welcome_email.delay(str(tenant_id))
    # The follow-up is sent by the beat sweep (tenant_send_due_followups) once it is due.
    tasks.schema_pool_refill.delay()


def tenant_suspend(*, tenant: Tenant) -> Tenant:
    tenant.status = Tenant.Status.SUSPENDED
    tenant.save(update_fields=["status", "updated_at"])
    return tenant


def tenant_resume(*, tenant: Tenant) -> Tenant:
    tenant.status = Tenant.Status.ACTIVE
    tenant.save(update_fields=["status", "updated_at"])
    return tenant


def tenant_update_security(*, tenant: Tenant, changes: dict[str, bool]) -> dict[str, bool]:
    """Change the tenant's security switches (``require_mfa``); returns the switches that
    actually changed, with their new values. Locks the row: concurrent edits of other settings
    keys are not lost."""
    allowed = {"require_mfa"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"unknown security settings: {sorted(unknown)}")
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        current = dict(locked.settings or {})
        changed = {key: value for key, value in changes.items() if bool(current.get(key)) != value}
        if changed:
            current.update(changed)
            locked.settings = current
            locked.save(update_fields=["settings", "updated_at"])
    tenant.settings = current
    return changed


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
    from tenants.emails import send_followup_email

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
