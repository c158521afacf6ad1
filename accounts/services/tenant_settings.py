"""What accounts does when a tenant's settings change (a ``tenants.registry`` listener):
the change goes into the tenant's audit log, and sign-in rules are emailed to every owner."""

from __future__ import annotations

from typing import Any

from accounts.models import AuditEvent, User
from accounts.services.audit import audit_record
from accounts.services.notify import owners_notify_security_change
from tenants.registry import SettingsChange
from tenants.tenant_settings import SPECS


def settings_change_record(change: SettingsChange) -> None:
    """Audit ``change`` in the tenant's log (current schema) and, when a sign-in rule changed,
    email the owners. Runs inside the transaction that saved the settings."""
    actor = change.actor
    member = User.objects.filter(pk=actor.member_id).first() if actor.member_id is not None else None
    security = [name for name in change.changes if SPECS[name].security]
    data: dict[str, Any] = {"changes": dict(change.changes)}
    if actor.via == "console":
        data["via"] = "console"
    audit_record(
        type=AuditEvent.Type.SECURITY_SETTINGS_CHANGED if security else AuditEvent.Type.SETTINGS_CHANGED,
        actor=member,
        actor_email=actor.email,
        ip_address=actor.ip_address,
        user_agent=actor.user_agent,
        **data,
    )
    if security:
        owners_notify_security_change(
            tenant=change.tenant,
            actor_email=actor.email,
            change="\n".join(SPECS[name].describe(change.changes[name]) for name in security),
        )
