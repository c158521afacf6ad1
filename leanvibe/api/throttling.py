"""Rate limits per client address for DRF views (``throttle_classes``).

DRF's own ``get_ident`` reads ``X-Forwarded-For`` its own way; these use
``leanvibe.http.client_address``, the same address the audit trail and the sign-in locks see.
Counters live in Django's cache, namespaced per tenant schema. A refusal is DRF's ``Throttled``:
429 ``rate_limited`` with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from leanvibe.http import client_address


class ClientAddressRateThrottle(SimpleRateThrottle):
    """``rate_setting`` names the setting holding the rate (``"30/minute"``)."""

    rate_setting: ClassVar[str]

    def get_rate(self) -> str:
        return str(getattr(settings, self.rate_setting))

    def get_ident(self, request: Request) -> str:
        return client_address(request) or "unknown"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
