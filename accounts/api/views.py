"""``POST /api/v1/auth/login``: email and password in, bearer tokens out."""

from __future__ import annotations

from dataclasses import asdict

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from leanvibe.api.base import DangerouslyPublicAPIView, StrictSerializer


class LoginInput(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class LoginApi(DangerouslyPublicAPIView):
    """Public by nature: this is where a client gets its token. Runs in the schema of the
    request's tenant (its members) or, on the public host, of platform staff."""

    def post(self, request: Request) -> Response:
        data = LoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        tokens = services.auth_login(request=request, **data.validated_data)
        return Response(asdict(tokens))
