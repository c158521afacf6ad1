"""Writes of tenants: provisioning, suspension, resumption."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django_tenants.utils import schema_context, schema_exists

from leanvibe.emails import email_canonical
from leanvibe.validators import validate_text_fields
from tenants import tasks
from tenants.models import Domain, Tenant
from tenants.plans import Plan
from tenants.registry import NewTenant, Phase, provisioning_steps
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

    What a new tenant gets beyond its row, domain and schema (its owner, a Welcome project...)
    is the registered provisioning steps (``tenants.registry``), run in the new schema, in
    order, inside the transaction; ``AFTER_COMMIT`` steps and the emails (welcome now,
    follow-up later) run only once everything is committed.
    """
    organization_name = organization_name.strip()
    validate_text_fields(organization_name=organization_name)
    admin_email = email_canonical(admin_email)
    validate_email(admin_email)
    generated = None
    if admin_password is None:
        generated = admin_password = secrets.token_urlsafe(12)
    else:
        validate_password(admin_password, get_user_model()(email=admin_email))
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
                new = NewTenant(
                    tenant=tenant,
                    owner_email=admin_email,
                    owner_password_hash=password_hash,
                    owner_email_verified=generated is not None,
                )
                with schema_context(subdomain):
                    for step in provisioning_steps(Phase.IN_TRANSACTION):
                        step.run(new)
                transaction.on_commit(partial(_after_provision, new))
            break
        except IntegrityError:
            # Another sign-up took the same subdomain between our check and our insert.
            if attempt == 2:
                raise
    logger.info("provisioned tenant %s (%s) from %s", tenant.schema_name, tenant.id, source)
    return ProvisionedTenant(tenant, admin_email, generated, source)


def _after_provision(new: NewTenant) -> None:
    with schema_context(new.tenant.schema_name):
        for step in provisioning_steps(Phase.AFTER_COMMIT):
            step.run(new)
    tasks.tenant_send_welcome_email.delay(str(new.tenant.id))
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
