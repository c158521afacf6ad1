"""Single sign-on pages: the OpenID Connect browser flow, the end of allauth's SAML flow with
our extra checks, the "sign in with SSO" chooser and the admins' SSO settings page.

The OIDC routes take allauth's own paths (``/accounts/oidc/<id>/login/`` and ``…/callback/``),
so the redirect URI given to the IdP is the usual allauth one, but every sign-in sends a nonce
and PKCE and verifies the ID token (see ``accounts.sso.oidc``).
"""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import urlsplit

from allauth.account.utils import perform_login
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.saml.utils import build_auth
from allauth.socialaccount.providers.saml.views import FinishACSView
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.adapters import same_host_url
from accounts.login_stages import second_factor_mark_given
from accounts.models import Role, User
from accounts.permissions import has_role, role_required
from accounts.services import throttle
from accounts.services.audit import change_actor
from accounts.services.mfa import user_mfa_methods
from accounts.socialaccount_adapter import (
    SAML_AUTHN_CONTEXTS_ATTRIBUTE,
    SESSION_LINK_TOKEN,
    link_required_redirect,
    sso_error_page,
)
from accounts.sso import common, oidc, providers, saml, signin, urls
from accounts.sso import settings as sso_settings
from accounts.views.login import locked_response
from leanvibe.access import public_page
from leanvibe.errors import DomainError
from leanvibe.http import client_address

logger = logging.getLogger(__name__)
_SESSION_STATES = "leanvibe_sso_states"


def _refused(request: HttpRequest, exc: DomainError, provider: str = "") -> HttpResponse:
    signin.audit_sso_refused(request=request, provider=provider, reason=exc.detail)
    status = exc.status if 400 <= exc.status < 500 else 403
    return sso_error_page(request, exc.detail, status=status, code=exc.code)


def _safe_next(request: HttpRequest) -> str:
    target = str(request.GET.get("next") or request.POST.get("next") or "")
    return target if same_host_url(request, target) else ""


# --- OpenID Connect -----------------------------------------------------------------------


@public_page("starts a single sign-on: the visitor has not signed in yet")
@require_http_methods(["GET", "POST"])
def oidc_login(request: HttpRequest, provider_id: str) -> HttpResponse:
    try:
        app = providers.sso_provider_get(provider_id)
        # The canonical redirect URI, the one the admin registered at the IdP (not the Host header).
        callback = urls.sso_urls(app, request.tenant)["redirect_uri"]  # type: ignore[attr-defined]
        started = oidc.oidc_begin(app=app, redirect_uri=callback, flow="web", next_url=_safe_next(request))
    except DomainError as exc:
        return _refused(request, exc, provider_id)
    # The state is also bound to this browser: a callback carrying someone else's state
    # (login CSRF) is refused.
    states = [s for s in request.session.get(_SESSION_STATES, []) if isinstance(s, str)][-4:]
    request.session[_SESSION_STATES] = [*states, started.state]
    return HttpResponseRedirect(started.authorization_url)


@public_page("the identity provider sends the visitor back here; the state in the session is checked")
@require_http_methods(["GET"])
def oidc_callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    state = str(request.GET.get("state", ""))
    states = request.session.get(_SESSION_STATES, [])
    try:
        if "error" in request.GET:
            raise DomainError(
                "sso_cancelled",
                f"The identity provider did not sign you in ({request.GET['error'][:100]}).",
                status=403,
            )
        if not state or state not in states:
            raise DomainError("sso_state_invalid", "The sign-in state is unknown or expired: start again.")
        request.session[_SESSION_STATES] = [s for s in states if s != state]
        app, claims, stashed = oidc.oidc_complete(
            state=state, code=str(request.GET.get("code", "")), flow="web"
        )
        if app.provider_id != provider_id:
            raise DomainError("sso_state_invalid", "The sign-in state belongs to another provider.")
        tenant = request.tenant  # type: ignore[attr-defined]
        identity = oidc.oidc_identity(app, claims)
        try:
            user = signin.sso_user_resolve(tenant=tenant, app=app, identity=identity, request=request)
        except signin.SsoLinkRequired as exc:
            return link_required_redirect(
                request, app=app, user=exc.user, identity=identity, next_url=stashed.get("next") or ""
            )
    except DomainError as exc:
        return _refused(request, exc, provider_id)
    return sso_perform_login(
        request,
        user=user,
        tenant=tenant,
        identity=identity,
        provider=provider_id,
        next_url=stashed.get("next"),
    )


