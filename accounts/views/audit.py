"""The audit log page for admins: the same filters and events as ``GET /api/v1/audit-events``."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from accounts.audit_log import AuditFilters, audit_filters_parse, audit_page, event_categories
from accounts.models import AuditEvent, Role
from accounts.permissions import role_required
from accounts.services.audit import audit_log_export
from leanvibe.errors import DomainError


@role_required(Role.ADMIN)
def audit_log_page(request: HttpRequest) -> HttpResponse:
    error = ""
    try:
        filters = audit_filters_parse(request.GET)
    except DomainError as exc:
        error, filters = exc.detail, AuditFilters()
    events, count = audit_page(filters)
    previous_offset = max(0, filters.offset - filters.limit)
    next_offset = filters.offset + filters.limit
    context = {
        "events": events,
        "count": count,
        "filters": filters,
        "raw": {name: request.GET.get(name, "") for name in ("type", "actor", "since", "until")},
        "error": error,
        "type_choices": AuditEvent.Type.choices,
        "categories": event_categories(),
        "first": filters.offset + 1 if events else 0,
        "last": filters.offset + len(events),
        "previous_query": urlencode(filters.as_params(offset=previous_offset)) if filters.offset else None,
        "next_query": urlencode(filters.as_params(offset=next_offset)) if next_offset < count else None,
        "csv_query": urlencode(filters.as_params(limit="", offset="")),
    }
    return render(request, "accounts/audit/list.html", context, status=400 if error else 200)


@role_required(Role.ADMIN)
def audit_log_csv_view(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The page's "Download CSV": every event matching the page's filters (all pages)."""
    try:
        filters = audit_filters_parse(request.GET)
    except DomainError as exc:
        return HttpResponse(exc.detail, status=400, content_type="text/plain; charset=utf-8")
    return audit_log_export(request=request, filters=filters, via="web")
