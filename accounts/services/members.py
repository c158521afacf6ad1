"""Writes of a tenant's members: add, change role, deactivate and reactivate.

Every function runs in the tenant's schema, checks the role rules of ``accounts.permissions``
(the same for the API and the pages), and records an audit event with actor and address.
Removing a member deactivates them: the row stays, so the audit trail keeps its actor and the
member can be reactivated; their email stays taken in the organisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from allauth.account.models import EmailAddress
from django.db import transaction
from django.http import HttpRequest

from accounts.models import AuditEvent, Role, User
from accounts.permissions import invitation_role_check, member_change_check
from accounts.services import member_add
from accounts.services.audit import audit_record
from accounts.services.tokens import RevokeReason, credentials_revoke
from leanvibe.errors import DomainError
from leanvibe.validators import validate_text_fields
from tenants.plans import Resource
from tenants.usage import quota_reserve

if TYPE_CHECKING:
    from tenants.models import Tenant


def _email_address_record(user: User, *, verified: bool) -> None:
    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": verified, "primary": True}
    )


def member_create(
    *,
    tenant: Tenant,
    actor: User,
    email: str,
    password: str,
    role: str = Role.MEMBER,
    username: str = "",
    request: HttpRequest | None = None,
) -> User:
    """An admin adds a member with a password (within the plan's user limit)."""
    invitation_role_check(actor=actor, role=role)
    with transaction.atomic():
        user = member_add(tenant=tenant, email=email, password=password, role=role, username=username)
        # The address is not verified: the member never proved they receive mail there.
        _email_address_record(user, verified=False)
        audit_record(
            type=AuditEvent.Type.MEMBER_ADDED, request=request, actor=actor, target_user=user, role=role
        )
    return user


def member_update(
    *,
    tenant: Tenant,
    actor: User,
    member: User,
    role: str | None = None,
    is_active: bool | None = None,
    username: str | None = None,
    request: HttpRequest | None = None,
) -> User:
    """Change a member's role, active state and/or username, as ``actor``.

    Active owners' rows are locked while counting them, so two concurrent demotions of the
    last two owners cannot both succeed. Reactivation counts against the plan's user limit.
    """
    validate_text_fields(username=username)
    with transaction.atomic():
        owners = list(
            User.objects.select_for_update()
            .filter(role=Role.OWNER, is_active=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        target = User.objects.select_for_update().filter(pk=member.pk).first()
        if target is None:
            raise DomainError("not_found", "User not found.", status=404)
        member_change_check(
            actor=actor,
            target=target,
            role=role,
            is_active=is_active,
            other_active_owners=len([pk for pk in owners if pk != target.pk]),
        )
        reactivates = is_active is True and not target.is_active
        deactivates = is_active is False and target.is_active
        old_role = target.role
        if reactivates:
            quota_reserve(tenant=tenant, resource=Resource.USERS)
        if role is not None:
            target.role = role
        if is_active is not None:
            target.is_active = is_active
        if username is not None:
            target.username = username
        target.full_clean(validate_unique=False, validate_constraints=False)
        target.save(update_fields=["role", "is_active", "username"])
        if deactivates:
            audit_record(
                type=AuditEvent.Type.MEMBER_DEACTIVATED, request=request, actor=actor, target_user=target
            )
            # Cut off at once: every API token and every web session.
            credentials_revoke(
                user=target, reason=RevokeReason.MEMBER_DEACTIVATED, actor=actor, request=request
            )
        if reactivates:
            audit_record(
                type=AuditEvent.Type.MEMBER_REACTIVATED, request=request, actor=actor, target_user=target
            )
        if target.role != old_role:
            audit_record(
                type=AuditEvent.Type.MEMBER_ROLE_CHANGED,
                request=request,
                actor=actor,
                target_user=target,
                old_role=old_role,
                new_role=target.role,
            )
    member.refresh_from_db()
    return member


def member_deactivate(
    *, tenant: Tenant, actor: User, member: User, request: HttpRequest | None = None
) -> User:
    return member_update(tenant=tenant, actor=actor, member=member, is_active=False, request=request)


def member_reactivate(
    *, tenant: Tenant, actor: User, member: User, request: HttpRequest | None = None
) -> User:
    return member_update(tenant=tenant, actor=actor, member=member, is_active=True, request=request)
