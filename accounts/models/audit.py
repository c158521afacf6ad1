"""The security audit trail of a tenant (in its schema)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    class Type(models.TextChoices):
        LOGIN_SUCCEEDED = "login.succeeded", "Sign-in succeeded"
        LOGIN_FAILED = "login.failed", "Sign-in failed"
        LOGOUT = "logout", "Signed out"
        TOKEN_REFRESHED = "token.refreshed", "Token refreshed"
        TOKEN_REUSE_DETECTED = "token.reuse_detected", "Refresh token reused: chain revoked"
        SESSION_ENDED = "session.ended", "Session ended"
        MFA_ENROLLED = "mfa.enrolled", "Two-factor enrolled"
        MFA_REMOVED = "mfa.removed", "Two-factor removed"
        MFA_FAILED = "mfa.failed", "Two-factor code refused"
        RECOVERY_CODE_USED = "mfa.recovery_code_used", "Recovery code used"
        SSO_PROVIDER_ADDED = "sso.provider_added", "SSO provider added"
        SSO_PROVIDER_CHANGED = "sso.provider_changed", "SSO provider changed"
        SSO_PROVIDER_REMOVED = "sso.provider_removed", "SSO provider removed"
        SSO_LOGIN_REFUSED = "sso.login_refused", "SSO sign-in refused"
        MEMBER_ADDED = "member.added", "Member added"
        MEMBER_ROLE_CHANGED = "member.role_changed", "Role changed"
        MEMBER_DEACTIVATED = "member.deactivated", "Member deactivated"
        MEMBER_REACTIVATED = "member.reactivated", "Member reactivated"
        MEMBER_REMOVED = "member.removed", "Member removed"
        INVITATION_SENT = "invitation.sent", "Invitation sent"
        INVITATION_ACCEPTED = "invitation.accepted", "Invitation accepted"
        INVITATION_REVOKED = "invitation.revoked", "Invitation revoked"
        SECURITY_SETTINGS_CHANGED = "security.settings_changed", "Security settings changed"
        SETTINGS_CHANGED = "settings.changed", "Organisation settings changed"
        SSO_LINKED = "sso.linked", "SSO identity linked to an account"
        SSO_LINK_REQUIRED = "sso.link_required", "SSO sign-in needs the account proven once"
        PASSWORD_CHANGED = "password.changed", "Password changed"
        PASSWORD_RESET = "password.reset", "Password reset"
        CREDENTIALS_REVOKED = "credentials.revoked", "Tokens and sessions revoked"
        EMAIL_CHANGED = "email.changed", "Primary email changed"
        INVITATION_RATE_LIMITED = "invitation.rate_limited", "Invitations rate limited"
        OUTBOUND_REFUSED = "outbound.refused", "Outbound request refused"
        AUDIT_EXPORTED = "audit.exported", "Audit log exported"
        EXPORT_REQUESTED = "export.requested", "Data export requested"
        EXPORT_DOWNLOADED = "export.downloaded", "Data export downloaded"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=40, choices=Type.choices, db_index=True)
    # Who did it (None for an anonymous failed sign-in), and whom it concerns.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_email = models.EmailField(blank=True)
    target_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} by {self.actor_email or 'anonymous'}"
