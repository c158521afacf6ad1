"""The values given to an identity provider: URLs on the tenant's canonical site (its primary
domain with ``SITE_SCHEME``/``SITE_PORT``), whichever host the admin reads them through."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from allauth.socialaccount.models import SocialApp
from django.urls import reverse

from accounts.sso.common import SAML
from tenants.links import TENANT_URLCONF, tenant_url

if TYPE_CHECKING:
    from tenants.models import Tenant


def _path(name: str, slug: str) -> str:
    return reverse(name, args=[slug], urlconf=TENANT_URLCONF)


def saml_sp_urls(*, tenant: Tenant, slug: str, provider_settings: dict[str, Any]) -> dict[str, str]:
    """The service provider's URLs of SAML provider ``slug`` on the tenant's canonical site, and
    its entity id: the one stored when the provider was created (it must never change once an
    IdP knows it), else the metadata URL."""
    metadata_url = tenant_url(tenant, _path("saml_metadata", slug))
    stored = (provider_settings.get("sp") or {}).get("entity_id")
    return {
        "sp_entity_id": stored or metadata_url,
        "sp_metadata_url": metadata_url,
        "acs_url": tenant_url(tenant, _path("saml_acs", slug)),
        "sls_url": tenant_url(tenant, _path("saml_sls", slug)),
        "login_url": tenant_url(tenant, _path("saml_login", slug)),
    }


def sso_urls(app: SocialApp, tenant: Tenant) -> dict[str, str]:
    """What the tenant admin copies into the identity provider's configuration: URLs on the
    tenant's primary domain with the configured scheme and port, whichever host the admin
    reads them through."""
    if app.provider == SAML:
        urls = saml_sp_urls(tenant=tenant, slug=app.client_id, provider_settings=app.settings or {})
        urls.pop("sls_url")
        return urls
    return {
        "redirect_uri": tenant_url(tenant, _path("openid_connect_callback", app.provider_id)),
        "login_url": tenant_url(tenant, _path("openid_connect_login", app.provider_id)),
    }
