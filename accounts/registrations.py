"""What accounts adds to every tenant (``tenants.registry``), registered by ``AccountsConfig.ready``:
the seats quota, the owner created at provisioning, and who the tenant's owners are."""

from __future__ import annotations

from allauth.account.models import EmailAddress, EmailConfirmation
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, User
from accounts.services import seats_in_use, user_create
from accounts.services.tenant_settings import settings_change_record
from accounts.sso.settings import sso_only_guard
from tenants.links import TENANT_URLCONF, tenant_url
from tenants.models import Tenant
from tenants.plans import Resource
from tenants.registry import (
    NewTenant,
    Phase,
    ProvisioningStep,
    QuotaResource,
    TenantContacts,
    provisioning_step_register,
    quota_resource_register,
    setting_guard_register,
    settings_listener_register,
    tenant_contacts_register,
)

OWNER_STEP_ORDER = 10


def owner_create(new: NewTenant) -> None:
    """The tenant's first owner. An owner who chose a password on the sign-up page/API has not
    proved the address yet: the welcome email carries the confirmation link."""
    owner = user_create(
        email=new.owner_email, password=new.owner_password_hash, password_is_hashed=True, role=Role.OWNER
    )
    EmailAddress.objects.create(
        user=owner, email=owner.email, verified=new.owner_email_verified, primary=True
    )


def owner_emails(tenant: Tenant) -> list[str]:
    return list(User.objects.filter(role=Role.OWNER, is_active=True).values_list("email", flat=True))


def confirmation_url(tenant: Tenant, email: str) -> str | None:
    """allauth's own confirmation link for an unverified address (its key stored in the
    tenant's schema), or None when the address is verified."""
    address = EmailAddress.objects.filter(email=email, verified=False).first()
    if address is None:
        return None
    confirmation = EmailConfirmation.create(address)
    confirmation.sent = timezone.now()
    confirmation.save(update_fields=["sent"])
    path = reverse("account_confirm_email", args=[confirmation.key], urlconf=TENANT_URLCONF)
    return tenant_url(tenant, path)


def active_member_count_sql(quoted_schema: str) -> str:
    return f"SELECT count(*) FROM {quoted_schema}.{User._meta.db_table} WHERE is_active"  # noqa: S608


def register() -> None:
    quota_resource_register(
        QuotaResource(
            name=Resource.USERS,
            label=str(Resource.USERS.label),
            count=lambda tenant: seats_in_use(),
            order=20,
            noun=("User", "users"),
        )
    )
    provisioning_step_register(
        ProvisioningStep(
            name="accounts.owner", order=OWNER_STEP_ORDER, run=owner_create, phase=Phase.IN_TRANSACTION
        )
    )
    tenant_contacts_register(
        TenantContacts(
            owner_emails=owner_emails,
            confirmation_url=confirmation_url,
            member_count_sql=active_member_count_sql,
        )
    )
    settings_listener_register(settings_change_record)
    setting_guard_register("sso_only", sso_only_guard)
