"""Recording security events in the current tenant's schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from accounts.audit_log import AuditFilters, audit_csv_filename, audit_csv_lines, audit_event_list
from accounts.metrics import login_observe
from accounts.models import AuditEvent, User
from leanvibe.http import client_address
from tenants.registry import ChangeActor

LOGIN_AUDITED_ATTRIBUTE = "_leanvibe_login_audited"


def audit_record(
    *,
    type: str,
    request: HttpRequest | None = None,
    actor: User | None = None,
    actor_email: str = "",
    target_user: User | None = None,
    ip_address: str | None = None,
    user_agent: str = "",
    **data: Any,
) -> AuditEvent:
    """Record one security event. ``actor`` defaults to the request's authenticated user; the
    address and user agent come from ``request``, or are given when there is none."""
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    event = AuditEvent.objects.create(
        type=type,
        actor=actor,
        actor_email=actor_email or (actor.email if actor else ""),
        target_user=target_user,
        ip_address=(client_address(request) or None) if request is not None else ip_address,
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request is not None else user_agent)[:300],
        data=data,
    )
    login_observe(type, data)
    if request is not None and type == AuditEvent.Type.LOGIN_SUCCEEDED:
        # The web sign-in receiver (accounts.services.throttle) then does not record it twice.
        setattr(request, LOGIN_AUDITED_ATTRIBUTE, True)
    from accounts.journey import journey_audit_react  # the journey reads this module's events

    journey_audit_react(event)
    return event


def _in_schema(schema_name: str, lines: Iterator[str]) -> Iterator[str]:
    """A streamed body is read after the middleware has run (and reset the connection to the
    public schema): the rows are read in the tenant's schema all the same."""
    with schema_context(schema_name):
        yield from lines


def audit_log_export(*, request: HttpRequest, filters: AuditFilters, via: str) -> StreamingHttpResponse:
    """Every event of the current tenant matching ``filters`` (not paginated) as a streamed CSV
    download; the export is itself recorded (``audit.exported``, which ticks the journey's step)."""
    tenant = request.tenant  # type: ignore[attr-defined]
    audit_record(
        type=AuditEvent.Type.AUDIT_EXPORTED,
        request=request,
        via=via,
        filters={k: v for k, v in filters.as_params().items() if k not in ("limit", "offset")},
    )
    response = StreamingHttpResponse(
        _in_schema(tenant.schema_name, audit_csv_lines(audit_event_list(filters))), content_type="text/csv"
    )
    filename = audit_csv_filename(tenant.subdomain, timezone.localdate())
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def change_actor(request: HttpRequest, *, via: str) -> ChangeActor:
    """Who is making a change through ``request``: the signed-in member of this tenant (platform
    staff on the public host are named by email only), with the client address."""
    user = getattr(request, "user", None)
    member = user if isinstance(user, User) and user.is_authenticated else None
    in_tenant = getattr(connection, "schema_name", None) != get_public_schema_name()
    return ChangeActor(
        email=member.email if member is not None else "",
        member_id=member.pk if member is not None and in_tenant else None,
        ip_address=client_address(request) or None,
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        via=via,
    )
