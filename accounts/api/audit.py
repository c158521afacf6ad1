"""``GET /api/v1/audit-events``: the tenant's security audit trail, for admins.

Filters: ``type`` (an event type such as ``login.failed``, or its group such as ``login``),
``actor`` (user id or email), ``since`` / ``until`` (ISO dates or date-times; a bare ``until``
date includes that day). Newest first, paginated by ``limit`` (1-200, default 50) and
``offset``. ``format=csv``: every matching event (no pagination) as a streamed CSV download,
recorded as an ``audit.exported`` event.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from django.http import StreamingHttpResponse
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.audit_log import audit_filters_parse, audit_page
from accounts.models import AuditEvent, Role, User
from accounts.services.audit import audit_log_export
from leanvibe.api.base import TenantAPIView
from leanvibe.parsing import bad_parameter

FORMATS = ("json", "csv")


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


class JsonErrorsNegotiation(BaseContentNegotiation):
    """``format`` is this view's own parameter (DRF would look for a renderer named ``csv`` and
    answer 404): responses other than the CSV, errors included, are JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, str(renderer.media_type)


class AuditEventListApi(TenantAPIView):
    role_map = {**TenantAPIView.role_map, "GET": Role.ADMIN, "HEAD": Role.ADMIN}
    content_negotiation_class = JsonErrorsNegotiation

    def get(self, request: Request) -> Response | StreamingHttpResponse:
        format_ = request.query_params.get("format", "json")
        if format_ not in FORMATS:
            raise bad_parameter("format", "Expected json or csv.", code="invalid_filter")
        filters = audit_filters_parse(request.query_params)
        if format_ == "csv":
            return audit_log_export(request=request, filters=filters, via="api")
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
