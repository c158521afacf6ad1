"""Reads of a tenant's members and invitations (in the current schema)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Invitation, User
from accounts.services import token_hash
from leanvibe.parsing import parse_id, parse_uuid


def member_list() -> QuerySet[User]:
    """Every member of the organisation, active ones first, then by email."""
    return User.objects.order_by("-is_active", "email")


def member_get(user_id: object) -> User | None:
    """A member by id, or ``None`` (also for ids that are not integers)."""
    pk = parse_id(str(user_id))
    return User.objects.filter(pk=pk).first() if pk else None


def invitation_list(*, status: str | None = None) -> list[Invitation]:
    invitations = list(Invitation.objects.select_related("invited_by").order_by("-created_at"))
    if status:
        invitations = [i for i in invitations if i.status == status]
    return invitations


def invitation_get(invitation_id: object) -> Invitation | None:
    pk = parse_uuid(invitation_id)
    return Invitation.objects.filter(pk=pk).first() if pk else None


def invitation_by_secret(secret: str) -> Invitation | None:
    if not secret or len(secret) > 200:
        return None
    return Invitation.objects.filter(token_hash=token_hash(secret)).first()
