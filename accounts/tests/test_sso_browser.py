"""In headless Chromium: a colleague signs in through the organisation's identity provider, an
OpenID Connect provider or a SAML IdP that the test starts on 127.0.0.1, and lands on the
dashboard as a member created just in time.

The browser really travels: from ``<sub>.localhost:PORT`` (our live server) to the IdP on
``127.0.0.1:OTHERPORT`` and back. For SAML the IdP answers with an auto-submitting form that
POSTs the signed response across sites to our ACS; Django's session cookie (SameSite=Lax) is
not sent with that POST, so this also proves that allauth's "acs" → "finish" redirect carries
the sign-in over in Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.testing.oidc_provider import OidcTestProvider
from accounts.testing.saml_idp import SamlTestIdp
from leanvibe.tests.browser import (
    ARTIFACTS,
    BROWSER_MARKS,
    chromium,
    expect,
    new_page,
    provision,
    tenant_origin,
)

pytestmark = BROWSER_MARKS
OWNER_PASSWORD = "orbital-mechanics-42"
ALICE = "alice@initech.example"


@pytest.fixture
def oidc_idp() -> Iterator[OidcTestProvider]:
    with OidcTestProvider(client_id="leanvibe-initech", client_secret="initech-secret") as provider:
        provider.user = {
            "sub": "okta-alice",
            "email": ALICE,
            "email_verified": True,
            "name": "Alice Liddell",
        }
        yield provider


@pytest.fixture
def saml_idp() -> Iterator[SamlTestIdp]:
    with SamlTestIdp() as server:
        server.user = {
            "name_id": ALICE,
            "attributes": {"email": [ALICE], "name": ["Alice Liddell"]},
        }
        yield server


def _tenant() -> Any:
    return provision("Initech", "peter@initech.example", OWNER_PASSWORD)


def _add_provider(tenant: Any, kind: str, **fields: Any) -> str:
    from django_tenants.utils import tenant_context

    from accounts.sso import providers

    with tenant_context(tenant):
        app = providers.sso_provider_create(
            tenant=tenant,
            kind=kind,
            data=providers.ProviderInput(allowed_domains=["initech.example"], **fields),
        )
    return str(app.provider_id)


def _sign_in_through_idp(
    site_url: str,
    tenant: Any,
    *,
    provider_name: str,
    idp_origin: str,
    screenshot: str,
) -> list[str]:
    """Drive Chromium from our sign-in page through the IdP and back to the dashboard; return the
    URLs the browser visited (main frame) and any 5xx or failed requests."""
    origin = tenant_origin(site_url, tenant)
    failed: list[str] = []
    visited: list[str] = []

    with chromium() as browser:
        context, page = new_page(browser, failed)
        page.on(
            "request",
            lambda r: visited.append(f"{r.method} {r.url}") if r.is_navigation_request() else None,
        )

        page.goto(f"{origin}/accounts/login/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Initech")
        page.get_by_role("link", name="Sign in with single sign-on").click()
        expect(page).to_have_url(re.compile(rf"^{re.escape(origin)}/"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Sign in with single sign-on")
        page.screenshot(path=str(ARTIFACTS / f"{screenshot}-choose.png"), full_page=True)
        page.get_by_role("button", name=f"Continue with {provider_name}").click()

        # Through the IdP and back, signed in on our dashboard.
        expect(page).to_have_url(f"{origin}/")
        expect(page.locator(".nav-user")).to_have_text(ALICE)
        expect(page.locator(".nav-user")).to_have_attribute("title", f"Signed in as {ALICE}")
        page.screenshot(path=str(ARTIFACTS / f"{screenshot}-dashboard.png"), full_page=True)

        # The session is a real one: another page of the organisation opens without sign-in.
        page.goto(f"{origin}/account/sessions/")
        expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
        context.close()

    assert failed == []
    assert any(url.split(" ", 1)[1].startswith(idp_origin) for url in visited), visited
    return visited


def _assert_alice_joined(tenant: Any, provider_id: str) -> None:
    from allauth.socialaccount.models import SocialAccount
    from django_tenants.utils import tenant_context

    from accounts.models import AuditEvent, Role, User

    with tenant_context(tenant):
        alice = User.objects.get(email=ALICE)
        assert (alice.full_name, alice.role, alice.is_active) == ("Alice Liddell", Role.MEMBER, True)
        assert not alice.has_usable_password()
        assert list(SocialAccount.objects.filter(user=alice).values_list("provider", flat=True)) == [
            provider_id
        ]
        assert User.objects.count() == 2  # the owner and Alice
        assert AuditEvent.objects.filter(
            type=AuditEvent.Type.LOGIN_SUCCEEDED, actor=alice, data__method="sso"
        ).exists()


def test_sign_in_through_the_oidc_provider_creates_the_member(
    site_url: str,
    oidc_idp: OidcTestProvider,
) -> None:
    tenant = _tenant()
    provider_id = _add_provider(
        tenant,
        "oidc",
        name="Initech Okta",
        server_url=oidc_idp.issuer,
        client_id=oidc_idp.client_id,
        client_secret=oidc_idp.client_secret,
    )
    visited = _sign_in_through_idp(
        site_url,
        tenant,
        provider_name="Initech Okta",
        idp_origin=f"{oidc_idp.issuer}/authorize",
        screenshot="sso-oidc",
    )
    # The provider saw state, nonce and PKCE, and our server redeemed the code with its verifier.
    authorize = next(u for u in visited if f"{oidc_idp.issuer}/authorize" in u)
    for parameter in ("state=", "nonce=", "code_challenge=", "code_challenge_method=S256"):
        assert parameter in authorize, authorize
    assert [r["code_verifier"] != "" for r in oidc_idp.token_requests] == [True]
    _assert_alice_joined(tenant, provider_id)


def test_sign_in_through_the_saml_idp_creates_the_member(
    site_url: str,
    saml_idp: SamlTestIdp,
) -> None:
    tenant = _tenant()
    provider_id = _add_provider(tenant, "saml", name="Initech IdP", metadata_xml=saml_idp.metadata_xml())
    acs = f"{tenant_origin(site_url, tenant)}/accounts/saml/{provider_id}/acs/"
    visited = _sign_in_through_idp(
        site_url,
        tenant,
        provider_name="Initech IdP",
        idp_origin=saml_idp.sso_url,
        screenshot="sso-saml",
    )
    # The IdP's form POSTed the signed response to our ACS (cross-site), which moved on to
    # allauth's "finish" step.
    assert f"POST {acs}" in visited, visited
    assert any(u.startswith(f"GET {acs}finish/") for u in visited), visited
    assert [r["acs_url"] for r in saml_idp.requests] == [acs]
    _assert_alice_joined(tenant, provider_id)


def test_first_sso_of_an_existing_account_asks_for_its_password_once(
    site_url: str,
    oidc_idp: OidcTestProvider,
) -> None:
    """The IdP asserts the owner's email: the browser lands on the link page, not the dashboard;
    a wrong password is an inline error; the right one links the identity and signs in."""
    from allauth.socialaccount.models import SocialAccount
    from django_tenants.utils import tenant_context

    tenant = _tenant()
    _add_provider(
        tenant,
        "oidc",
        name="Initech Okta",
        server_url=oidc_idp.issuer,
        client_id=oidc_idp.client_id,
        client_secret=oidc_idp.client_secret,
    )
    owner = "peter@initech.example"
    oidc_idp.user = {"sub": "okta-peter", "email": owner, "email_verified": True, "name": "Peter"}
    origin = tenant_origin(site_url, tenant)
    failed: list[str] = []
    with chromium() as browser:
        context, page = new_page(browser, failed)
        page.goto(f"{origin}/sso/")
        page.get_by_role("button", name="Continue with Initech Okta").click()
        expect(page).to_have_url(f"{origin}/sso/link/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it's your account")
        page.get_by_label(f"Password of {owner}").fill("not-the-password")
        page.get_by_role("button", name="Link and sign in").click()
        expect(page.locator("#sso-link-error")).to_contain_text("password is incorrect")
        page.screenshot(path=str(ARTIFACTS / "sso-link-error.png"), full_page=True)
        page.get_by_label(f"Password of {owner}").fill(OWNER_PASSWORD)
        page.get_by_role("button", name="Link and sign in").click()
        expect(page).to_have_url(f"{origin}/")
        expect(page.locator(".nav-user")).to_have_attribute("title", f"Signed in as {owner}")
        context.close()
    assert failed == []  # 5xx responses and failed requests
    with tenant_context(tenant):
        assert list(SocialAccount.objects.values_list("uid", "user__email")) == [("okta-peter", owner)]
