"""Token refresh and logout, and a member's sessions.

``POST /api/v1/auth/refresh``, ``POST /api/v1/auth/logout``, ``POST /api/v1/auth/password``,
``GET /api/v1/auth/sessions``,
``DELETE /api/v1/auth/sessions/{id}``, ``DELETE /api/v1/users/{id}/sessions`` (admins).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, cast

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors
from accounts.models import AuthToken, Role, User
from accounts.services import passwords, tokens
from leanvibe.api.base import DangerouslyPublicAPIView, StrictSerializer, TenantAPIView
from leanvibe.errors import DomainError
from leanvibe.http import client_address


def _user(request: Request) -> User:
    return cast(User, request.user)  # TenantAPIView: always an authenticated member


def _token(request: Request) -> AuthToken:
    return cast(AuthToken, request.auth)  # BearerTokenAuthentication's AuthToken


class RefreshInput(StrictSerializer):
    refresh_token = serializers.CharField(max_length=200, trim_whitespace=False)


class RefreshApi(DangerouslyPublicAPIView):
    """Public: the caller's access token may have expired; the refresh token in the body is the
    credential. It is looked up in the schema of the request (a tenant's or, on the public host,
    platform staff's), like login."""

    def post(self, request: Request) -> Response:
        data = RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        issued = tokens.tokens_refresh(refresh_token=data.validated_data["refresh_token"], request=request)
        return Response(asdict(issued))


class PasswordChangeInput(StrictSerializer):
    current_password = serializers.CharField(max_length=4096, trim_whitespace=False)
    new_password = serializers.CharField(max_length=4096, trim_whitespace=False)


class PasswordChangeApi(TenantAPIView):
    """A member changes their password. Every API token of the account (this one included) and
    every web session is revoked: the client signs in again with the new password."""

    def post(self, request: Request) -> Response:
        data = PasswordChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        passwords.password_change(
            user=_user(request),
            current_password=data.validated_data["current_password"],
            new_password=data.validated_data["new_password"],
            ip=client_address(request),
            request=request,
        )
        return Response(status=204)


class LogoutApi(TenantAPIView):
    def post(self, request: Request) -> Response:
        tokens.tokens_logout(token=_token(request), request=request)
        return Response(status=204)


class SessionOutput(serializers.Serializer):
    id = serializers.CharField()
    kind = serializers.CharField()
    ip_address = serializers.CharField(allow_null=True)
    user_agent = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_activity = serializers.DateTimeField()
    current = serializers.BooleanField()


def _session_key(request: Request) -> str | None:
    session = getattr(request._request, "session", None)
    return session.session_key if session is not None else None


class SessionListApi(TenantAPIView):
    def get(self, request: Request) -> Response:
        sessions = tokens.sessions_list(
            user=_user(request),
            current_session_key=_session_key(request),
            current_family=_token(request).family,
        )
        return Response({"results": SessionOutput([asdict(s) for s in sessions], many=True).data})


class SessionDetailApi(TenantAPIView):
    def delete(self, request: Request, session_id: str) -> Response:
        if len(session_id) > 64:
            raise DomainError("not_found", "Session not found.", status=404)
        tokens.session_end(user=_user(request), session_id=session_id, actor=_user(request), request=request)
        return Response(status=204)


class UserSessionsApi(TenantAPIView):
    """An admin signs a member out everywhere (web sessions and API tokens)."""

    role_map = {**TenantAPIView.role_map, "DELETE": Role.ADMIN}

    def delete(self, request: Request, user_id: str) -> Response:
        member = selectors.member_get(user_id)
        if member is None:
            raise DomainError("not_found", "User not found.", status=404)
        if member.role == Role.OWNER and _user(request).role != Role.OWNER:
            raise DomainError("permission_denied", "Only an owner can sign out an owner.", status=403)
        ended: dict[str, Any] = tokens.sessions_end_all(user=member, actor=_user(request), request=request)
        return Response(ended)
