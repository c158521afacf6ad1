"""Platform API for tenants, and a tenant's own usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from leanvibe.access import Access
from leanvibe.api.base import (
    PlatformAPIView,
    StaffAPIView,
    StrictSerializer,
    TenantAPIView,
)
from leanvibe.api.throttling import ClientAddressRateThrottle
from leanvibe.emails import CanonicalEmailSerializerField
from leanvibe.errors import DomainError
from leanvibe.parsing import InvalidValue, bad_parameter, parse_choice, parse_uuid
from leanvibe.validators import validate_no_control_characters
from tenants import selectors, services
from tenants.models import Tenant
from tenants.plans import Plan
from tenants.usage import usage_for


class TenantOutput(serializers.Serializer):
    id = serializers.UUIDField()
    organization_name = serializers.CharField()
    subdomain = serializers.CharField()
    domain = serializers.CharField(source="primary_domain")
    plan = serializers.CharField()
    status = serializers.CharField()
    is_active = serializers.BooleanField()
    user_count = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_user_count(self, tenant: Tenant) -> int:
        counts = self.context.get("user_counts")
        if counts is not None:
            return int(counts.get(tenant.id, 0))
        return selectors.tenant_user_count(tenant)


class TenantCreateInput(StrictSerializer):
    organization_name = serializers.CharField(max_length=200, validators=[validate_no_control_characters])
    billing_email = serializers.EmailField(max_length=254)
    plan = serializers.ChoiceField(choices=Plan.choices, required=False, default=Plan.STARTER)
    admin_email = CanonicalEmailSerializerField(max_length=254)
    admin_password = serializers.CharField(
        max_length=4096, required=False, trim_whitespace=False, write_only=True
    )

    def validate_organization_name(self, value: str) -> str:
        if not any(ch.isalnum() for ch in value):
            raise serializers.ValidationError("Enter your organisation's name.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        password = attrs.get("admin_password")
        if password is not None:
            try:
                validate_password(password, get_user_model()(email=attrs["admin_email"]))
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"admin_password": exc.messages}) from exc
        return attrs


class SignupRateThrottle(ClientAddressRateThrottle):
    """``SIGNUP_RATE`` per client address; platform staff are not limited."""

    scope = "tenant_signup"
    rate_setting = "SIGNUP_RATE"

    def get_cache_key(self, request: Request, view: object) -> str | None:
        if request.user and request.user.is_authenticated and request.user.is_staff:
            return None
        return super().get_cache_key(request, view)


def _tenant_or_404(tenant_id: str) -> Tenant:
    pk = parse_uuid(tenant_id)
    tenant = selectors.tenant_get_by_id(pk) if pk else None
    if tenant is None:
        raise DomainError("not_found", "Tenant not found.", status=404)
    return tenant


class TenantListCreateApi(PlatformAPIView):
    """POST is self-service sign-up, public by nature (rate limited); OPTIONS describes it. GET
    (and HEAD) is for platform staff."""

    access_map = {"POST": Access.PUBLIC, "OPTIONS": Access.PUBLIC, "GET": Access.STAFF, "HEAD": Access.STAFF}
    throttle_classes = [SignupRateThrottle]

    def get_throttles(self):  # type: ignore[no-untyped-def]
        return super().get_throttles() if self.request.method == "POST" else []

    def get(self, request: Request) -> Response:
        filters: dict[str, str | None] = {}
        for name, choices in (("status", Tenant.Status.values), ("plan", Plan.values)):
            raw = request.query_params.get(name)
            try:
                filters[name] = parse_choice(raw, choices) if raw else None
            except InvalidValue as exc:
                raise bad_parameter(name, exc, code="invalid_filter") from None
        tenants = list(selectors.tenant_list(**filters).prefetch_related("domains"))
        counts = selectors.tenant_user_counts(tenants)
        data = TenantOutput(tenants, many=True, context={"user_counts": counts}).data
        return Response({"results": data})

    def post(self, request: Request) -> Response:
        if getattr(request, "tenant", None) is not None:
            raise DomainError("wrong_host", "Create organisations on the public host.", status=400)
        data = TenantCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.tenant_provision(**data.validated_data)
        body = TenantOutput(result.tenant).data
        return Response(body, status=status.HTTP_201_CREATED)


class TenantDetailApi(PlatformAPIView):
    """Staff see any tenant; a member sees their own (via its host or X-Tenant-ID)."""

    access_map: ClassVar[Mapping[str, Access]] = {"GET": Access.MEMBER}

    def get(self, request: Request, tenant_id: str) -> Response:
        current = getattr(request, "tenant", None)
        if current is None:  # platform staff on the public host (the access rule saw to it)
            tenant = _tenant_or_404(tenant_id)
        elif current is not None and str(current.id) == str(tenant_id).lower():
            tenant = current
        else:
            raise DomainError("not_found", "Tenant not found.", status=404)
        return Response(TenantOutput(tenant).data)


class TenantSuspendApi(StaffAPIView):
    def post(self, request: Request, tenant_id: str) -> Response:
        tenant = services.tenant_suspend(tenant=_tenant_or_404(tenant_id))
        return Response(TenantOutput(tenant).data)


class TenantResumeApi(StaffAPIView):
    def post(self, request: Request, tenant_id: str) -> Response:
        tenant = services.tenant_resume(tenant=_tenant_or_404(tenant_id))
        return Response(TenantOutput(tenant).data)


class UsageApi(TenantAPIView):
    def get(self, request: Request) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        return Response(
            {
                "plan": tenant.plan,
                "resources": {
                    u.resource: {"used": u.used, "limit": u.limit, "label": u.label}
                    for u in usage_for(tenant)
                },
            }
        )