def sso_perform_login(
    request: HttpRequest,
    *,
    user: Any,
    tenant: Any,
    identity: signin.SsoIdentity,
    provider: str,
    next_url: str | None,
    second_factor_given: bool = False,
) -> HttpResponse:
    """Sign the browser in through allauth's login stages: its MFA stage asks for the second
    factor unless this sign-in already had it (an IdP's MFA the tenant trusts, or the code
    given on the link page)."""
    if second_factor_given or not signin.sso_second_factor_required(
        tenant=tenant, user=user, identity=identity
    ):
        second_factor_mark_given(request)
    # The sign-in is recorded when allauth completes it (after its MFA stage, if any) by the
    # user_logged_in receiver in accounts.services.throttle, which reads ``sso_provider``.
    response: HttpResponse = perform_login(
        request,
        user,
        email_verification="none",
        redirect_url=next_url or reverse("dashboard"),
        signal_kwargs={"sso_provider": provider},
    )
    return response


# --- proving an existing account once ----------------------------------------------------------


def _link_context(request: HttpRequest, pending: signin.PendingSignIn, **extra: Any) -> dict[str, Any]:
    user = User.objects.filter(pk=pending.user_id).first()
    return {
        "email": pending.identity.email,
        "provider_name": SocialApp.objects.filter(provider_id=pending.provider)
        .values_list("name", flat=True)
        .first()
        or pending.provider,
        "needs_code": bool(user and user_mfa_methods(user)),
        "error": "",
        **extra,
    }


@public_page("a pending single sign-on proves the existing account with its password")
@require_http_methods(["GET", "POST"])
def sso_link_page(request: HttpRequest) -> HttpResponse:
    """Public (the person is signing in): link the identity to the matched account with its
    password and, if it has one, its second factor; then sign in."""
    token = str(request.session.get(SESSION_LINK_TOKEN) or "")
    try:
        pending = signin.sso_pending_peek(token=token, purpose=signin.Pending.LINK)
    except DomainError as exc:
        return sso_error_page(request, exc.detail, status=400, code=exc.code)
    if request.method == "GET":
        return render(request, "accounts/sso/link.html", _link_context(request, pending))
    try:
        user, pending = signin.sso_link_confirm(
            token=token,
            password=str(request.POST.get("password", "")),
            mfa_code=str(request.POST.get("code", "")).strip() or None,
            ip=client_address(request),
            request=request,
        )
    except throttle.LoginLocked as locked:
        return locked_response(request, locked.retry_after)
    except DomainError as exc:
        message = (
            "Enter the code from your authenticator app or a recovery code."
            if exc.code == "mfa_required"
            else exc.detail
        )
        context = _link_context(request, pending, error=message)
        return render(request, "accounts/sso/link.html", context, status=400 if exc.status < 500 else 403)
    request.session.pop(SESSION_LINK_TOKEN, None)
    messages.success(request, "Your identity provider is now linked to this account.")
    return sso_perform_login(
        request,
        user=user,
        tenant=request.tenant,  # type: ignore[attr-defined]
        identity=pending.identity,
        provider=pending.provider,
        next_url=pending.next_url,
        second_factor_given=True,
    )


# --- SAML: allauth's finish step plus replay and comment checks ----------------------------


class CheckedFinishACSView(FinishACSView):
    """allauth's ``FinishACSView`` (strict python3-saml validation: signature, audience,
    recipient, destination, time conditions; InResponseTo matched against the state allauth
    stashed in the session), plus the checks of ``accounts.sso.saml``: an assertion id is
    accepted once until it expires, and assertions carrying XML comments are refused."""

    def dispatch(self, request: HttpRequest, organization_slug: str) -> HttpResponse:
        provider = self.get_provider(organization_slug)
        posted = saml.saml_posted_acs(request)
        if posted is None:
            return render_authentication_error(request, provider)
        acs_session, acs_request = posted.session, posted.request
        auth = build_auth(acs_request, provider)
        try:
            auth.process_response(request_id=None)
            errors = auth.get_errors()
        except Exception as exc:
            logger.warning("SAML response refused: %s", exc)
            errors = ["invalid_response"]
        if errors or not auth.is_authenticated():
            reason = auth.get_last_error_reason() or ", ".join(errors) or "not authenticated"
            acs_session.delete()
            return _refused(
                request,
                DomainError("saml_invalid", f"The SAML response was refused: {reason}.", status=403),
                provider.app.provider_id,
            )
        try:
            # The raw document as posted: python3-saml's own parse has dropped comments already.
            raw = base64.b64decode(str(acs_request.POST.get("SAMLResponse", "")), validate=False)
            if saml.saml_assertion_has_comments(raw):
                raise DomainError("saml_invalid", "The SAML assertion contains XML comments.", status=403)
            saml.saml_assertion_accept_once(
                provider=provider.app.provider_id,
                assertion_id=auth.get_last_assertion_id(),
                not_on_or_after=auth.get_last_assertion_not_on_or_after(),
            )
        except DomainError as exc:
            acs_session.delete()
            return _refused(request, exc, provider.app.provider_id)
        setattr(request, SAML_AUTHN_CONTEXTS_ATTRIBUTE, list(auth.get_last_authn_contexts() or []))
        # The checks passed: let allauth finish (it validates again, matches InResponseTo with
        # the request it stashed in this session, then signs the user in).
        try:
            return super().dispatch(request, organization_slug)
        except PermissionDenied:
            unsolicited = DomainError(
                "saml_unsolicited",
                "This SAML response does not answer a sign-in started in this browser (InResponseTo).",
                status=403,
            )
            return _refused(request, unsolicited, provider.app.provider_id)


