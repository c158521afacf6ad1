"""Two-factor API: TOTP enrolment and removal, email codes, the tenant's security switches.

``POST /api/v1/auth/mfa/setup`` → ``{"secret", "otpauth_url", "qr_code", "backup_codes"}``
(pending until verified); ``POST /api/v1/auth/mfa/verify {"code"}`` activates it;
``GET /api/v1/auth/mfa`` tells what is enabled; ``DELETE /api/v1/auth/mfa {"code"}`` removes
every second factor. ``POST /api/v1/auth/mfa/email`` emails a code and ``POST
/api/v1/auth/mfa/email/verify {"code"}`` enables email codes. ``GET|PATCH
/api/v1/auth/security {"require_mfa"}`` (admins).
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role, User
from accounts.services import mfa as mfa_services
from accounts.services.audit import change_actor
from leanvibe.api.base import StrictSerializer, TenantAPIView
from tenants.services import tenant_settings_update


class CodeInput(StrictSerializer):
    code = serializers.CharField(max_length=64)


def _member(request: Request) -> User:
    return cast(User, request.user)  # TenantAPIView has authenticated a member


def _tenant(request: Request) -> Any:
    return request.tenant  # type: ignore[attr-defined]


def _status(user: Any) -> dict[str, Any]:
    methods = mfa_services.user_mfa_methods(user)
    return {"enabled": bool(methods), "methods": methods}


class MfaSetupApi(TenantAPIView):
    mfa_enrollment_exempt = True

    def post(self, request: Request) -> Response:
        setup = mfa_services.mfa_setup_begin(user=_member(request))
        return Response(
            {
                "secret": setup.secret,
                "otpauth_url": setup.otpauth_url,
                "qr_code": setup.qr_code,
                "backup_codes": setup.backup_codes,
                "expires_in": mfa_services.PENDING_SETUP_TIMEOUT,
            }
        )


class MfaVerifyApi(TenantAPIView):
    mfa_enrollment_exempt = True

    def post(self, request: Request) -> Response:
        data = CodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        mfa_services.mfa_setup_verify(
            user=_member(request), code=data.validated_data["code"], request=request
        )
        return Response(_status(_member(request)))


class MfaApi(TenantAPIView):
    mfa_enrollment_exempt = True

    def get(self, request: Request) -> Response:
        return Response(_status(_member(request)))

    def delete(self, request: Request) -> Response:
        data = CodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        mfa_services.mfa_remove(user=_member(request), code=data.validated_data["code"], request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MfaEmailApi(TenantAPIView):
    mfa_enrollment_exempt = True

    def post(self, request: Request) -> Response:
        mfa_services.mfa_email_enroll(user=_member(request))
        return Response(
            {"detail": "A code was sent to your email address: confirm it at /api/v1/auth/mfa/email/verify."},
            status=status.HTTP_202_ACCEPTED,
        )


class MfaEmailVerifyApi(TenantAPIView):
    mfa_enrollment_exempt = True

    def post(self, request: Request) -> Response:
        data = CodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        mfa_services.mfa_email_confirm(
            user=_member(request), code=data.validated_data["code"], request=request
        )
        return Response(_status(_member(request)))


class SecurityInput(StrictSerializer):
    require_mfa = serializers.BooleanField(required=False)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and "require_mfa" in data and not isinstance(data["require_mfa"], bool):
            raise serializers.ValidationError({"require_mfa": ["Expected true or false."]}, code="invalid")
        return super().to_internal_value(data)


class SecuritySettingsApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = {"GET": Role.ADMIN, "PATCH": Role.ADMIN}

    def get(self, request: Request) -> Response:
        return Response({"require_mfa": mfa_services.tenant_requires_mfa(_tenant(request))})

    def patch(self, request: Request) -> Response:
        data = SecurityInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant_settings_update(
            tenant=_tenant(request), changes=dict(data.validated_data), actor=change_actor(request, via="api")
        )
        return Response({"require_mfa": mfa_services.tenant_requires_mfa(_tenant(request))})
