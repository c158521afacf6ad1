"""SAML 2.0 beside allauth's flow: the IdP's metadata (parsed, or fetched through the outbound
guard), the provider's strict python3-saml settings, the checks the finish step adds (no XML
comments in an assertion, each assertion accepted once), the multi-factor authentication
contexts, and allauth's SAML flow moved onto the tenant's canonical URLs.

allauth builds python3-saml's settings from the request: the SP's ACS and single-logout URLs
with ``request.build_absolute_uri`` and the "current URL" that a response's ``Destination`` and
``Recipient`` are checked against from the ``Host`` header and ``request.is_secure()``. Behind
a proxy, or through any host other than the one the admin gave the IdP, those differ from the
values ``accounts.sso.urls.sso_urls`` hands out, and every sign-in fails (or an AuthnRequest
names a port an attacker chose). ``use_canonical_saml_urls`` (called once from
``AccountsConfig.ready``) replaces both, in allauth's own module, by the tenant's primary domain
with ``SITE_SCHEME``/``SITE_PORT`` (``tenants.links``) and the entity id stored on the
provider; this module is the one place that knows allauth's ``build_sp_config`` and
``prepare_django_request`` (tested by ``accounts/tests/test_sso_urls.py``) and the ACS post
allauth keeps in the session (``saml_posted_acs``, through allauth's internal ``httpkit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from allauth.core.internal import httpkit
from allauth.socialaccount.providers.saml import utils as saml_utils
from allauth.socialaccount.sessions import LoginSession
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.http import HttpRequest
from lxml import etree
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

from accounts.sso.common import FETCH_MAX_BYTES, check_url, refuse
from accounts.sso.urls import saml_sp_urls
from leanvibe.errors import DomainError
from leanvibe.outbound import OutboundError, OutboundRefused, outbound_request
from tenants.links import tenant_netloc
from tenants.models import Tenant

DEFAULT_SAML_ATTRIBUTE_MAPPING: dict[str, list[str]] = {
    "uid": ["urn:oasis:names:tc:SAML:attribute:subject-id"],
    "email": [
        "email",
        "urn:oid:0.9.2342.19200300.100.1.3",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    ],
    "name": ["name", "displayName", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"],
    "role": ["role", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"],
}
# SAML AuthnContextClassRef values of multi-factor classes (SAML 2.0 classes with a token or a
# smart card, the REFEDS MFA profile, Microsoft Entra ID's multiple-authentication claim).
MFA_SAML_CLASSES = frozenset(
    {
        "https://refeds.org/profile/mfa",
        "http://schemas.microsoft.com/claims/multipleauthn",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI",
    }
)
_SAML_NS = {"saml": "urn:oasis:names:tc:SAML:2.0:assertion", "samlp": "urn:oasis:names:tc:SAML:2.0:protocol"}


# --- the IdP's metadata and the provider's settings ------------------------------------------


def saml_metadata_fetch(*, url: str) -> str:
    """The IdP metadata document at ``url``, through the outbound guard (at most 1 MiB). A
    refused URL is the guard's 400 ``outbound_url_refused``; any other failure a 400
    ``sso_metadata_unreachable`` that says what went wrong in our words, never the exception's."""
    check_url(url, "metadata_url")
    try:
        response = outbound_request(method="GET", url=url, purpose="SAML metadata", max_bytes=FETCH_MAX_BYTES)
    except OutboundRefused:
        raise
    except OutboundError as exc:
        raise refuse(
            "sso_metadata_unreachable", f"The IdP metadata could not be fetched: {exc.reason}."
        ) from exc
    if not 200 <= response.status < 300:
        raise refuse(
            "sso_metadata_unreachable",
            f"The IdP metadata could not be fetched: the server answered {response.status}.",
        )
    return response.text


def saml_idp_from_metadata(
    *, metadata_xml: str = "", metadata_url: str = "", entity_id: str = ""
) -> dict[str, str]:
    """Parse IdP metadata (inline XML, or fetched from its URL when no XML is given) into
    allauth's ``idp`` settings."""
    if metadata_url and not metadata_xml:
        metadata_xml = saml_metadata_fetch(url=metadata_url)
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(metadata_xml, entity_id=entity_id or None)
    except Exception as exc:
        raise refuse("validation_error", "metadata: this is not valid SAML IdP metadata.") from exc
    idp = parsed.get("idp") or {}
    sso_url = (idp.get("singleSignOnService") or {}).get("url", "")
    cert = idp.get("x509cert") or ((idp.get("x509certMulti") or {}).get("signing") or [""])[0]
    if not idp.get("entityId") or not sso_url or not cert:
        raise refuse(
            "validation_error",
            "metadata: it must name the IdP's entity id, a single sign-on URL and a signing certificate.",
        )
    return {"entity_id": idp["entityId"], "sso_url": sso_url, "x509cert": cert}


def saml_advanced_settings(*, allow_idp_initiated: bool) -> dict[str, Any]:
    """python3-saml's strict mode with signed assertions required (``settings["advanced"]``)."""
    return {
        "strict": True,
        "want_assertion_signed": True,
        "want_message_signed": False,
        "reject_deprecated_algorithm": True,
        "reject_idp_initiated_sso": not allow_idp_initiated,
        "want_name_id": True,
        "want_attribute_statement": False,
        "allow_single_label_domains": False,
    }


# --- the checks of the finish step -----------------------------------------------------------


def saml_contexts_have_mfa(contexts: list[str] | None) -> bool:
    return any(c in MFA_SAML_CLASSES for c in contexts or [])


def saml_assertion_has_comments(response_xml: str | bytes) -> bool:
    """True if the assertion carries XML comments. Exclusive canonicalisation drops comments
    before the digest, so a comment slipped into a signed NameID ("admin@acme.test<!-- -->.evil")
    keeps the signature valid while text readers may see only the part before it."""
    data = response_xml.encode() if isinstance(response_xml, str) else response_xml
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False)
    root = etree.fromstring(data, parser=parser)
    return bool(root.xpath("//saml:Assertion//comment()", namespaces=_SAML_NS))


def saml_assertion_accept_once(
    *, provider: str, assertion_id: str | None, not_on_or_after: float | None
) -> None:
    """Accept assertion ``assertion_id`` of provider ``provider`` once: 403 ``saml_replayed``
    the second time, until it expires (+ skew; kept at least 5 minutes, at most a day)."""
    if not assertion_id:
        raise DomainError("saml_invalid", "The SAML assertion has no id.", status=403)
    now = datetime.now(tz=UTC).timestamp()
    ttl = int(min(max((not_on_or_after or now) - now, 0) + 300, 86400))
    key = f"sso:saml:assertion:{provider}:{assertion_id}"
    if not cache.add(key, 1, timeout=ttl):
        raise DomainError("saml_replayed", "This SAML assertion was already used.", status=403)


@dataclass(frozen=True)
class PostedAcs:
    """The ACS post allauth's first step kept in the session, and that session entry."""

    session: LoginSession
    request: HttpRequest


def saml_posted_acs(request: HttpRequest) -> PostedAcs | None:
    """The SAML response as posted to the ACS, which allauth stashed in the session before
    redirecting to its finish step; None when there is none."""
    session = LoginSession(request, "saml_acs_session", "saml-acs-session")
    stored = session.store.get("request")
    if not stored:
        return None
    return PostedAcs(session=session, request=httpkit.deserialize_request(stored, HttpRequest()))


# --- allauth's SAML flow on the canonical URLs -------------------------------------------------

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
