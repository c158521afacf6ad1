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

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.emails import email_canonical
from accounts.models import AuditEvent, Invitation, Role, User
from accounts.permissions import invitation_role_check
from accounts.services import member_add, token_hash
from accounts.services.audit import audit_record
from leanvibe.errors import DomainError
from leanvibe.ratelimit import parse_rate, rate_consume, rate_first_refusal
from leanvibe.validators import strip_control_characters
from tenants.links import TENANT_URLCONF, tenant_url
from tenants.plans import Resource
from tenants.usage import quota_reserve

if TYPE_CHECKING:
    from tenants.models import Tenant

INVITATION_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class SentInvitation:
    invitation: Invitation
    accept_url: str


def invitation_accept_url(*, tenant: Tenant, secret: str) -> str:
    return tenant_url(tenant, reverse("invitation-accept", args=[secret], urlconf=TENANT_URLCONF))


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
        strip_control_characters(f"You are invited to join {tenant.organization_name} on LeanVibe"),
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


def _rate_limit(*, actor: User, request: HttpRequest | None) -> None:
    """Invitations and resends per inviter (``INVITATION_RATE``) and per tenant
    (``INVITATION_TENANT_RATE``): 429 ``rate_limited`` with ``Retry-After``, audited once per
    window. The cache keys are namespaced by the tenant's schema."""
    limits = (
        ("inviter", f"invitations:user:{actor.pk}", parse_rate(settings.INVITATION_RATE)),
        ("tenant", "invitations:tenant", parse_rate(settings.INVITATION_TENANT_RATE)),
    )
    for scope, key, rate in limits:
        retry_after = rate_consume(key=key, rate=rate)
        if retry_after is None:
            continue
        if rate_first_refusal(key=key, rate=rate):
            audit_record(
                type=AuditEvent.Type.INVITATION_RATE_LIMITED,
                request=request,
                actor=actor,
                scope=scope,
                limit=f"{rate.count} per {rate.seconds} s",
            )
        who = "you have" if scope == "inviter" else "your organisation has"
        raise DomainError(
            "rate_limited",
            f"Too many invitations: {who} sent {rate.count} in the last "
            f"{_duration(rate.seconds)}. Try again in {max(1, -(-retry_after // 60))} min.",
            status=429,
            retry_after=retry_after,
        )


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


def invitation_create(
    *, tenant: Tenant, actor: User, email: str, role: str = Role.MEMBER, request: HttpRequest | None = None
) -> SentInvitation:
    """Invite ``email`` with ``role``. Refused for an existing member's email, a pending
    invitation to the same email (resend it instead), when active members and pending
    invitations fill the plan's user limit, or past the invitation rate limits."""
    invitation_role_check(actor=actor, role=role)
    email = email_canonical(email)
    _rate_limit(actor=actor, request=request)
    with transaction.atomic():
        if User.objects.filter(email=email).exists():
            raise DomainError(
                "email_taken",
                "This email already belongs to a member of your organisation.",
                status=400,
            )
        pending = DomainError(
            "invitation_pending",
            "An invitation to this email is already pending: resend it instead.",
            status=400,
        )
        open_invitations = Invitation.objects.filter(
            email=email, accepted_at__isnull=True, revoked_at__isnull=True
        )
        # Checked before the seats: "resend it instead" is the useful answer even on a full plan.
        if any(existing.status == "pending" for existing in open_invitations):
            raise pending
        # Pending invitations hold seats; the limit is checked again when one is accepted.
        quota_reserve(tenant=tenant, resource=Resource.USERS)
        for existing in open_invitations.select_for_update():
            if existing.status == "pending":
                raise pending
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
            raise pending from exc
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
    """A new secret and a new expiry; the old link stops working. Resending an expired
    invitation makes it pending again, so it needs a free seat."""
    invitation_role_check(actor=actor, role=invitation.role)
    _rate_limit(actor=actor, request=request)
    with transaction.atomic():
        locked = _lock_open(invitation)
        if locked.status == "expired":
            quota_reserve(tenant=tenant, resource=Resource.USERS)
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
        # Consumed first: its own seat becomes the new member's (a failure below rolls it back).
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        user = member_add(
            tenant=tenant, email=invitation.email, password=password, role=invitation.role, username=username
        )
        # Following the emailed link proves the address.
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
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
