from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from leanvibe.errors import DomainError


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
        # allauth's authenticator-app stage is replaced by a subclass (same key and page) that a
        # sign-in which already had its second factor skips (accounts.login_stages).
        stages = list(super().get_login_stages())
        anchor = "allauth.mfa.stages.AuthenticateStage"
        position = stages.index(anchor) if anchor in stages else len(stages)
        if anchor in stages:
            stages[position] = "accounts.login_stages.SsoAwareAuthenticateStage"
        stages.insert(position, "accounts.login_stages.EmailCodeStage")
        return stages

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Organisations sign up on the public site; members join by invitation.
        return False
