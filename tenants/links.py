"""Absolute URLs on a tenant's site: its primary domain with the configured scheme and port.

The one builder of tenant links (emails, SSO values, the redirect after sign-up); never derive
them from a request's ``Host`` header.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from leanvibe.links import site_netloc, site_url
from tenants.models import Tenant

# Reverse tenant paths with this outside a request (a request's urlconf is set by the middleware).
TENANT_URLCONF = "leanvibe.urls_tenant"


def _primary_domain(tenant: Tenant) -> str:
    domain = tenant.primary_domain
    if not domain:
        raise ImproperlyConfigured(f"tenant {tenant.schema_name} has no primary domain")
    return domain


def tenant_url(tenant: Tenant, path: str = "/") -> str:
    """``tenant_url(acme, "/accounts/login/")`` → ``http://acme.localhost:8000/accounts/login/``."""
    return site_url(_primary_domain(tenant), path)


def tenant_netloc(tenant: Tenant) -> str:
    """The host (and port) of ``tenant_url``, e.g. ``acme.localhost:8000``."""
    return site_netloc(_primary_domain(tenant))
