from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailConfirmation
from django import forms
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.emails import email_canonical
from accounts.sso.settings import password_login_check, sso_only_enabled
from leanvibe.errors import DomainError
from leanvibe.http import client_address
from leanvibe.links import public_site_url, site_netloc
from tenants.links import tenant_netloc, tenant_url
from tenants.models import Tenant


def same_host_url(request: HttpRequest | None, url: str) -> bool:
    """Whether ``url`` may be redirected to after sign-in: a path on this site, or an absolute
    URL on exactly the host (and port) that served the page. Other tenants' subdomains, the
    public site, ``//host``, ``/\\host`` and non-http schemes are all refused."""
    if request is None or not url:
        return False
    return url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )


def _tenant_of(request: HttpRequest | None) -> Tenant | None:
    tenant = getattr(request, "tenant", None)
    if tenant is None and connection.schema_name != settings.PUBLIC_SCHEMA_NAME:  # type: ignore[attr-defined]
        tenant = connection.tenant  # type: ignore[attr-defined]
    return tenant if isinstance(tenant, Tenant) else None


def canonical_url(request: HttpRequest | None, url: str) -> str:
    """``url`` (built by allauth from the request's Host) moved onto the canonical site: the
    tenant's primary domain, or the public site, with the configured scheme and port."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    tenant = _tenant_of(request)
    return tenant_url(tenant, path) if tenant is not None else public_site_url(path)


@dataclass(frozen=True)
class EmailSite:
    """What allauth's email templates show as ``current_site`` (name and domain)."""

    name: str
    domain: str


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
        # allauth's authenticator-app stage is replaced by a subclass (same key and page) that a
        # sign-in which already had its second factor skips (accounts.login_stages).
        stages = list(super().get_login_stages())
        anchor = "allauth.mfa.stages.AuthenticateStage"
        position = stages.index(anchor) if anchor in stages else len(stages)
        if anchor in stages:
            stages[position] = "accounts.login_stages.SsoAwareAuthenticateStage"
        stages.insert(position, "accounts.login_stages.EmailCodeStage")
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

    # --- redirects: only to the host that served the page --------------------------------
    def is_safe_url(self, url: str) -> bool:
        # allauth's own rule accepts every host of ALLOWED_HOSTS, i.e. every tenant's subdomain.
        return same_host_url(self.request, url)

    # --- links in emails: the canonical site, never the Host header ----------------------
    def get_reset_password_from_key_url(self, key: str) -> str:
        return canonical_url(self.request, super().get_reset_password_from_key_url(key))

    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation: EmailConfirmation) -> str:
        url = super().get_email_confirmation_url(request, emailconfirmation)
        return canonical_url(request or self.request, url)

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        # allauth's templates name "current_site", by default the request's Host header.
        tenant = _tenant_of(self.request)
        domain = tenant_netloc(tenant) if tenant is not None else site_netloc(settings.BASE_DOMAIN)
        super().send_mail(template_prefix, email, {"current_site": EmailSite("LeanVibe", domain), **context})
