"""After signing in, ``next`` may only lead to the host that served the page: another tenant's
subdomain, another site, ``//host``, ``/\\host`` and ``javascript:`` all land on the dashboard.
Checked for allauth's sign-in form, its two-factor stage, the SSO chooser, the OpenID Connect
and the SAML flows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from django.test import Client

from accounts.testing.oidc_provider import OidcTestProvider
from accounts.testing.saml_idp import SamlTestIdp
from accounts.tests.mfa_helpers import enrol_totp, totp_code, wait_away_from_step_boundary
from accounts.tests.test_sso_oidc import acme_oidc_provider, add_oidc
from accounts.tests.test_sso_saml import add_saml, post_to_acs

HOSTILE = [
    "//evil.test/",
    "https://other-tenant.localhost/",
    "http://globex-industries.localhost/",
    "/\\evil.test",
    "\\\\evil.test",
    "javascript:alert(document.domain)",
    "https://evil.test/",
    "http://localhost/",  # the public site is another host too
]


def _client(tenant: Any) -> Client:
    return Client(HTTP_HOST=tenant.host)


def _sign_in(client: Client, tenant: Any, next_url: str) -> Any:
    return client.post(
        "/accounts/login/",
        {"login": tenant.owner_email, "password": tenant.password, "next": next_url},
    )


@pytest.mark.django_db
@pytest.mark.parametrize("next_url", HOSTILE)
def test_the_sign_in_form_ignores_a_next_on_another_host(tenant_a, tenant_b, next_url):
    response = _sign_in(_client(tenant_a), tenant_a, next_url)
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.django_db
def test_the_sign_in_form_follows_a_next_on_this_host(tenant_a):
    assert _sign_in(_client(tenant_a), tenant_a, "/members/")["Location"] == "/members/"
    same_host = f"http://{tenant_a.host}/audit/"
    assert _sign_in(_client(tenant_a), tenant_a, same_host)["Location"] == same_host


@pytest.mark.django_db
@pytest.mark.parametrize("next_url", ["https://globex-industries.localhost/", "//evil.test/", "/\\evil.test"])
def test_the_two_factor_stage_ignores_a_next_on_another_host(api, tenant_a, tenant_b, next_url):
    setup = enrol_totp(api, tenant_a.host, tenant_a.login(api))
    client = _client(tenant_a)
    assert _sign_in(client, tenant_a, next_url)["Location"] == "/accounts/2fa/authenticate/"
    wait_away_from_step_boundary()
    done = client.post("/accounts/2fa/authenticate/", {"code": totp_code(setup["secret"])})
    assert done.status_code == 302 and done["Location"] == "/"


@pytest.fixture
def oidc_idp() -> Iterator[OidcTestProvider]:
    yield from acme_oidc_provider()


@pytest.mark.django_db
@pytest.mark.parametrize("next_url", HOSTILE)
def test_the_sso_chooser_drops_a_next_on_another_host(api, tenant_a, oidc_idp, next_url):
    add_oidc(api, tenant_a, oidc_idp)
    page = _client(tenant_a).get("/sso/", {"next": next_url}).content.decode()
    assert 'name="next"' not in page


@pytest.mark.django_db
@pytest.mark.parametrize("next_url", ["https://globex-industries.localhost/", "//evil.test/", "/members/"])
def test_the_oidc_flow_only_returns_to_this_host(api, tenant_a, tenant_b, oidc_idp, next_url):
    provider = add_oidc(api, tenant_a, oidc_idp)
    client = _client(tenant_a)
    start = client.post(urlparse(provider["login_url"]).path, {"next": next_url})
    assert start.status_code == 302
    back = urlparse(requests.get(start["Location"], allow_redirects=False, timeout=10).headers["Location"])
    done = client.get(f"{back.path}?{back.query}")
    assert done.status_code == 302
    assert done["Location"] == (next_url if next_url.startswith("/members") else "/")


@pytest.fixture
def saml_idp() -> Iterator[SamlTestIdp]:
    with SamlTestIdp() as server:
        server.user = {"name_id": "ada@acme.test", "attributes": {"email": ["ada@acme.test"]}}
        yield server


@pytest.mark.django_db
@pytest.mark.parametrize("next_url", ["https://globex-industries.localhost/", "//evil.test/", "/members/"])
def test_the_saml_flow_only_returns_to_this_host(api, tenant_a, tenant_b, saml_idp, next_url):
    provider = add_saml(api, tenant_a, saml_idp)
    client = _client(tenant_a)
    start = client.post(urlparse(provider["login_url"]).path, {"next": next_url})
    assert start.status_code == 302
    page = requests.get(start["Location"], timeout=10).text
    response = unescape(re.search(r'name="SAMLResponse" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    final = post_to_acs(client, provider["acs_url"], response)
    assert final.status_code == 302
    assert final["Location"] == (next_url if next_url.startswith("/members") else "/")
