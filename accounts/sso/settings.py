"""The tenant's single sign-on switches, in ``Tenant.settings``: ``sso_only`` (passwords refused
but an owner's, see ``password_login_check``) and ``trust_idp_mfa`` (a second factor asserted by
the IdP replaces LeanVibe's). Changing them is an owner's action, audited and emailed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.http import HttpRequest

from accounts.models import AuditEvent, Role, User
from accounts.services.audit import audit_record
from accounts.services.notify import owners_notify_security_change
from accounts.sso.common import refuse, request_actor
from accounts.sso.providers import sso_provider_list

if TYPE_CHECKING:
    from tenants.models import Tenant


def sso_only_enabled(tenant: Tenant | None) -> bool:
    return bool(tenant is not None and (tenant.settings or {}).get("sso_only"))


def trust_idp_mfa_enabled(tenant: Tenant | None) -> bool:
    return bool(tenant is not None and (tenant.settings or {}).get("trust_idp_mfa"))


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
    stored = (tenant.settings or {}) if tenant is not None else {}
    return {"sso_only": bool(stored.get("sso_only")), "trust_idp_mfa": bool(stored.get("trust_idp_mfa"))}


_SETTING_LABELS = {
    "sso_only": (
        "Single sign-on is now the only way in (owners keep their password).",
        "Passwords are accepted again.",
    ),
    "trust_idp_mfa": (
        "A second factor given at the identity provider is now accepted instead of LeanVibe's.",
        "Members with a second factor must now give it after single sign-on too.",
    ),
}


@transaction.atomic
def sso_settings_update(
    *,
    tenant: Tenant,
    sso_only: bool | None = None,
    trust_idp_mfa: bool | None = None,
    request: HttpRequest | None = None,
) -> dict[str, bool]:
    """Change the tenant's SSO settings (an owner's action). Each change is audited and emailed
    to every owner; unchanged values are left alone."""
    wanted = {
        k: v for k, v in {"sso_only": sso_only, "trust_idp_mfa": trust_idp_mfa}.items() if v is not None
    }
    if wanted.get("sso_only") and not sso_provider_list():
        raise refuse(
            "sso_provider_required", "Add an identity provider before making SSO the only way in.", status=409
        )
    locked = type(tenant).objects.select_for_update().get(pk=tenant.pk)
    current = sso_settings_of(locked)
    changes: dict[str, Any] = {k: bool(v) for k, v in wanted.items() if current[k] != bool(v)}
    if changes:
        locked.settings = {**(locked.settings or {}), **changes}
        locked.save(update_fields=["settings"])
        audit_record(type=AuditEvent.Type.SECURITY_SETTINGS_CHANGED, request=request, **changes)
        owners_notify_security_change(
            tenant=tenant,
            actor=request_actor(request),
            change="\n".join(_SETTING_LABELS[k][0 if v else 1] for k, v in changes.items()),
        )
    tenant.settings = locked.settings
    return sso_settings_of(locked)
