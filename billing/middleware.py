"""The billing guard of tenant requests. It reads the tenant's access flag from Redis
(``billing.access_flags``: one read, no SQL, no Stripe call) and:

- ``payment_required`` (trial ended without a card): reads pass; any request that creates or
  changes data (POST, PUT, PATCH, DELETE) answers 402 ``payment_required``;
- ``suspended`` (unpaid after the grace period): every request answers 402 on the API; on the
  web, owners are sent to the billing page to pay, other members see a notice.

Signing in and out (``/api/v1/auth/``, ``/accounts/``) and billing itself (``/api/v1/billing/``,
``/billing/``) always pass, so members can sign in and owners can pay. An API request without
credentials passes too: the view answers 401 and an anonymous caller learns nothing of billing.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from billing import access_flags
from billing.models import Access
from leanvibe.errors import DomainError

EXEMPT_PREFIXES = ("/api/v1/auth/", "/api/v1/billing/", "/accounts/", "/billing/", "/static/", "/stripe/")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
DETAIL = {
    Access.PAYMENT_REQUIRED: (
        "The trial has ended: subscribe with a payment method (POST /api/v1/billing/subscribe) "
        "to create or change data again."
    ),
    Access.SUSPENDED: (
        "This organisation is suspended for non-payment: pay the open invoice "
        "(POST /api/v1/billing/portal) to restore access."
    ),
}


#: API paths the payment gate never closes: signing in and out, and billing itself.
API_EXEMPT_PREFIXES = ("/api/v1/auth/", "/api/v1/billing/")


def payment_required_error(access: str) -> DomainError:
    """The API's refusal (``billing.registrations``' gate, read in the usage meter's round trip)."""
    return DomainError("payment_required", DETAIL[Access(access)], status=402)


class PaymentRequiredMiddleware:
    """Web pages only: the API is guarded by the gate billing registers in the usage meter
    (``tenants.registry.ApiGate``), which reads the same flag in the meter's one Redis round
    trip, after authentication."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if tenant is None or request.path.startswith(EXEMPT_PREFIXES):
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return self.get_response(request)
        access = access_flags.access_of(tenant.id)
        if access not in (Access.PAYMENT_REQUIRED, Access.SUSPENDED):
            return self.get_response(request)
        if access == Access.PAYMENT_REQUIRED and request.method in SAFE_METHODS:
            return self.get_response(request)
        user = getattr(request, "user", None)
        if (
            access == Access.SUSPENDED
            and request.method in SAFE_METHODS
            and getattr(user, "role", "") == "owner"
        ):
            return redirect("/billing/")
        return render(request, "billing/payment_required.html", {"access": access}, status=402)
