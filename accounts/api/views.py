"""``POST /api/v1/auth/login``: email and password in, bearer tokens out."""

from __future__ import annotations

from dataclasses import asdict

from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.emails import CanonicalEmailSerializerField
from accounts.services import throttle
from accounts.services.login import auth_login
from leanvibe.api.base import DangerouslyPublicAPIView, StrictSerializer
from leanvibe.errors import DomainError
from leanvibe.http import client_address

# Refusals that count toward the sign-in lock: a wrong password, and any password sign-in an
# SSO-only tenant refuses (right or wrong, so that the lock does not tell them apart either).
COUNTED_FAILURES = frozenset({"invalid_credentials", "sso_required"})


class LoginInput(StrictSerializer):
    email = CanonicalEmailSerializerField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    mfa_code = serializers.CharField(max_length=64, required=False, allow_blank=True)


class LoginApi(DangerouslyPublicAPIView):
    """Public by nature: this is where a client gets its token. Runs in the schema of the
    request's tenant (its members) or, on the public host, of platform staff."""

    def post(self, request: Request) -> Response:
        data = LoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        email, ip = data.validated_data["email"], client_address(request)
        try:
            # Brute-force protection (accounts/services/throttle.py): refused while locked,
            # slowed after failures; the failure that reaches the limit is already a 429.
            throttle.login_attempt_guard(email=email, ip=ip)
            try:
                tokens = auth_login(request=request, **data.validated_data)
            except DomainError as exc:
                if exc.code in COUNTED_FAILURES:
                    throttle.login_failure_record(email=email, ip=ip)
                raise
        except throttle.LoginLocked as locked:
            raise exceptions.Throttled(wait=locked.retry_after, detail=locked.detail) from None
        throttle.login_success_reset(email=email)
        return Response(asdict(tokens))
