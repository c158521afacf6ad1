"""Billing API under ``/api/v1/billing/``: the public plan list, and per tenant its
subscription, invoices and the owners' actions (members read, owners manage)."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from billing import selectors, services
from billing.models import BillingAccount
from leanvibe.access import Access
from leanvibe.api.base import PlatformAPIView, StrictSerializer, TenantAPIView
from leanvibe.errors import DomainError
from tenants.links import tenant_url
from tenants.models import Tenant
from tenants.plans import Interval, Plan

MEMBER_READS_OWNER_MANAGES = {
    "GET": "member",
    "HEAD": "member",
    "OPTIONS": "member",
    "POST": "owner",
    "PUT": "owner",
    "PATCH": "owner",
    "DELETE": "owner",
}


class PlanChoiceInput(StrictSerializer):
    plan_id = serializers.ChoiceField(choices=Plan.values)
    interval = serializers.ChoiceField(choices=[i.value for i in Interval], required=False, default="month")


class SubscribeInput(PlanChoiceInput):
    payment_method_id = serializers.RegexField(r"^[A-Za-z0-9_]{1,255}$", required=False, allow_blank=False)


class EmptyInput(StrictSerializer):
    pass


def _tenant(request: Request) -> Tenant:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    return tenant


def _subscription_body(tenant: Tenant, account: BillingAccount | None) -> dict[str, Any]:
    return selectors.subscription_public(tenant, account)


def _empty_body(request: Request) -> None:
    if request.body:  # an action takes no input; a body, if any, must be an empty JSON object
        EmptyInput(data=request.data).is_valid(raise_exception=True)


class PlanListApi(PlatformAPIView):
    """The plan catalogue with prices and limits: what the public pricing page shows, so anyone
    may read it, on the public host or a tenant's."""

    access_map: ClassVar = {"GET": Access.PUBLIC, "HEAD": Access.PUBLIC, "OPTIONS": Access.PUBLIC}

    def get(self, request: Request) -> Response:
        return Response(selectors.plans_public())


class _BillingApi(TenantAPIView):
    role_map: ClassVar = MEMBER_READS_OWNER_MANAGES


class SubscriptionApi(_BillingApi):
    def get(self, request: Request) -> Response:
        tenant = _tenant(request)
        return Response(_subscription_body(tenant, selectors.billing_account_of(tenant)))


class SubscribeApi(_BillingApi):
    def post(self, request: Request) -> Response:
        data = SubscribeInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = _tenant(request)
        result = services.subscribe(
            tenant=tenant,
            plan=data.validated_data["plan_id"],
            interval=data.validated_data["interval"],
            payment_method_id=data.validated_data.get("payment_method_id"),
            success_url=tenant_url(tenant, "/billing/?checkout=success"),
            cancel_url=tenant_url(tenant, "/billing/?checkout=cancel"),
        )
        if "checkout_url" in result:
            return Response({"checkout_url": result["checkout_url"]})
        return Response(_subscription_body(tenant, result["account"]), status=status.HTTP_201_CREATED)


class SubscriptionChangeApi(_BillingApi):
    def post(self, request: Request) -> Response:
        data = PlanChoiceInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = _tenant(request)
        account = services.subscription_change(
            tenant=tenant, plan=data.validated_data["plan_id"], interval=data.validated_data["interval"]
        )
        return Response(_subscription_body(tenant, account))


class SubscriptionCancelApi(_BillingApi):
    def post(self, request: Request) -> Response:
        _empty_body(request)
        tenant = _tenant(request)
        return Response(_subscription_body(tenant, services.subscription_cancel(tenant=tenant, cancel=True)))


class SubscriptionResumeApi(_BillingApi):
    def post(self, request: Request) -> Response:
        _empty_body(request)
        tenant = _tenant(request)
        account = selectors.billing_account_of(tenant)
        if account is None or not account.cancel_at_period_end:
            raise DomainError("not_canceled", "The subscription is not set to cancel.", status=409)
        return Response(_subscription_body(tenant, services.subscription_cancel(tenant=tenant, cancel=False)))


class PortalApi(_BillingApi):
    def post(self, request: Request) -> Response:
        _empty_body(request)
        tenant = _tenant(request)
        url = services.portal_session_create(tenant=tenant, return_url=tenant_url(tenant, "/billing/"))
        return Response({"url": url})


class InvoiceListApi(_BillingApi):
    def get(self, request: Request) -> Response:
        account = selectors.billing_account_of(_tenant(request))
        return Response({"results": selectors.invoices_of(account)})


class InvoiceUpcomingApi(_BillingApi):
    def get(self, request: Request) -> Response:
        upcoming = selectors.invoice_upcoming_of(selectors.billing_account_of(_tenant(request)))
        if upcoming is None:
            raise DomainError("not_found", "There is no upcoming invoice.", status=404)
        return Response(upcoming)
