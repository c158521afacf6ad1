"""allauth's social-account adapter for per-tenant single sign-on (the SAML flow runs through
allauth; see ``accounts.sso.oidc`` for the OpenID Connect flow).

Every social sign-in goes through ``signin.sso_user_resolve``: the member linked to this IdP
identity, else — for an existing account with that email — the link page where its holder proves
the account once, else a new member created just in time within the plan's user limit. A
refusal is an error page and an audit event, and nothing is created.
"""

from __future__ import annotations

from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.emails import email_canonical
from accounts.login_stages import second_factor_mark_given
from accounts.models import User
from accounts.sso import providers, saml, signin
from leanvibe.errors import DomainError

# Set by accounts.views.sso.CheckedFinishACSView: the AuthnContextClassRef values of the
# assertion being completed (python3-saml's ``get_last_authn_contexts``).
SAML_AUTHN_CONTEXTS_ATTRIBUTE = "_leanvibe_saml_authn_contexts"
SESSION_LINK_TOKEN = "leanvibe_sso_link"  # noqa: S105 - a session key name


def sso_error_page(
    request: HttpRequest, detail: str, *, status: int = 403, code: str = "sso_refused"
) -> HttpResponse:
    return render(request, "accounts/sso/error.html", {"detail": detail, "code": code}, status=status)


def _first(values: Any) -> str:
    if isinstance(values, list):
        return str(values[0]) if values else ""
    return "" if values is None else str(values)


def link_required_redirect(
    request: HttpRequest, *, app: SocialApp, user: User, identity: signin.SsoIdentity, next_url: str = ""
) -> HttpResponse:
    """An SSO sign-in matched an existing account that has not linked this identity: keep it
    waiting server-side, bound to this browser's session, and ask for the account's password."""
    token = signin.sso_pending_stash(
        purpose=signin.Pending.LINK, app=app, user=user, identity=identity, next_url=next_url
    )
    request.session[SESSION_LINK_TOKEN] = token
    return redirect("sso-link")


def saml_identity(
    app: SocialApp, sociallogin: SocialLogin, authn_contexts: list[str] | None = None
) -> signin.SsoIdentity:
    """Name and role from the raw SAML attributes, through the provider's attribute mapping."""
    raw: dict[str, Any] = sociallogin.account.extra_data or {}
    mapping = app.settings.get("attribute_mapping") or saml.DEFAULT_SAML_ATTRIBUTE_MAPPING
    policy = providers.policy_of(app)

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
    verified = any(
        a.verified for a in sociallogin.email_addresses if email_canonical(a.email) == email_canonical(email)
    )
    role_values = (
        [str(v) for v in raw.get(policy["role_claim"], [])] if policy["role_claim"] else values("role")
    )
    return signin.SsoIdentity(
        uid=str(sociallogin.account.uid),
        email=email,
        email_verified=verified,
        name=_first(values("name")),
        role_values=tuple(role_values),
        idp_mfa=saml.saml_contexts_have_mfa(authn_contexts),
    )


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        # New members are created by pre_social_login (just-in-time provisioning) under our
        # rules; allauth's own sign-up path is never reached.
        return False

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        provider = str(sociallogin.account.provider)
        tenant = request.tenant  # type: ignore[attr-defined]
        try:
            app = providers.sso_provider_get(provider)
            identity = saml_identity(app, sociallogin, getattr(request, SAML_AUTHN_CONTEXTS_ATTRIBUTE, None))
            try:
                user = signin.sso_user_resolve(tenant=tenant, app=app, identity=identity, request=request)
            except signin.SsoLinkRequired as exc:
                raise ImmediateHttpResponse(
                    link_required_redirect(
                        request,
                        app=app,
                        user=exc.user,
                        identity=identity,
                        next_url=sociallogin.state.get("next") or "",
                    )
                ) from None
        except DomainError as exc:
            signin.audit_sso_refused(request=request, provider=provider, reason=exc.detail)
            raise ImmediateHttpResponse(
                sso_error_page(request, exc.detail, status=exc.status, code=exc.code)
            ) from exc
        if not signin.sso_second_factor_required(tenant=tenant, user=user, identity=identity):
            # No second factor, or one the IdP asserted and the tenant trusts: allauth's MFA
            # stage is skipped for this sign-in only.
            second_factor_mark_given(request)
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
        signin.audit_sso_refused(request=request, provider=slug, reason=str(reasons))
        raise ImmediateHttpResponse(
            sso_error_page(request, "The identity provider's answer was refused: " + str(reasons), status=403)
        )
