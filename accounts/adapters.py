from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from leanvibe.errors import DomainError
from leanvibe.http import client_address


class AccountAdapter(DefaultAccountAdapter):
    def authenticate(self, request: HttpRequest, **credentials: Any) -> AbstractBaseUser | None:
        user = super().authenticate(request, **credentials)
        if user is not None:
            from accounts.services.sso import password_login_check

            try:  # a tenant that made SSO the only way in refuses passwords (owners excepted)
                password_login_check(tenant=getattr(request, "tenant", None), user=user)  # type: ignore[arg-type]
            except DomainError as exc:
                raise forms.ValidationError(exc.detail, code=exc.code) from exc
        return user

    def get_login_stages(self) -> list[str]:
        # Email codes (django-otp) are challenged just before allauth's authenticator-app stage.
        stages = list(super().get_login_stages())
        ours = "accounts.login_stages.EmailCodeStage"
        anchor = "allauth.mfa.stages.AuthenticateStage"
        stages.insert(stages.index(anchor) if anchor in stages else len(stages), ours)
        return stages

    def get_client_ip(self, request: HttpRequest) -> str:
        # The platform's one client-address rule (NUM_PROXIES), for allauth's rate limits and
        # user sessions. allauth's own raises ImproperlyConfigured (a 500) when X-Forwarded-For
        # has fewer entries than trusted proxies.
        address = client_address(request)
        if not address:
            raise PermissionDenied("Unable to determine the client's address.")
        return address

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Organisations sign up on the public site; members join by invitation.
        return False
