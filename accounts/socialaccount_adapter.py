"""allauth's social-account adapter for per-tenant single sign-on (the SAML flow runs through
allauth; see ``accounts.services.sso`` for the OpenID Connect flow).

Every social sign-in goes through ``sso_user_resolve``: the member linked to this IdP account,
else the member with the same verified email (linked now), else a new member created just in
time within the plan's user limit. A refusal is an error page and an audit event, and nothing
is created.
"""

from __future__ import annotations

from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.services import sso
from leanvibe.errors import DomainError


def sso_error_page(
    request: HttpRequest, detail: str, *, status: int = 403, code: str = "sso_refused"
) -> HttpResponse:
    return render(request, "accounts/sso/error.html", {"detail": detail, "code": code}, status=status)


def _first(values: Any) -> str:
    if isinstance(values, list):
        return str(values[0]) if values else ""
    return "" if values is None else str(values)


def saml_identity(app: SocialApp, sociallogin: SocialLogin) -> sso.SsoIdentity:
    """Name and role from the raw SAML attributes, through the provider's attribute mapping."""
    raw: dict[str, Any] = sociallogin.account.extra_data or {}
    mapping = app.settings.get("attribute_mapping") or sso.DEFAULT_SAML_ATTRIBUTE_MAPPING
    policy = sso.policy_of(app)

    def values(key: str) -> list[str]:
        names = mapping.get(key) or []
        for name in [names] if isinstance(names, str) else names:
            if raw.get(name):
                return [str(v) for v in raw[name]]
        return []

    user = sociallogin.user
    email = (getattr(user, "email", "") or "") if user else ""
    if not email and sociallogin.email_addresses:
        email = sociallogin.email_addresses[0].email
    verified = any(a.verified for a in sociallogin.email_addresses if a.email.lower() == email.lower())
    role_values = (
        [str(v) for v in raw.get(policy["role_claim"], [])] if policy["role_claim"] else values("role")
    )
    return sso.SsoIdentity(
        uid=str(sociallogin.account.uid),
        email=email,
        email_verified=verified,
        name=_first(values("name")),
        role_values=tuple(role_values),
    )


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        # New members are created by pre_social_login (just-in-time provisioning) under our
        # rules; allauth's own sign-up path is never reached.
        return False

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        provider = str(sociallogin.account.provider)
        try:
            app = sso.sso_provider_get(provider)
            identity = saml_identity(app, sociallogin)
            sso.sso_user_resolve(tenant=request.tenant, app=app, identity=identity, request=request)  # type: ignore[attr-defined]
        except DomainError as exc:
            sso.audit_sso_refused(request=request, provider=provider, reason=exc.detail)
            raise ImmediateHttpResponse(
                sso_error_page(request, exc.detail, status=exc.status, code=exc.code)
            ) from exc
        if not sociallogin.is_existing:
            sociallogin.lookup()

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: Any = None,
        extra_context: Any = None,
    ) -> None:
        reasons = (extra_context or {}).get("saml_last_error_reason") or error or exception or "unknown error"
        slug = getattr(getattr(provider, "app", None), "provider_id", "") or ""
        sso.audit_sso_refused(request=request, provider=slug, reason=str(reasons))
        raise ImmediateHttpResponse(
            sso_error_page(request, "The identity provider's answer was refused: " + str(reasons), status=403)
        )