saml_finish_acs = public_page("the identity provider posts the SAML response here; it is verified")(
    CheckedFinishACSView.as_view()
)


# --- pages --------------------------------------------------------------------------------


@public_page("the list of sign-in providers, shown before sign-in")
def sso_choose(request: HttpRequest) -> HttpResponse:
    """Anyone: the organisation's identity providers, one button each."""
    choices = [
        {
            "name": app.name,
            # The form posts back to this host (same origin for CSRF), whatever port it came on.
            "login_url": urlsplit(urls.sso_urls(app, request.tenant)["login_url"]).path,  # type: ignore[attr-defined]
            "type": common.KIND_FOR_PROVIDER[app.provider],
        }
        for app in providers.sso_provider_list()
    ]
    return render(request, "accounts/sso/choose.html", {"providers": choices, "next": _safe_next(request)})


def _settings_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    tenant = request.tenant  # type: ignore[attr-defined]
    return {
        "providers": [
            providers.sso_provider_describe(app, request.tenant)  # type: ignore[attr-defined]
            for app in providers.sso_provider_list()
        ],
        **sso_settings.sso_settings_of(tenant),
        # Admins see the configuration; only owners change it.
        "can_edit": has_role(request.user, Role.OWNER),
        "form_data": {},
        "error": "",
        **extra,
    }


def _lines(value: str) -> list[str]:
    return [part.strip() for part in value.replace(",", "\n").splitlines() if part.strip()]


def _role_mapping(value: str) -> dict[str, str]:
    mapping = {}
    for line in _lines(value):
        source, _, role = line.partition("=")
        mapping[source.strip()] = role.strip()
    return mapping


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def sso_settings_page(request: HttpRequest) -> HttpResponse:
    """Admins read the providers and the URLs to give them; owners add, remove and switch."""
    if request.method == "GET":
        return render(request, "accounts/sso/settings.html", _settings_context(request))
    if not has_role(request.user, Role.OWNER):
        raise PermissionDenied("Only owners change single sign-on.")
    post = request.POST
    kind = str(post.get("type", ""))
    data = providers.ProviderInput(
        name=str(post.get("name", "")),
        allowed_domains=_lines(str(post.get("allowed_domains", ""))),
        role_mapping=_role_mapping(str(post.get("role_mapping", ""))),
        role_claim=str(post.get("role_claim", "")),
    )
    if kind == "oidc":
        data.server_url = str(post.get("server_url", ""))
        data.client_id = str(post.get("client_id", ""))
        data.client_secret = str(post.get("client_secret", ""))
    elif kind == "saml":
        data.metadata_xml = str(post.get("metadata_xml", "")) or None
        data.metadata_url = str(post.get("metadata_url", "")) or None
    try:
        app = providers.sso_provider_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            kind=kind,
            data=data,
            request=request,
        )
    except DomainError as exc:
        fields = {k: v for k, v in post.items() if k not in ("client_secret", "csrfmiddlewaretoken")}
        context = _settings_context(request, error=exc.detail, form_data=fields, form_type=kind)
        return render(request, "accounts/sso/settings.html", context, status=400)
    messages.success(request, f"Identity provider “{app.name}” added. Copy the URLs below into it.")
    return redirect("sso-settings")


@role_required(Role.OWNER)
@require_POST
def sso_provider_delete_view(request: HttpRequest, provider_id: str) -> HttpResponse:
    try:
        app = providers.sso_provider_get(provider_id)
    except DomainError as exc:
        return render(
            request, "accounts/sso/settings.html", _settings_context(request, error=exc.detail), status=404
        )
    providers.sso_provider_delete(tenant=request.tenant, app=app, request=request)  # type: ignore[attr-defined]
    messages.success(request, f"Identity provider “{app.name}” removed.")
    return redirect("sso-settings")


@role_required(Role.OWNER)
@require_POST
def sso_only_view(request: HttpRequest) -> HttpResponse:
    """The two switches: SSO only, and trusting the IdP's second factor."""
    try:
        sso_settings.sso_settings_update(
            tenant=request.tenant,  # type: ignore[attr-defined]
            sso_only=request.POST.get("sso_only") == "on",
            trust_idp_mfa=request.POST.get("trust_idp_mfa") == "on",
            actor=change_actor(request, via="web"),
        )
    except DomainError as exc:
        context = _settings_context(request, error=exc.detail)
        return render(request, "accounts/sso/settings.html", context, status=400)
    messages.success(request, "Single sign-on settings saved.")
    return redirect("sso-settings")
