"""allauth's SAML flow on the tenant's canonical URLs.

allauth builds python3-saml's settings from the request: the SP's ACS and single-logout URLs
with ``request.build_absolute_uri`` and the "current URL" that a response's ``Destination`` and
``Recipient`` are checked against from the ``Host`` header and ``request.is_secure()``. Behind
a proxy, or through any host other than the one the admin gave the IdP, those differ from the
values ``accounts.services.sso.sso_urls`` hands out, and every sign-in fails (or an AuthnRequest
names a port an attacker chose). Here both are replaced, in allauth's own module, by the
tenant's primary domain with ``SITE_SCHEME``/``SITE_PORT`` (``tenants.links``) and the entity id
stored on the provider. Installed once from ``AccountsConfig.ready``; this module is the one
place that knows allauth's ``build_sp_config``/``prepare_django_request`` (tested by
``accounts/tests/test_sso_urls.py``).
"""

from __future__ import annotations

from typing import Any

from allauth.socialaccount.providers.saml import utils as saml_utils
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.http import HttpRequest

from accounts.services.sso import saml_sp_urls
from tenants.links import tenant_netloc
from tenants.models import Tenant

_allauth_build_sp_config = saml_utils.build_sp_config
_allauth_prepare_django_request = saml_utils.prepare_django_request


def _tenant(request: HttpRequest) -> Tenant:
    # allauth's ACS step rebuilds the posted request from the session without our attributes:
    # the connection still names the tenant the middleware resolved.
    tenant = getattr(request, "tenant", None) or getattr(connection, "tenant", None)
    if not isinstance(tenant, Tenant):
        raise ImproperlyConfigured("SAML runs on a tenant's site only")
    return tenant


def canonical_sp_config(request: HttpRequest, provider_config: dict[str, Any], org: str) -> dict[str, Any]:
    """allauth's SP settings with the canonical entity id, ACS and single-logout URLs."""
    config: dict[str, Any] = _allauth_build_sp_config(request, provider_config, org)
    urls = saml_sp_urls(tenant=_tenant(request), slug=org, provider_settings=provider_config)
    config["entityId"] = urls["sp_entity_id"]
    config["assertionConsumerService"]["url"] = urls["acs_url"]
    config["singleLogoutService"]["url"] = urls["sls_url"]
    return config


def canonical_request_data(request: HttpRequest) -> dict[str, Any]:
    """The request as python3-saml sees it, on the canonical scheme, host and port: responses
    are validated against the URL the IdP was given, whatever Host the proxy forwarded."""
    data: dict[str, Any] = _allauth_prepare_django_request(request)
    data["http_host"] = tenant_netloc(_tenant(request))
    data["https"] = "on" if settings.SITE_SCHEME == "https" else "off"
    data.pop("server_port", None)
    return data


def use_canonical_saml_urls() -> None:
    saml_utils.build_sp_config = canonical_sp_config
    saml_utils.prepare_django_request = canonical_request_data
