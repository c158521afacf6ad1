"""Which tenant a request is for: its host; on the public host, the ``X-Tenant-ID`` header or
else the tenant a bearer token names in its prefix (``tenants.token_scope``)."""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django_tenants.utils import remove_www

from leanvibe.api.exceptions import error_response
from leanvibe.db import connection
from tenants import selectors
from tenants.models import Tenant
from tenants.subdomains import VALID_SUBDOMAIN, is_reserved
from tenants.token_scope import TokenScope, token_scope

_HEADER_MAX = 64
_TOKEN_MAX = 200  # as BearerTokenAuthentication: a longer one is refused anyway
_REFRESH_BODY_MAX = 4096  # a refresh request is one short JSON field; a larger body is not read
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "text/html" not in request.headers.get("Accept", "")


def _tenant_from_header(value: str) -> Tenant | None:
    """Only a well-formed uuid or subdomain is ever looked up; anything else is unknown."""
    value = value.strip()
    if len(value) > _HEADER_MAX:
        return None
    if _UUID.match(value):
        return selectors.tenant_get_by_id(uuid.UUID(value))
    lowered = value.lower()
    if VALID_SUBDOMAIN.match(lowered) and not is_reserved(lowered):
        return selectors.tenant_get_by_subdomain(lowered)
    return None


@functools.cache
def _refresh_path() -> str:
    return reverse("api-refresh", urlconf=settings.PUBLIC_SCHEMA_URLCONF)


def _bearer_token(request: HttpRequest) -> str | None:
    parts = request.headers.get("Authorization", "").split()
    if len(parts) == 2 and parts[0].lower() == "bearer" and len(parts[1]) <= _TOKEN_MAX:
        return parts[1]
    return None


def _refresh_token_in_body(request: HttpRequest) -> str | None:
    """The ``refresh_token`` of a small JSON ``POST /api/v1/auth/refresh``: its credential is in
    the body, not the header. Anything unreadable is left for the view to refuse."""
    if (
        request.method != "POST"
        or request.path != _refresh_path()
        or request.content_type != "application/json"
    ):
        return None
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length.isdigit() or int(length) > _REFRESH_BODY_MAX:
        return None
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, nesting too deep
        return None
    value = data.get("refresh_token") if isinstance(data, dict) else None
    return value if isinstance(value, str) and len(value) <= _TOKEN_MAX else None


def _scope_of_request_token(request: HttpRequest) -> TokenScope | None:
    token = _bearer_token(request) or _refresh_token_in_body(request)
    return token_scope(token) if token else None


class TenantResolutionMiddleware:
    """Sets ``request.tenant`` (``None`` on the public site) and the connection's schema.

    Unlike django-tenants' own middleware this one never shows a tenant's data on an unknown
    host, answers in JSON for API clients, refuses suspended tenants, and puts the connection
    back on the public schema when the response is done.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        connection.set_schema_to_public()
        hostname = remove_www(request.get_host().split(":")[0]).lower()
        tenant: Tenant | None = None
        if hostname in settings.PUBLIC_HOSTS:
            header = request.headers.get("X-Tenant-ID")
            if request.path.startswith("/api/"):
                if header is not None:
                    tenant = _tenant_from_header(header)
                    if tenant is None:
                        return self._not_found(request)
                elif isinstance(scope := _scope_of_request_token(request), uuid.UUID):
                    # The token names its tenant; it is then looked up in that schema only.
                    tenant = selectors.tenant_get_by_id(scope)
                    if tenant is None:
                        return self._not_found(request)
        else:
            tenant = selectors.tenant_get_by_domain(hostname)
            if tenant is None:
                return self._not_found(request)

        if tenant is not None and not tenant.is_active:
            if _wants_json(request):
                return error_response(
                    "tenant_suspended", "This organisation is suspended. Contact support.", 403
                )
            return render(request, "tenants/suspended.html", {"tenant": tenant}, status=403)

        request.tenant = tenant  # type: ignore[attr-defined]
        if tenant is None:
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
        else:
            connection.set_tenant(tenant)
            request.urlconf = settings.ROOT_URLCONF
        try:
            return self.get_response(request)
        finally:
            connection.set_schema_to_public()

    @staticmethod
    def _not_found(request: HttpRequest) -> HttpResponse:
        if _wants_json(request):
            return error_response("tenant_not_found", "No organisation is known by that name.", 404)
        return render(request, "tenants/not_found.html", status=404)
