"""Error handlers: JSON under /api/, pages elsewhere."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from leanvibe.access import public_page
from leanvibe.api.exceptions import error_response
from leanvibe.http import is_operator
from leanvibe.metrics import scrape_registry


@public_page("Prometheus scrapes it; the view itself checks METRICS_TOKEN (or a local caller)")
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics: with ``METRICS_TOKEN`` set, for scrapers that send it as a bearer
    token; without it, only to the machine itself (development). Every gunicorn worker's
    counts (multiprocess mode) and beat's snapshot of the platform's gauges (``leanvibe.metrics``)."""
    if not is_operator(request):
        if settings.METRICS_TOKEN:
            return error_response("not_authenticated", "A valid metrics token is required.", 401)
        return error_response("not_found", "No such endpoint.", 404)
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response("not_found", "No such endpoint.", 404)
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response("server_error", "Something went wrong on our side.", 500)
    return render(request, "errors/500.html", status=500)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response("bad_request", "The request could not be understood.", 400)
    return render(request, "errors/400.html", status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response("permission_denied", "You may not do this.", 403)
    return render(request, "errors/403.html", status=403)
