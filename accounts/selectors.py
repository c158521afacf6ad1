"""Reads of a tenant's members and invitations (in the current schema)."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from accounts.models import Invitation, User
from accounts.services import token_hash


def member_list() -> QuerySet[User]:
    """Every member of the organisation, active ones first, then by email."""
    return User.objects.order_by("-is_active", "email")


def member_get(user_id: object) -> User | None:
    """A member by id, or ``None`` (also for ids that are not integers)."""
    try:
        pk = int(str(user_id))
    except ValueError:
        return None
    if not 0 < pk < 2**63:
        return None
    return User.objects.filter(pk=pk).first()


def invitation_list(*, status: str | None = None) -> list[Invitation]:
    invitations = list(Invitation.objects.select_related("invited_by").order_by("-created_at"))
    if status:
        invitations = [i for i in invitations if i.status == status]
    return invitations


def invitation_get(invitation_id: object) -> Invitation | None:
    try:
        pk = uuid.UUID(str(invitation_id))
    except ValueError:
        return None
    return Invitation.objects.filter(pk=pk).first()


def invitation_by_secret(secret: str) -> Invitation | None:
    if not secret or len(secret) > 200:
        return None
    return Invitation.objects.filter(token_hash=token_hash(secret)).first()
