"""Bearer tokens for the API: one indexed query per request (token joined to its user)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.journey import api_token_used_report
from accounts.models import AuthToken
from accounts.services import token_hash
from accounts.services.tokens import token_activity_touch
from tenants.token_scope import token_fits_connection


class BearerTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[Any, AuthToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2 or len(parts[1]) > 200:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.") from exc
        # The token table is in the schema of the request's tenant: a token minted in
        # another tenant (or on the public site) is simply not found here. One whose prefix
        # names another tenant is refused without a lookup.
        if not token_fits_connection(secret):
            raise exceptions.AuthenticationFailed("Invalid or expired access token.")
        token = (
            AuthToken.objects.select_related("user")
            .filter(token_hash=token_hash(secret), kind=AuthToken.Kind.ACCESS)
            .first()
        )
        if token is None or token.revoked_at is not None or token.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed("Invalid or expired access token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This account is deactivated.")
        # Last activity goes to the cache (shown in the sessions list), never an extra query.
        token_activity_touch(token)
        api_token_used_report(token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class OptionalBearerTokenAuthentication(BearerTokenAuthentication):
    """For public endpoints: a bad token means anonymous, not an error."""

    def authenticate(self, request: Request) -> tuple[Any, AuthToken] | None:
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            return None
