"""``GET /api/v1/audit-events``: the tenant's security audit trail, for admins.

Filters: ``type`` (an event type such as ``login.failed``, or its group such as ``login``),
``actor`` (user id or email), ``since`` / ``until`` (ISO dates or date-times; a bare ``until``
date includes that day). Newest first, paginated by ``limit`` (1-200, default 50) and
``offset``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.audit_log import audit_filters_parse, audit_page
from accounts.models import AuditEvent, Role, User
from leanvibe.api.base import TenantAPIView


class _UserRef(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email"]


class AuditEventOutput(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    target_user = _UserRef(allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "type", "actor", "target_user", "ip_address", "user_agent", "data", "created_at"]

    def get_actor(self, event: AuditEvent) -> dict[str, object] | None:
        # A failed sign-in of an unknown email has no user, only the email that was tried.
        if event.actor_id is None and not event.actor_email:
            return None
        return {"id": event.actor_id, "email": event.actor.email if event.actor else event.actor_email}


class AuditEventListApi(TenantAPIView):
    role_map = {**TenantAPIView.role_map, "GET": Role.ADMIN, "HEAD": Role.ADMIN}

    def get(self, request: Request) -> Response:
        filters = audit_filters_parse(request.query_params)
        events, count = audit_page(filters)
        next_offset = filters.offset + filters.limit
        next_link = (
            f"{request.path}?{urlencode(filters.as_params(offset=next_offset))}"
            if next_offset < count
            else None
        )
        return Response(
            {
                "count": count,
                "limit": filters.limit,
                "offset": filters.offset,
                "next": next_link,
                "results": AuditEventOutput(events, many=True).data,
            }
        )
