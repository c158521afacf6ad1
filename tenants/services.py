"""Writes of tenants: provisioning, suspension, resumption, settings, plan and profile."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django_tenants.utils import schema_context, schema_exists

from leanvibe.emails import email_canonical
from leanvibe.validators import validate_text_fields
from tenants import tasks
from tenants.metrics import SIGNUPS
from tenants.models import Domain, Tenant
from tenants.plans import Plan
from tenants.registry import (
    ChangeActor,
    NewTenant,
    Phase,
    SettingsChange,
    provisioning_steps,
    setting_guards,
    settings_listeners,
)
from tenants.schemas import schema_create_for_tenant
from tenants.subdomains import candidates, slugify_organization
from tenants.tenant_settings import TenantSettings, settings_validate

logger = logging.getLogger(__name__)


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
                    settings=TenantSettings().to_stored(),
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
    SIGNUPS.inc()
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


def tenant_settings_update(
    *, tenant: Tenant, changes: Mapping[str, Any], actor: ChangeActor
) -> dict[str, Any]:
    """Change some of the tenant's settings (``tenants.tenant_settings``); returns those that
    really changed, with their new values.

    Strict: an unknown name or a value of the wrong type is a ``ValidationError`` naming it, and
    nothing is written. The row is locked, so concurrent changes of other settings are not lost.
    The guards registered for a setting may refuse a value (``DomainError``); the listeners
    (accounts: audit event in the tenant's log, email to its owners for sign-in rules) run in
    the tenant's schema inside this transaction. Saving the values already set does nothing."""
    wanted = settings_validate(changes)
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        current = locked.typed_settings
        changed = {name: value for name, value in wanted.items() if getattr(current, name) != value}
        if changed:
            with schema_context(locked.schema_name):
                _settings_guard(locked, changed)
                locked.settings = {**(locked.settings or {}), **replace(current, **changed).to_stored()}
                locked.save(update_fields=["settings", "updated_at"])
                change = SettingsChange(
                    tenant=locked,
                    changes=changed,
                    previous={name: getattr(current, name) for name in changed},
                    actor=actor,
                )
                for listener in settings_listeners():
                    listener(change)
    tenant.settings = locked.settings
    return changed


def _settings_guard(tenant: Tenant, changes: Mapping[str, Any]) -> None:
    for name, value in changes.items():
        for guard in setting_guards(name):
            guard(tenant, value)


def tenant_settings_check(*, tenant: Tenant, changes: Mapping[str, Any]) -> None:
    """What ``tenant_settings_update`` would refuse, without writing: a form shows it inline."""
    wanted = settings_validate(changes)
    with schema_context(tenant.schema_name):
        _settings_guard(tenant, wanted)


def tenant_plan_change(*, tenant: Tenant, plan: str) -> Tenant:
    """Move the tenant to another plan of the catalogue; its limits apply at once. Billing calls
    this when Stripe confirms a subscription change; the admin console for a manual override."""
    if plan not in Plan.values:
        raise ValidationError({"plan": f"Unknown plan {plan!r}."})
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if locked.plan != plan:
            locked.plan = plan
            locked.save(update_fields=["plan", "updated_at"])
    tenant.plan = locked.plan
    return tenant


def tenant_profile_update(*, tenant: Tenant, organization_name: str, billing_email: str) -> Tenant:
    """Rename the organisation or change its billing address (validated as on sign-up)."""
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        locked.organization_name = organization_name
        locked.billing_email = billing_email
        validate_text_fields(organization_name=organization_name, billing_email=billing_email)
        locked.full_clean(exclude=["schema_name", "settings"])
        locked.save(update_fields=["organization_name", "billing_email", "updated_at"])
    tenant.organization_name, tenant.billing_email = locked.organization_name, locked.billing_email
    return tenant


def domain_save(*, tenant: Tenant, domain: str, is_primary: bool, instance: Domain | None = None) -> Domain:
    """Add or change one of the tenant's host names. A tenant has exactly one primary domain
    (its canonical URLs point there): making one primary demotes the others."""
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk").first()
        row = instance if instance is not None and instance.pk is not None else Domain(tenant=tenant)
        if row.tenant_id != tenant.pk:
            raise ValidationError({"domain": "This domain belongs to another organisation."})
        row.domain = domain.strip().lower()
        row.is_primary = is_primary
        validate_text_fields(domain=row.domain)
        row.full_clean(exclude=["tenant"])
        if is_primary:
            Domain.objects.filter(tenant=tenant, is_primary=True).exclude(pk=row.pk).update(is_primary=False)
        elif not Domain.objects.filter(tenant=tenant, is_primary=True).exclude(pk=row.pk).exists():
            raise ValidationError({"is_primary": "An organisation needs one primary domain."})
        row.save()
    return row


def domain_remove(*, domain: Domain) -> None:
    """Remove a host name; the primary one stays (make another primary first)."""
    with transaction.atomic():
        current = Domain.objects.select_for_update().filter(pk=domain.pk).first()
        if current is None:
            return
        if current.is_primary:
            raise ValidationError(
                {"domain": "The primary domain cannot be removed: make another one primary first."}
            )
        current.delete()
