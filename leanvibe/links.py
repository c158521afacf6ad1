"""Absolute URLs of our own sites.

Every link the platform hands out (emails, SSO values an admin copies into an identity
provider, redirects to another host) names a host we chose, with ``SITE_SCHEME`` and
``SITE_PORT`` from settings, never the request's ``Host`` header: a request for
``acme.localhost:31337`` must not mail a link to port 31337. Tenants' links are built by
``tenants.links.tenant_url`` on top of this.
"""

from __future__ import annotations

from django.conf import settings


def site_netloc(host: str) -> str:
    """``host`` with the configured port (80 and 443 are left out)."""
    port = int(settings.SITE_PORT)
    return host if port in (80, 443) else f"{host}:{port}"


def site_url(host: str, path: str = "/") -> str:
    """``<SITE_SCHEME>://<host>[:<SITE_PORT>]<path>``; ``path`` is absolute (a missing leading
    slash is added)."""
    return f"{settings.SITE_SCHEME}://{site_netloc(host)}/{path.lstrip('/')}"


def public_site_url(path: str = "/") -> str:
    """The public site (landing, sign-up, admin console), e.g. ``http://localhost:8000/``."""
    return site_url(settings.BASE_DOMAIN, path)
