"""The tenant's "require two-factor for everyone" switch, for the web pages.

allauth has no such enforcement. A signed-in member of a tenant with ``settings["require_mfa"]``
and no second factor is sent to the TOTP enrolment page for every page but enrolment itself,
sign-out, reauthentication and static files. Any second factor counts, a confirmed email device
too: the web sign-in challenges email codes (``accounts.login_stages``). The API enforces the same rule in
``leanvibe.api.base.TenantAPIView`` (403 ``mfa_enrollment_required``), where the bearer token
is known.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from accounts.services.mfa import mfa_enrollment_required, tenant_requires_mfa

# Paths a member who must enrol can still reach.
ALLOWED_PREFIXES = (
    "/accounts/2fa/",
    "/accounts/logout/",
    "/accounts/reauthenticate/",
    "/api/",  # the API answers for itself (JSON 403), see TenantAPIView
)


class MfaEnrollmentMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        # The switch is read from the tenant row already loaded: no query unless it is on.
        if tenant_requires_mfa(tenant) and not self._allowed(request.path):
            user = getattr(request, "user", None)
            if mfa_enrollment_required(tenant=tenant, user=user):
                return HttpResponseRedirect(reverse("mfa_activate_totp", urlconf="leanvibe.urls_tenant"))
        return self.get_response(request)

    @staticmethod
    def _allowed(path: str) -> bool:
        return path.startswith((*ALLOWED_PREFIXES, settings.STATIC_URL))
