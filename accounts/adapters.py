from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest

from accounts.emails import email_canonical
from accounts.services.sso import password_login_check, sso_only_enabled
from leanvibe.errors import DomainError


class AccountAdapter(DefaultAccountAdapter):
    def clean_email(self, email: str) -> str:
        # One form of every address: stored, looked up and compared canonical (accounts.emails).
        return email_canonical(super().clean_email(email))

    def authenticate(self, request: HttpRequest, **credentials: Any) -> AbstractBaseUser | None:
        if isinstance(credentials.get("email"), str):
            credentials["email"] = email_canonical(credentials["email"])
        user = super().authenticate(request, **credentials)
        tenant = getattr(request, "tenant", None)
        if sso_only_enabled(tenant):
            try:  # SSO-only: the same refusal whether or not the password was right (owners excepted)
                password_login_check(tenant=tenant, user=user, password_valid=user is not None)  # type: ignore[arg-type]
            except DomainError as exc:
                if user is not None:
                    # The password was right, so Django sent no user_login_failed: count this
                    # refusal like a wrong password (audit and sign-in lock), or the lock would
                    # tell the two apart.
                    user_login_failed.send(
                        sender=type(self),
                        credentials={"email": credentials.get("email", "")},
                        request=request,
                    )
                raise forms.ValidationError(exc.detail, code=exc.code) from exc
        return user

    def get_login_stages(self) -> list[str]:
        # Email codes (django-otp) are challenged just before allauth's authenticator-app stage.
        stages = list(super().get_login_stages())
        ours = "accounts.login_stages.EmailCodeStage"
        anchor = "allauth.mfa.stages.AuthenticateStage"
        stages.insert(stages.index(anchor) if anchor in stages else len(stages), ours)
        return stages

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Organisations sign up on the public site; members join by invitation.
        return False
