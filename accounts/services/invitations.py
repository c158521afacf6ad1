"""Invitations: an admin invites an email with a role; the invitee sets a password on the
accept page and becomes a member.

The link carries a random secret (256 bits); only its SHA-256 is stored, so a database leak
yields no usable link. A link is single use, expires after ``INVITATION_LIFETIME`` (7 days),
dies when revoked, and dies when resent (resending makes a new secret). The secret exists only
in the request that makes it: the email is sent after commit from that process rather than
through Celery, so the secret never sits in the broker.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.emails import email_canonical
from accounts.models import AuditEvent, Invitation, Role, User
from accounts.permissions import invitation_role_check
from accounts.services import member_add, token_hash
from accounts.services.audit import audit_record
from leanvibe.errors import DomainError

if TYPE_CHECKING:
    from tenants.models import Tenant

INVITATION_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class SentInvitation:
    invitation: Invitation
    accept_url: str


def invitation_accept_url(*, tenant: Tenant, secret: str) -> str:
    from tenants.emails import tenant_site_url

    return f"{tenant_site_url(tenant)}invitations/accept/{secret}/"


def _send_email(*, tenant: Tenant, email: str, role: str, accept_url: str, inviter: str) -> None:
    context = {
        "tenant": tenant,
        "accept_url": accept_url,
        "role": Role(role).label,
        "inviter": inviter,
        "days": INVITATION_LIFETIME.days,
    }
    body = render_to_string("accounts/invitations/email.txt", context)
    send_mail(
        f"You are invited to join {tenant.organization_name} on LeanVibe",
        body,
        settings.DEFAULT_FROM_EMAIL,
        [email],
    )


def _new_secret(invitation: Invitation) -> str:
    secret = secrets.token_urlsafe(32)
    invitation.token_hash = token_hash(secret)
    invitation.last_sent_at = timezone.now()
    invitation.expires_at = invitation.last_sent_at + INVITATION_LIFETIME
    return secret


def _send_after_commit(*, tenant: Tenant, invitation: Invitation, secret: str, inviter: User) -> str:
    url = invitation_accept_url(tenant=tenant, secret=secret)
    transaction.on_commit(
        partial(
            _send_email,
            tenant=tenant,
            email=invitation.email,
            role=invitation.role,
            accept_url=url,
            inviter=inviter.username or inviter.email,
        )
    )
    return url


def invitation_create(
    *, tenant: Tenant, actor: User, email: str, role: str = Role.MEMBER, request: HttpRequest | None = None
) -> SentInvitation:
    """Invite ``email`` with ``role``. Refused for an existing member's email, a pending
    invitation to the same email (resend it instead), or when the plan's user limit is reached."""
    from tenants.plans import Resource
    from tenants.usage import quota_check

    invitation_role_check(actor=actor, role=role)
    email = email_canonical(email)
    with transaction.atomic():
        if User.objects.filter(email=email).exists():
            raise DomainError(
                "email_taken",
                "This email already belongs to a member of your organisation.",
                status=400,
            )
        # Fail early; the limit is checked again, authoritatively, when the invitation is accepted.
        quota_check(
            tenant=tenant, resource=Resource.USERS, current=User.objects.filter(is_active=True).count()
        )
        open_invitations = Invitation.objects.select_for_update().filter(
            email=email, accepted_at__isnull=True, revoked_at__isnull=True
        )
        for existing in open_invitations:
            if existing.status == "pending":
                raise DomainError(
                    "invitation_pending",
                    "An invitation to this email is already pending: resend it instead.",
                    status=400,
                )
            # An expired one only frees its place for the new invitation.
            existing.revoked_at = timezone.now()
            existing.save(update_fields=["revoked_at"])
        invitation = Invitation(email=email, role=role, invited_by=actor)
        secret = _new_secret(invitation)
        invitation.full_clean(validate_constraints=False)
        try:
            with transaction.atomic():
                invitation.save()
        except IntegrityError as exc:  # a concurrent invitation of the same email won the race
            raise DomainError(
                "invitation_pending",
                "An invitation to this email is already pending: resend it instead.",
                status=400,
            ) from exc
        audit_record(
            type=AuditEvent.Type.INVITATION_SENT,
            request=request,
            actor=actor,
            email=email,
            role=role,
            invitation_id=str(invitation.id),
        )
        url = _send_after_commit(tenant=tenant, invitation=invitation, secret=secret, inviter=actor)
    return SentInvitation(invitation, url)


