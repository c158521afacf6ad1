"""Request guards that run before tenant resolution."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.shortcuts import render

from leanvibe.api.exceptions import error_response
from leanvibe.parsing import BIGINT_MAX, InvalidValue, parse_int
from leanvibe.views import metrics


class RequestSizeLimitMiddleware:
    """Refuse API bodies over ``API_MAX_BODY_BYTES`` with a 413 before anything reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            try:
                length = parse_int(request.META.get("CONTENT_LENGTH") or "0", low=0, high=BIGINT_MAX)
            except InvalidValue:
                return error_response("bad_request", "Content-Length is not a number.", 400)
            if length > settings.API_MAX_BODY_BYTES:
                return error_response(
                    "payload_too_large",
                    f"Request body is larger than {settings.API_MAX_BODY_BYTES} bytes.",
                    413,
                    limit=settings.API_MAX_BODY_BYTES,
                )
        return self.get_response(request)


class NulInUrlMiddleware:
    """Refuse a URL whose path or query string carries a NUL character with a 400 (JSON under
    ``/api/``), before any view: it is never meaningful, and PostgreSQL cannot store or compare
    it (every lookup with one was a 500). Query parameters are parsed strictly by the views
    (``leanvibe.parsing``); this is the net under all of them, Django's admin and allauth's
    views included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.GET
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in query.getlist(key)) for key in query
        ):
            if request.path.startswith("/api/"):
                return error_response("bad_request", "The URL contains a NUL character.", 400)
            return render(request, "errors/400.html", status=400)
        return self.get_response(request)


def _is_address(host: str) -> bool:
    domain, _ = split_domain_port(host)
    try:
        ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        return False
    return True


class PodMetricsMiddleware:
    """``/metrics`` on a pod's address. Prometheus scrapes each web pod by its IP (the endpoints
    behind the ServiceMonitor), so the Host is that address: no site of ours, refused by
    ``ALLOWED_HOSTS`` and by tenant resolution. Such a request is answered here by the same
    guarded view (the ``METRICS_TOKEN`` bearer token, or the machine itself), as the probes are
    by ``leanvibe.health``. A tenant's host is a name, so a tenant's ``/metrics`` stays a 404."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/metrics" and _is_address(str(request.META.get("HTTP_HOST", ""))):
            return metrics(request)
        return self.get_response(request)
