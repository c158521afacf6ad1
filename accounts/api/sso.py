"""Single sign-on API.

- ``GET|POST /api/v1/auth/sso/providers``, ``GET|PATCH|DELETE /api/v1/auth/sso/providers/{id}``
  (admins): the tenant's identity providers, with the URLs to give the IdP;
- ``GET|PATCH /api/v1/auth/sso/settings`` (admins): ``sso_only``;
- ``POST /api/v1/auth/sso/initiate`` and ``POST /api/v1/auth/sso/callback`` (anyone): the
  OpenID Connect authorization-code flow for API clients, ending in our bearer tokens.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import AuditEvent, Role
from accounts.services import sso, tokens_issue
from accounts.services.audit import audit_record
from leanvibe.api.base import DangerouslyPublicAPIView, StrictSerializer, TenantAPIView, TenantNotFound
from leanvibe.api.throttling import ClientAddressRateThrottle
from leanvibe.errors import DomainError

_ADMIN_ONLY: dict[str, Role] = dict.fromkeys(TenantAPIView.role_map, Role.ADMIN)


class _ProviderFields(StrictSerializer):
    name = serializers.CharField(max_length=40, required=False)
    server_url = serializers.CharField(max_length=500, required=False)
    client_id = serializers.CharField(max_length=191, required=False)
    client_secret = serializers.CharField(
        max_length=1000, required=False, allow_blank=True, trim_whitespace=False
    )
    metadata_xml = serializers.CharField(max_length=200_000, required=False, trim_whitespace=False)
    metadata_url = serializers.CharField(max_length=500, required=False)
    entity_id = serializers.CharField(max_length=500, required=False)
    attribute_mapping = serializers.DictField(required=False)
    allow_idp_initiated = serializers.BooleanField(required=False)
    allowed_domains = serializers.ListField(
        child=serializers.CharField(max_length=253), required=False, max_length=50
    )
    role_mapping = serializers.DictField(child=serializers.CharField(max_length=20), required=False)
    name_claim = serializers.CharField(max_length=200, required=False, allow_blank=True)
    role_claim = serializers.CharField(max_length=200, required=False, allow_blank=True)

    def validate_attribute_mapping(self, value: dict[str, Any]) -> dict[str, Any]:
        for names in value.values():
            ok = isinstance(names, str) or (
                isinstance(names, list) and all(isinstance(n, str) for n in names)
            )
            if not ok:
                raise serializers.ValidationError("Each value is an attribute name or a list of names.")
        return value


class ProviderCreateInput(_ProviderFields):
    type = serializers.ChoiceField(choices=["oidc", "saml"])
    name = serializers.CharField(max_length=40)


class ProviderUpdateInput(_ProviderFields):
    pass


def _input(validated: dict[str, Any]) -> sso.ProviderInput:
    validated.pop("type", None)
    return sso.ProviderInput(**validated)


class SsoProviderListApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = _ADMIN_ONLY

    def get(self, request: Request) -> Response:
        return Response([sso.sso_provider_describe(app, request) for app in sso.sso_provider_list()])

    def post(self, request: Request) -> Response:
        data = ProviderCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        kind = data.validated_data["type"]
        app = sso.sso_provider_create(kind=kind, data=_input(dict(data.validated_data)), request=request)
        return Response(sso.sso_provider_describe(app, request), status=status.HTTP_201_CREATED)


class SsoProviderDetailApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = _ADMIN_ONLY

    def get(self, request: Request, provider_id: str) -> Response:
        return Response(sso.sso_provider_describe(sso.sso_provider_get(provider_id), request))

    def patch(self, request: Request, provider_id: str) -> Response:
        app = sso.sso_provider_get(provider_id)
        data = ProviderUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        app = sso.sso_provider_update(app=app, data=_input(dict(data.validated_data)), request=request)
        return Response(sso.sso_provider_describe(app, request))

    def delete(self, request: Request, provider_id: str) -> Response:
        sso.sso_provider_delete(app=sso.sso_provider_get(provider_id), request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SsoSettingsInput(StrictSerializer):
    sso_only = serializers.BooleanField()

    def validate_sso_only(self, value: Any) -> bool:
        if not isinstance(self.initial_data.get("sso_only"), bool):
            raise serializers.ValidationError("Expected true or false.")
        return bool(value)


class SsoSettingsApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = _ADMIN_ONLY

    def get(self, request: Request) -> Response:
        return Response({"sso_only": sso.sso_only_enabled(request.tenant)})  # type: ignore[attr-defined]

    def patch(self, request: Request) -> Response:
        data = SsoSettingsInput(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["sso_only"] and not sso.sso_provider_list():
            raise DomainError(
                "sso_provider_required",
                "Add an identity provider before making SSO the only way in.",
                status=409,
            )
        tenant = request.tenant  # type: ignore[attr-defined]
        sso.sso_settings_update(tenant=tenant, sso_only=data.validated_data["sso_only"], request=request)
        return Response({"sso_only": sso.sso_only_enabled(request.tenant)})  # type: ignore[attr-defined]


class InitiateInput(StrictSerializer):
    provider = serializers.CharField(max_length=40)
    redirect_uri = serializers.CharField(max_length=2000)


class CallbackInput(StrictSerializer):
    code = serializers.CharField(max_length=2048)
    state = serializers.CharField(max_length=200)


def _require_tenant(request: Request) -> Any:
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        raise TenantNotFound()
    return tenant


class SsoInitiateThrottle(ClientAddressRateThrottle):
    """Each start stores a state in the cache: ``SSO_INITIATE_RATE`` per client address."""

    scope = "sso_initiate"
    rate_setting = "SSO_INITIATE_RATE"


class SsoInitiateApi(DangerouslyPublicAPIView):
    """Public by nature: a client starts a sign-in here before it has any token. Only the
    tenant's own providers are found (its schema); the state lives in its cache namespace.
    Rate limited per client address."""

    throttle_classes = [SsoInitiateThrottle]

    def post(self, request: Request) -> Response:
        _require_tenant(request)
        data = InitiateInput(data=request.data)
        data.is_valid(raise_exception=True)
        app = sso.sso_provider_get(data.validated_data["provider"])
        started = sso.oidc_begin(app=app, redirect_uri=data.validated_data["redirect_uri"], flow="api")
        return Response(asdict(started))


class SsoCallbackApi(DangerouslyPublicAPIView):
    """Public by nature: the client trades the IdP's code for our tokens. The state (single
    use, 10 minutes) ties the code to a sign-in this tenant started."""

    def post(self, request: Request) -> Response:
        tenant = _require_tenant(request)
        data = CallbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        provider = ""
        try:
            app, claims, _ = sso.oidc_complete(flow="api", **data.validated_data)
            provider = app.provider_id
            user = sso.sso_user_resolve(
                tenant=tenant, app=app, identity=sso.oidc_identity(app, claims), request=request
            )
        except DomainError as exc:
            sso.audit_sso_refused(request=request, provider=provider, reason=exc.detail)
            raise
        audit_record(
            type=AuditEvent.Type.LOGIN_SUCCEEDED, request=request, actor=user, method="sso", provider=provider
        )
        return Response(asdict(tokens_issue(user=user, request=request)))