def _lock_open(invitation: Invitation) -> Invitation:
    locked = Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
    if locked is None:
        raise DomainError("not_found", "Invitation not found.", status=404)
    if locked.accepted_at or locked.revoked_at:
        raise DomainError("invitation_closed", f"This invitation was already {locked.status}.", status=409)
    return locked


def invitation_resend(
    *, tenant: Tenant, actor: User, invitation: Invitation, request: HttpRequest | None = None
) -> SentInvitation:
    """A new secret and a new expiry; the old link stops working."""
    invitation_role_check(actor=actor, role=invitation.role)
    with transaction.atomic():
        locked = _lock_open(invitation)
        secret = _new_secret(locked)
        locked.save(update_fields=["token_hash", "last_sent_at", "expires_at"])
        audit_record(
            type=AuditEvent.Type.INVITATION_SENT,
            request=request,
            actor=actor,
            email=locked.email,
            role=locked.role,
            invitation_id=str(locked.id),
            resent=True,
        )
        url = _send_after_commit(tenant=tenant, invitation=locked, secret=secret, inviter=actor)
    return SentInvitation(locked, url)


def invitation_revoke(
    *, actor: User, invitation: Invitation, request: HttpRequest | None = None
) -> Invitation:
    invitation_role_check(actor=actor, role=invitation.role)
    with transaction.atomic():
        locked = _lock_open(invitation)
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit_record(
            type=AuditEvent.Type.INVITATION_REVOKED,
            request=request,
            actor=actor,
            email=locked.email,
            invitation_id=str(locked.id),
        )
    return locked


_INVALID = {
    "not_found": "This invitation link is not valid for this organisation.",
    "accepted": "This invitation has already been used.",
    "revoked": "This invitation was revoked.",
    "expired": "This invitation has expired. Ask an admin of the organisation to send a new one.",
}


def invitation_problem(invitation: Invitation | None) -> DomainError | None:
    """Why this link cannot be used, or ``None`` if it can."""
    if invitation is None:
        return DomainError("invitation_invalid", _INVALID["not_found"], status=404)
    if invitation.status != "pending":
        return DomainError(f"invitation_{invitation.status}", _INVALID[invitation.status], status=410)
    return None


def invitation_accept(
    *, tenant: Tenant, secret: str, password: str, username: str = "", request: HttpRequest | None = None
) -> User:
    """Create the invited member with the invited role and the chosen password. The link is
    consumed in the same transaction, so it works once even under concurrent submissions."""
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().filter(token_hash=token_hash(secret)).first()
        problem = invitation_problem(invitation)
        if problem is not None:
            raise problem
        assert invitation is not None  # noqa: S101 - narrowed by invitation_problem
        validate_password(password, User(email=invitation.email, username=username))
        user = member_add(
            tenant=tenant, email=invitation.email, password=password, role=invitation.role, username=username
        )
        from allauth.account.models import EmailAddress

        # Following the emailed link proves the address.
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        audit_record(
            type=AuditEvent.Type.INVITATION_ACCEPTED,
            request=request,
            actor=user,
            target_user=user,
            invitation_id=str(invitation.id),
            role=invitation.role,
        )
        audit_record(
            type=AuditEvent.Type.MEMBER_ADDED,
            request=request,
            actor=user,
            target_user=user,
            role=invitation.role,
            via="invitation",
        )
    return user
