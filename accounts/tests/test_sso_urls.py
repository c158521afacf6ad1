"""The SSO values an admin copies into an identity provider name the tenant's primary domain with
SITE_SCHEME/SITE_PORT whichever host they are read through, SAML sign-in works with them (also
when the request arrives with another Host, as behind a proxy), and an SP entity id never
changes once given."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from allauth.socialaccount.models import SocialApp
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.testing.oidc_provider import OidcTestProvider
from accounts.testing.saml_idp import SamlTestIdp
from accounts.tests.test_sso_oidc import acme_oidc_provider, add_oidc
from accounts.tests.test_sso_saml import add_saml, authn_request, respond, sign_in_via_idp, signed_in_as
from tenants.models import Domain


@pytest.fixture(autouse=True)
def _site(settings: Any) -> None:
    settings.SITE_SCHEME = "http"
    settings.SITE_PORT = 8000


@pytest.fixture
def saml_idp() -> Iterator[SamlTestIdp]:
    with SamlTestIdp() as server:
        server.user = {"name_id": "ada@acme.test", "attributes": {"email": ["ada@acme.test"]}}
        yield server


@pytest.fixture
def oidc_idp() -> Iterator[OidcTestProvider]:
    yield from acme_oidc_provider()


def _read(api: Any, tenant: Any, token: str, provider_id: str, **how: Any) -> dict[str, Any]:
    response = api.get(f"/api/v1/auth/sso/providers/{provider_id}", token=token, **how)
    assert response.status_code == 200, response.body
    return dict(response.body)


URL_KEYS = ("sp_entity_id", "sp_metadata_url", "acs_url", "login_url", "redirect_uri")


def _urls(provider: dict[str, Any]) -> dict[str, str]:
    return {key: provider[key] for key in URL_KEYS if key in provider}


@pytest.mark.django_db
def test_saml_urls_read_through_the_public_host_and_the_tenant_host_are_identical(api, tenant_a, saml_idp):
    created = add_saml(api, tenant_a, saml_idp)
    token = tenant_a.login(api)
    by_host = _read(api, tenant_a, token, created["id"], host=tenant_a.host)
    by_header = _read(api, tenant_a, token, created["id"], tenant_header=tenant_a.id)  # public host
    by_odd_port = _read(api, tenant_a, token, created["id"], host=f"{tenant_a.host}:31337")
    assert _urls(by_host) == _urls(by_header) == _urls(by_odd_port) == _urls(created)
    base = f"http://{tenant_a.host}:8000/accounts/saml/{created['id']}"
    assert _urls(by_header) == {
        "sp_entity_id": f"{base}/metadata/",
        "sp_metadata_url": f"{base}/metadata/",
        "acs_url": f"{base}/acs/",
        "login_url": f"{base}/login/",
    }
    # ... and a SAML sign-in with the values read through the public host succeeds.
    client = Client(HTTP_HOST=tenant_a.host)
    assert sign_in_via_idp(client, by_header).status_code == 302
    assert signed_in_as(client) == "ada@acme.test"


@pytest.mark.django_db
def test_the_sp_metadata_and_authn_request_carry_the_canonical_urls(api, tenant_a, saml_idp):
    provider = add_saml(api, tenant_a, saml_idp)
    # Reached through another port (a proxy, or an attacker's Host header): still canonical.
    client = Client(HTTP_HOST=f"{tenant_a.host}:31337")
    metadata = client.get(urlparse(provider["sp_metadata_url"]).path).content.decode()
    assert f'entityID="{provider["sp_entity_id"]}"' in metadata
    assert f'Location="{provider["acs_url"]}"' in metadata
    assert "31337" not in metadata
    request = authn_request(client, saml_idp, provider)
    assert (request["acs_url"], request["sp_entity_id"]) == (provider["acs_url"], provider["sp_entity_id"])


@pytest.mark.django_db
def test_the_acs_validates_against_the_canonical_url_behind_a_proxy(api, tenant_a, saml_idp):
    """The IdP posts to the ACS URL the admin gave it; the proxy forwards the post with a Host of
    its own (here another port). python3-saml checks Destination and Recipient against the
    canonical URL, not against that Host."""
    provider = add_saml(api, tenant_a, saml_idp)
    client = Client(HTTP_HOST=tenant_a.host)
    request = authn_request(client, saml_idp, provider)
    xml = saml_idp.build_response(
        acs_url=provider["acs_url"], audience=provider["sp_entity_id"], in_response_to=request["id"]
    )
    forwarded = f"{tenant_a.host}:8080"
    acs = client.post(
        urlparse(provider["acs_url"]).path, {"SAMLResponse": saml_idp.encode(xml)}, HTTP_HOST=forwarded
    )
    assert acs.status_code == 302
    final = client.get(acs["Location"], HTTP_HOST=forwarded)
    assert final.status_code == 302, final.content[:2000]
    assert signed_in_as(client) == "ada@acme.test"


@pytest.mark.django_db
def test_a_response_for_a_host_header_url_is_refused(api, tenant_a, saml_idp):
    """A response addressed to the URL the Host header named (not the one the IdP was given)."""
    provider = add_saml(api, tenant_a, saml_idp)
    client = Client(HTTP_HOST=tenant_a.host)
    request = authn_request(client, saml_idp, provider)
    xml = respond(saml_idp, request, acs_url=f"http://{tenant_a.host}/accounts/saml/{provider['id']}/acs/")
    acs = client.post(urlparse(provider["acs_url"]).path, {"SAMLResponse": saml_idp.encode(xml)})
    final = client.get(acs["Location"])
    assert final.status_code == 403 and 'data-code="saml_invalid"' in final.content.decode()
    assert signed_in_as(client) is None


@pytest.mark.django_db
def test_the_entity_id_never_changes_once_given(api, tenant_a, saml_idp, settings):
    created = add_saml(api, tenant_a, saml_idp)
    with tenant_context(tenant_a.tenant):
        stored = SocialApp.objects.get(provider_id=created["id"]).settings["sp"]["entity_id"]
    assert stored == created["sp_entity_id"]
    settings.SITE_PORT = 443
    settings.SITE_SCHEME = "https"
    Domain.objects.filter(tenant=tenant_a.tenant).update(domain="acme-renamed.localhost")
    # The tenant is now reached by its new domain only.
    token = _login(api, "acme-renamed.localhost", tenant_a)
    now = _read(api, tenant_a, token, created["id"], host="acme-renamed.localhost")
    assert now["sp_entity_id"] == stored
    assert now["acs_url"] == f"https://acme-renamed.localhost/accounts/saml/{created['id']}/acs/"
    # The AuthnRequest and the metadata still name the stored entity id.
    client = Client(HTTP_HOST="acme-renamed.localhost")
    request = authn_request(client, saml_idp, now)
    assert request["sp_entity_id"] == stored
    # A provider created after the change gets the new canonical id, and keeps it.
    second = add_saml_on(api, "acme-renamed.localhost", token, saml_idp)
    assert second["sp_entity_id"] == f"https://acme-renamed.localhost/accounts/saml/{second['id']}/metadata/"


def _login(api: Any, host: str, tenant: Any) -> str:
    response = api.post(
        "/api/v1/auth/login", {"email": tenant.owner_email, "password": tenant.password}, host=host
    )
    assert response.status_code == 200, response.body
    return str(response.body["access_token"])


def add_saml_on(api: Any, host: str, token: str, idp: SamlTestIdp) -> dict[str, Any]:
    response = api.post(
        "/api/v1/auth/sso/providers",
        {"type": "saml", "name": "Second IdP", "metadata_xml": idp.metadata_xml()},
        host=host,
        token=token,
    )
    assert response.status_code == 201, response.body
    return dict(response.body)


@pytest.mark.django_db
def test_oidc_urls_are_canonical_and_the_login_sends_the_canonical_redirect_uri(api, tenant_a, oidc_idp):
    created = add_oidc(api, tenant_a, oidc_idp)
    token = tenant_a.login(api)
    by_header = _read(api, tenant_a, token, created["id"], tenant_header=tenant_a.id)
    assert _urls(by_header) == _urls(created)
    base = f"http://{tenant_a.host}:8000/accounts/oidc/{created['id']}/login"
    assert (by_header["redirect_uri"], by_header["login_url"]) == (f"{base}/callback/", f"{base}/")
    client = Client(HTTP_HOST=f"{tenant_a.host}:31337")
    start = client.post(urlparse(created["login_url"]).path)
    assert start.status_code == 302
    sent = parse_qs(urlparse(start["Location"]).query)["redirect_uri"]
    assert sent == [created["redirect_uri"]]


@pytest.mark.django_db
def test_the_sso_chooser_posts_to_this_host(api, tenant_a, oidc_idp):
    created = add_oidc(api, tenant_a, oidc_idp)
    page = Client(HTTP_HOST=tenant_a.host).get("/sso/").content.decode()
    assert f'action="/accounts/oidc/{created["id"]}/login/"' in page
