"""Request guards that run before tenant resolution."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from leanvibe.api.exceptions import error_response


class RequestSizeLimitMiddleware:
    """Refuse API bodies over ``API_MAX_BODY_BYTES`` with a 413 before anything reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error_response("bad_request", "Content-Length is not a number.", 400)
            if length > settings.API_MAX_BODY_BYTES:
                return error_response(
                    "payload_too_large",
                    f"Request body is larger than {settings.API_MAX_BODY_BYTES} bytes.",
                    413,
                    limit=settings.API_MAX_BODY_BYTES,
                )
        return self.get_response(request)
