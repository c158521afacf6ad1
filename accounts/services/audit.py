"""Recording security events in the current tenant's schema."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.models import AuditEvent, User
from leanvibe.http import client_address

LOGIN_AUDITED_ATTRIBUTE = "_leanvibe_login_audited"


def audit_record(
    *,
    type: str,
    request: HttpRequest | None = None,
    actor: User | None = None,
    actor_email: str = "",
    target_user: User | None = None,
    **data: Any,
) -> AuditEvent:
    """Record one security event. ``actor`` defaults to the request's authenticated user."""
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    event = AuditEvent.objects.create(
        type=type,
        actor=actor,
        actor_email=actor_email or (actor.email if actor else ""),
        target_user=target_user,
        ip_address=(client_address(request) or None) if request is not None else None,
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request else "")[:300],
        data=data,
    )
    if request is not None and type == AuditEvent.Type.LOGIN_SUCCEEDED:
        # The web sign-in receiver (accounts.services.throttle) then does not record it twice.
        setattr(request, LOGIN_AUDITED_ATTRIBUTE, True)
    return event
