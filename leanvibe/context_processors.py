from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from leanvibe.links import public_site_url


def site(request: HttpRequest) -> dict[str, Any]:
    return {
        "tenant": getattr(request, "tenant", None),
        "base_domain": settings.BASE_DOMAIN,
        "public_site_url": public_site_url(),
    }
