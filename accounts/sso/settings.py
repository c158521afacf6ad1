"""The tenant's single sign-on switches, ``sso_only`` (passwords refused but an owner's, see
``password_login_check``) and ``trust_idp_mfa`` (a second factor asserted by the IdP replaces
LeanVibe's). They are typed tenant settings (``tenants.tenant_settings``) written through
``tenants.services.tenant_settings_update``: changing them is an owner's action, audited and
emailed by accounts' settings listener; ``sso_only_guard`` refuses SSO-only without a provider."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accounts.models import Role, User
from accounts.sso.common import refuse
from accounts.sso.providers import sso_provider_list
from tenants.registry import ChangeActor
from tenants.services import tenant_settings_update

if TYPE_CHECKING:
    from tenants.models import Tenant


def sso_only_enabled(tenant: Tenant | None) -> bool:
    return tenant is not None and tenant.typed_settings.sso_only


def trust_idp_mfa_enabled(tenant: Tenant | None) -> bool:
    return tenant is not None and tenant.typed_settings.trust_idp_mfa


def password_login_check(*, tenant: Tenant | None, user: User | None, password_valid: bool) -> None:
    """Refuse a password sign-in when the tenant made SSO the only way in.

    Called after the password was checked, whatever the outcome: every attempt — a member's
    right or wrong password, an unknown email, an inactive account — gets the same 403
    ``sso_required``, so the answer never tells whether the password was right. Owners keep
    their password as a break-glass way in (a broken IdP cannot lock an organisation out): only
    an active owner with the right password passes. Outside SSO-only tenants this does nothing.
    """
    if not sso_only_enabled(tenant):
        return
    if user is not None and password_valid and user.is_active and user.role == Role.OWNER:
        return
    raise refuse(
        "sso_required",
        "This organisation signs in with single sign-on only: use your identity provider.",
        status=403,
    )


def sso_settings_of(tenant: Tenant | None) -> dict[str, bool]:
    return {"sso_only": sso_only_enabled(tenant), "trust_idp_mfa": trust_idp_mfa_enabled(tenant)}


def sso_only_guard(tenant: Tenant, value: Any) -> None:
    """SSO can be made the only way in once there is an identity provider to sign in with."""
    if value and not sso_provider_list():
        raise refuse(
            "sso_provider_required", "Add an identity provider before making SSO the only way in.", status=409
        )


def sso_settings_update(
    *, tenant: Tenant, actor: ChangeActor, sso_only: bool | None = None, trust_idp_mfa: bool | None = None
) -> dict[str, bool]:
    """Change the tenant's SSO switches (an owner's action); unchanged values are left alone."""
    wanted = {
        k: v for k, v in {"sso_only": sso_only, "trust_idp_mfa": trust_idp_mfa}.items() if v is not None
    }
    tenant_settings_update(tenant=tenant, changes=wanted, actor=actor)
    return sso_settings_of(tenant)
