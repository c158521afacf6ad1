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

from django.conf import settings
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import AuditEvent, Role
from accounts.services import throttle, tokens_issue
from accounts.services.audit import audit_record, change_actor
from accounts.sso import oidc, providers, signin
from accounts.sso import settings as sso_settings
from leanvibe.api.base import DangerouslyPublicAPIView, StrictSerializer, TenantAPIView, TenantNotFound
from leanvibe.api.throttling import ClientAddressRateThrottle
from leanvibe.errors import DomainError
from leanvibe.http import client_address

# Admins may read the providers and settings; adding, changing or removing a provider and
# changing the settings is an owner's action (an IdP decides who signs in as whom).
_OWNER_WRITES: dict[str, Role] = {
    **dict.fromkeys(TenantAPIView.role_map, Role.OWNER),
    "GET": Role.ADMIN,
    "HEAD": Role.ADMIN,
    "OPTIONS": Role.ADMIN,
}


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


def _input(validated: dict[str, Any]) -> providers.ProviderInput:
    validated.pop("type", None)
    return providers.ProviderInput(**validated)


class SsoProviderListApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = _OWNER_WRITES

    def get(self, request: Request) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        return Response(
            [providers.sso_provider_describe(app, tenant) for app in providers.sso_provider_list()]
        )

    def post(self, request: Request) -> Response:
        data = ProviderCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        kind = data.validated_data["type"]
        tenant = request.tenant  # type: ignore[attr-defined]
        app = providers.sso_provider_create(
            tenant=tenant, kind=kind, data=_input(dict(data.validated_data)), request=request
        )
        return Response(providers.sso_provider_describe(app, tenant), status=status.HTTP_201_CREATED)


class SsoProviderDetailApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = _OWNER_WRITES

    def get(self, request: Request, provider_id: str) -> Response:
        app = providers.sso_provider_get(provider_id)
        return Response(providers.sso_provider_describe(app, request.tenant))  # type: ignore[attr-defined]

    def patch(self, request: Request, provider_id: str) -> Response:
        app = providers.sso_provider_get(provider_id)
        data = ProviderUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = request.tenant  # type: ignore[attr-defined]
        app = providers.sso_provider_update(
            tenant=tenant, app=app, data=_input(dict(data.validated_data)), request=request
        )
        return Response(providers.sso_provider_describe(app, tenant))

    def delete(self, request: Request, provider_id: str) -> Response:
        providers.sso_provider_delete(
            tenant=request.tenant,  # type: ignore[attr-defined]
            app=providers.sso_provider_get(provider_id),
            request=request,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class SsoSettingsInput(StrictSerializer):
    sso_only = serializers.BooleanField(required=False)
    trust_idp_mfa = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("sso_only", "trust_idp_mfa"):
            if name in self.initial_data and not isinstance(self.initial_data[name], bool):
                raise serializers.ValidationError({name: "Expected true or false."})
        return attrs


class SsoSettingsApi(TenantAPIView):
    """``{"sso_only", "trust_idp_mfa"}``: read by admins, changed by owners."""

    role_map: ClassVar[dict[str, Role]] = _OWNER_WRITES

    def get(self, request: Request) -> Response:
        return Response(sso_settings.sso_settings_of(request.tenant))  # type: ignore[attr-defined]

    def patch(self, request: Request) -> Response:
        data = SsoSettingsInput(data=request.data)
        data.is_valid(raise_exception=True)
        settings_ = sso_settings.sso_settings_update(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=change_actor(request, via="api"),
            **data.validated_data,
        )
        return Response(settings_)


class InitiateInput(StrictSerializer):
    provider = serializers.CharField(max_length=40)
    redirect_uri = serializers.CharField(max_length=2000)


class CallbackInput(StrictSerializer):
    """Either the IdP's ``code`` and ``state``, or — when the first call answered 422
    ``mfa_required`` — its ``mfa_token`` with the ``mfa_code``."""

    code = serializers.CharField(max_length=2048, required=False)
    state = serializers.CharField(max_length=200, required=False)
    mfa_token = serializers.CharField(max_length=200, required=False)
    mfa_code = serializers.CharField(max_length=64, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "mfa_token" in attrs:
            if "code" in attrs or "state" in attrs:
                raise serializers.ValidationError("Send either code and state, or mfa_token and mfa_code.")
            if not attrs.get("mfa_code"):
                raise serializers.ValidationError({"mfa_code": "This field is required with mfa_token."})
        else:
            missing = {name: "This field is required." for name in ("code", "state") if name not in attrs}
            if missing:
                raise serializers.ValidationError(missing)
        return attrs


class LinkInput(StrictSerializer):
    link_token = serializers.CharField(max_length=200)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    mfa_code = serializers.CharField(max_length=64, required=False, allow_blank=True)


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
        app = providers.sso_provider_get(data.validated_data["provider"])
        started = oidc.oidc_begin(app=app, redirect_uri=data.validated_data["redirect_uri"], flow="api")
        return Response(asdict(started))


def _signed_in(request: Request, *, user: Any, provider: str, method: str = "sso") -> Response:
    audit_record(
        type=AuditEvent.Type.LOGIN_SUCCEEDED, request=request, actor=user, method=method, provider=provider
    )
    return Response(asdict(tokens_issue(user=user, request=request)))


class SsoCallbackApi(DangerouslyPublicAPIView):
    """Public by nature: the client trades the IdP's code for our tokens. The state (single
    use, 10 minutes) ties the code to a sign-in this tenant started. An existing account that
    has not linked this identity is 409 ``sso_link_required`` (with a ``link_token`` for
    ``/api/v1/auth/sso/link``); an account with a second factor is 422 ``mfa_required`` with an
    ``mfa_token`` to send back here with the code."""

    def post(self, request: Request) -> Response:
        tenant = _require_tenant(request)
        data = CallbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "mfa_token" in values:
            user, pending, method = signin.sso_mfa_complete(
                token=values["mfa_token"], code=values["mfa_code"], request=request
            )
            return _signed_in(request, user=user, provider=pending.provider, method=f"sso+{method}")
        provider = ""
        try:
            app, claims, _ = oidc.oidc_complete(flow="api", code=values["code"], state=values["state"])
            provider = app.provider_id
            identity = oidc.oidc_identity(app, claims)
            try:
                user = signin.sso_user_resolve(tenant=tenant, app=app, identity=identity, request=request)
            except signin.SsoLinkRequired as exc:
                token = signin.sso_pending_stash(
                    purpose=signin.Pending.LINK, app=app, user=exc.user, identity=identity
                )
                raise DomainError(
                    exc.code,
                    exc.detail,
                    status=exc.status,
                    link_token=token,
                    expires_in=settings.SSO_PENDING_TTL,
                ) from None
            signin.sso_mfa_challenge(tenant=tenant, app=app, user=user, identity=identity)
        except DomainError as exc:
            if exc.code != "mfa_required":
                signin.audit_sso_refused(request=request, provider=provider, reason=exc.detail)
            raise
        method = "sso+idp_mfa" if identity.idp_mfa else "sso"
        return _signed_in(request, user=user, provider=provider, method=method)


class SsoLinkApi(DangerouslyPublicAPIView):
    """Public by nature: the person proves, with the account's password and second factor,
    that the account an SSO sign-in matched is theirs; the identity is then linked to it and
    tokens are issued. Wrong passwords count toward the account's sign-in lock."""

    def post(self, request: Request) -> Response:
        _require_tenant(request)
        data = LinkInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            user, pending = signin.sso_link_confirm(
                token=values["link_token"],
                password=values["password"],
                mfa_code=values.get("mfa_code") or None,
                ip=client_address(request),
                request=request,
            )
        except throttle.LoginLocked as locked:
            raise exceptions.Throttled(wait=locked.retry_after, detail=locked.detail) from None
        return _signed_in(request, user=user, provider=pending.provider, method="sso_link")
