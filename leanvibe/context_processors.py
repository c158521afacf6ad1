from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def public_site_url() -> str:
    """The public site (landing, sign-up), e.g. ``http://localhost:8000/``."""
    port = "" if settings.SITE_PORT in (80, 443) else f":{settings.SITE_PORT}"
    return f"{settings.SITE_SCHEME}://{settings.BASE_DOMAIN}{port}/"


def site(request: HttpRequest) -> dict[str, Any]:
    return {
        "tenant": getattr(request, "tenant", None),
        "base_domain": settings.BASE_DOMAIN,
        "public_site_url": public_site_url(),
    }
