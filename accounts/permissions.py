"""Who may do what in a tenant: the role rules, in one place for the API and the pages.

Roles are ranked owner > admin > member; a higher role has every right of the lower ones.

- members work on projects and may read the list of their colleagues;
- admins manage members and invitations (and SSO and security settings);
- owners, in addition, manage billing and may delete the organisation.

Escalation rules (enforced by ``member_change_check`` and ``invitation_role_check``, which the
services call, so the API and the pages cannot differ):

- only an owner may give the owner role (by a role change, by creating a user, by an invitation);
- only an owner may change, deactivate or remove an owner;
- nobody may deactivate or remove themselves (ask another admin);
- the organisation always keeps at least one active owner: the last one cannot be demoted,
  deactivated or removed (409 ``last_owner``), whoever asks.

API views state the role a method needs in ``TenantAPIView.role_map``; pages use
``role_required`` below, which also declares the page's access rule (``leanvibe.access``: every
routed page must declare one). Both compare with ``ROLE_RANK``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from accounts.models import ROLE_RANK, Role, User
from leanvibe.access import Access, declare_access
from leanvibe.errors import DomainError

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., HttpResponseBase])


def has_role(user: Any, role: str) -> bool:
    return (
        bool(user and user.is_authenticated and user.is_active)
        and ROLE_RANK.get(getattr(user, "role", ""), 0) >= ROLE_RANK[Role(role)]
    )


def can_manage_members(user: Any) -> bool:
    return has_role(user, Role.ADMIN)


def can_manage_billing(user: Any) -> bool:
    return has_role(user, Role.OWNER)


def can_delete_organisation(user: Any) -> bool:
    return has_role(user, Role.OWNER)


def role_required(role: str) -> Callable[[ViewFunc], ViewFunc]:
    """Page decorator: sign-in required (redirect to the sign-in page), then ``role`` or a
    higher one (else the 403 page), declared as the page's access rule. Every page of a tenant's
    members uses it."""

    def decorator(view: ViewFunc) -> ViewFunc:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not has_role(request.user, role):
                raise PermissionDenied("Your role does not allow this action.")
            return view(request, *args, **kwargs)

        return declare_access(login_required(wrapped), Access(Role(role).value))  # type: ignore[return-value]

    return decorator


def _forbidden(detail: str) -> DomainError:
    return DomainError("permission_denied", detail, status=403)


def invitation_role_check(*, actor: User, role: str) -> None:
    if not can_manage_members(actor):
        raise _forbidden("Only admins and owners can manage members.")
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise _forbidden("Only an owner can make someone an owner.")


def member_change_check(
    *,
    actor: User,
    target: User,
    role: str | None = None,
    is_active: bool | None = None,
    other_active_owners: int,
) -> None:
    """Raise unless ``actor`` may give ``target`` this role and/or active state.

    ``other_active_owners`` counts the active owners other than ``target`` (the caller counts
    them with the owners' rows locked, so two concurrent demotions cannot both pass)."""
    if not can_manage_members(actor):
        raise _forbidden("Only admins and owners can manage members.")
    role_changes = role is not None and role != target.role
    deactivates = is_active is False and target.is_active
    if target.role == Role.OWNER and actor.role != Role.OWNER and (role_changes or is_active is not None):
        raise _forbidden("Only an owner can change or deactivate an owner.")
    if role == Role.OWNER and role_changes and actor.role != Role.OWNER:
        raise _forbidden("Only an owner can make someone an owner.")
    if deactivates and target.pk == actor.pk:
        raise DomainError("cannot_deactivate_self", "You cannot deactivate your own account.", status=400)
    losing_owner = target.role == Role.OWNER and target.is_active and (role_changes or deactivates)
    if losing_owner and other_active_owners == 0:
        raise DomainError(
            "last_owner",
            "The organisation must keep at least one active owner: make someone else an owner first.",
            status=409,
        )
