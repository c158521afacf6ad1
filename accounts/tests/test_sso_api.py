"""Managing a tenant's identity providers (API and settings page), "SSO only", and the web
OpenID Connect flow through the pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from allauth.socialaccount.models import SocialApp
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.mfa_adapter import decrypt_text
from accounts.models import AuditEvent, Role
from accounts.services import member_add
from accounts.testing.oidc_provider import OidcTestProvider
from accounts.testing.saml_idp import SamlTestIdp
from accounts.tests.test_sso_oidc import acme_oidc_provider, add_oidc, api_sign_in
from tenants.links import tenant_url


@pytest.fixture
def idp() -> Iterator[OidcTestProvider]:
    yield from acme_oidc_provider()


def _member_token(api: Any, tenant: Any, role: str = Role.MEMBER) -> str:
    with tenant_context(tenant.tenant):
        member_add(
            tenant=tenant.tenant, email=f"{role}@acme.test", password="a-long-enough-password-1", role=role
        )
    return tenant.login(api, f"{role}@acme.test", "a-long-enough-password-1")


@pytest.mark.django_db
def test_crud_with_urls_encrypted_secret_and_audit(api, tenant_a, idp):
    token = tenant_a.login(api)
    created = add_oidc(api, tenant_a, idp)
    assert created["type"] == "oidc" and created["has_client_secret"] is True
    assert "client_secret" not in created
    assert created["redirect_uri"] == tenant_url(
        tenant_a.tenant, f"/accounts/oidc/{created['id']}/login/callback/"
    )
    with tenant_context(tenant_a.tenant):
        app = SocialApp.objects.get(provider_id=created["id"])
        assert app.provider == "openid_connect" and app.settings["oauth_pkce_enabled"] is True
        assert idp.client_secret not in app.secret and decrypt_text(app.secret) == idp.client_secret
    listed = api.get("/api/v1/auth/sso/providers", host=tenant_a.host, token=token)
    assert [p["id"] for p in listed.body] == [created["id"]]
    path = f"/api/v1/auth/sso/providers/{created['id']}"
    changed = api.patch(
        path, {"name": "Okta EU", "allowed_domains": ["Acme.test"]}, host=tenant_a.host, token=token
    )
    assert changed.status_code == 200 and changed.body["name"] == "Okta EU"
    assert changed.body["allowed_domains"] == ["acme.test"]
    assert api.get(path, host=tenant_a.host, token=token).body["name"] == "Okta EU"
    assert api.delete(path, host=tenant_a.host, token=token).status_code == 204
    assert api.get(path, host=tenant_a.host, token=token).status_code == 404
    with tenant_context(tenant_a.tenant):
        types = set(AuditEvent.objects.values_list("type", flat=True))
    assert {
        AuditEvent.Type.SSO_PROVIDER_ADDED,
        AuditEvent.Type.SSO_PROVIDER_CHANGED,
        AuditEvent.Type.SSO_PROVIDER_REMOVED,
    } <= types


@pytest.mark.django_db
def test_bad_input_is_a_400(api, tenant_a):
    token = tenant_a.login(api)
    bodies: list[Any] = [
        {"type": "ldap", "name": "x"},
        {"type": "oidc", "name": "x"},
        {"type": "oidc", "name": "x", "server_url": "ftp://x", "client_id": "c"},
        {"type": "saml", "name": "x", "metadata_xml": "<not-metadata/>"},
        {"type": "saml", "name": "x"},
        {
            "type": "oidc",
            "name": "x",
            "server_url": "https://x.test",
            "client_id": "c",
            "role_mapping": {"g": "owner"},
        },
        {
            "type": "oidc",
            "name": "x",
            "server_url": "https://x.test",
            "client_id": "c",
            "allowed_domains": ["not a domain"],
        },
        {"type": "oidc", "name": 5},
        [],
    ]
    for body in bodies:
        response = api.post("/api/v1/auth/sso/providers", body, host=tenant_a.host, token=token)
        assert response.status_code == 400, (body, response.body)
    assert api.get("/api/v1/auth/sso/providers/..%2f", host=tenant_a.host, token=token).status_code == 404


@pytest.mark.django_db
def test_members_cannot_manage_sso(api, tenant_a):
    token = _member_token(api, tenant_a)
    assert api.get("/api/v1/auth/sso/providers", host=tenant_a.host, token=token).status_code == 403
    body = {"type": "oidc", "name": "x", "server_url": "https://x.test", "client_id": "c"}
    assert api.post("/api/v1/auth/sso/providers", body, host=tenant_a.host, token=token).status_code == 403
    assert (
        api.patch(
            "/api/v1/auth/sso/settings", {"sso_only": True}, host=tenant_a.host, token=token
        ).status_code
        == 403
    )
    assert api.get("/api/v1/auth/sso/providers", host=tenant_a.host).status_code == 401


@pytest.mark.django_db
def test_providers_never_cross_tenants(api, tenant_a, tenant_b, idp):
    a_provider = add_oidc(api, tenant_a, idp)
    token_b = tenant_b.login(api)
    assert api.get("/api/v1/auth/sso/providers", host=tenant_b.host, token=token_b).body == []
    for method in ("get", "patch", "delete"):
        kwargs: dict[str, Any] = {"host": tenant_b.host, "token": token_b}
        if method == "patch":
            kwargs["data"] = {"name": "stolen"}
        response = getattr(api, method)(f"/api/v1/auth/sso/providers/{a_provider['id']}", **kwargs)
        assert response.status_code == 404
    # B's token in A's context is unknown there.
    assert api.get("/api/v1/auth/sso/providers", host=tenant_a.host, token=token_b).status_code == 401
    assert api.get("/api/v1/auth/sso/settings", host=tenant_a.host, token=token_b).status_code == 401
    assert (
        api.get(
            f"/api/v1/auth/sso/providers/{a_provider['id']}", host=tenant_a.host, token=tenant_a.login(api)
        ).body["name"]
        == "Okta"
    )


@pytest.mark.django_db
def test_sso_only_refuses_passwords_on_api_and_web(api, tenant_a, idp):
    token = tenant_a.login(api)
    assert (
        api.patch(
            "/api/v1/auth/sso/settings", {"sso_only": True}, host=tenant_a.host, token=token
        ).status_code
        == 409
    )
    add_oidc(api, tenant_a, idp)
    member_token = _member_token(api, tenant_a)
    assert member_token
    response = api.patch("/api/v1/auth/sso/settings", {"sso_only": True}, host=tenant_a.host, token=token)
    assert response.status_code == 200 and response.body == {"sso_only": True, "trust_idp_mfa": False}
    refused = api.post(
        "/api/v1/auth/login",
        {"email": "member@acme.test", "password": "a-long-enough-password-1"},
        host=tenant_a.host,
    )
    assert refused.status_code == 403 and refused.body["error"] == "sso_required"
    web = Client(HTTP_HOST=tenant_a.host)
    page = web.post("/accounts/login/", {"login": "member@acme.test", "password": "a-long-enough-password-1"})
    assert page.status_code == 200 and "single sign-on only" in page.content.decode()
    assert web.get("/").status_code == 302  # not signed in
    # Owners keep their password as the way back in.
    assert tenant_a.login(api)
    # SSO still works.
    with tenant_context(tenant_a.tenant):
        slug = SocialApp.objects.get().provider_id
    ok, _ = api_sign_in(api, tenant_a, slug)
    assert ok.status_code == 200


@pytest.mark.django_db
def test_web_oidc_sign_in_through_the_pages(api, tenant_a, idp):
    provider = add_oidc(api, tenant_a, idp)
    web = Client(HTTP_HOST=tenant_a.host)
    chooser = web.get("/sso/")
    assert chooser.status_code == 200 and "Continue with Okta" in chooser.content.decode()
    start = web.post(urlparse(provider["login_url"]).path)
    assert start.status_code == 302 and start["Location"].startswith(idp.issuer)
    back = requests.get(start["Location"], allow_redirects=False, timeout=10)
    callback = urlparse(back.headers["Location"])
    assert callback.path == urlparse(provider["redirect_uri"]).path
    done = web.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 302, done.content[:1000]
    assert "ada@acme.test" in web.get("/").content.decode()
    # The same callback again (replay): refused with an error page.
    again = Client(HTTP_HOST=tenant_a.host).get(f"{callback.path}?{callback.query}")
    assert again.status_code == 400 and 'data-code="sso_state_invalid"' in again.content.decode()


@pytest.mark.django_db
def test_web_callback_with_a_state_from_another_browser_is_refused(api, tenant_a, idp):
    """Login CSRF: an attacker's own code+state, opened in the victim's browser."""
    provider = add_oidc(api, tenant_a, idp)
    attacker = Client(HTTP_HOST=tenant_a.host)
    start = attacker.post(urlparse(provider["login_url"]).path)
    back = urlparse(requests.get(start["Location"], allow_redirects=False, timeout=10).headers["Location"])
    victim = Client(HTTP_HOST=tenant_a.host)
    response = victim.get(f"{back.path}?{back.query}")
    assert response.status_code == 400 and 'data-code="sso_state_invalid"' in response.content.decode()
    assert victim.get("/").status_code == 302


@pytest.mark.django_db
def test_web_nonce_mismatch_shows_an_error_page(api, tenant_a, idp):
    provider = add_oidc(api, tenant_a, idp)
    idp.id_token_overrides = {"nonce": "replayed-token-nonce"}
    web = Client(HTTP_HOST=tenant_a.host)
    start = web.post(urlparse(provider["login_url"]).path)
    back = urlparse(requests.get(start["Location"], allow_redirects=False, timeout=10).headers["Location"])
    response = web.get(f"{back.path}?{back.query}")
    assert response.status_code == 401 and 'data-code="sso_nonce_mismatch"' in response.content.decode()
    with tenant_context(tenant_a.tenant):
        from accounts.models import User

        assert User.objects.count() == 1


@pytest.mark.django_db
def test_settings_page_shows_urls_and_adds_providers(api, tenant_a):
    web = Client(HTTP_HOST=tenant_a.host)
    assert (
        web.post(
            "/accounts/login/", {"login": tenant_a.owner_email, "password": tenant_a.password}
        ).status_code
        == 302
    )
    with SamlTestIdp() as saml_idp, OidcTestProvider() as oidc_idp:
        added = web.post(
            "/settings/sso/", {"type": "saml", "name": "Azure AD", "metadata_xml": saml_idp.metadata_xml()}
        )
        assert added.status_code == 302
        added = web.post(
            "/settings/sso/",
            {
                "type": "oidc",
                "name": "Google",
                "server_url": oidc_idp.issuer,
                "client_id": "c",
                "client_secret": "s",
            },
        )
        assert added.status_code == 302
    page = web.get("/settings/sso/").content.decode()
    assert tenant_url(tenant_a.tenant, "/accounts/saml/azure-ad/acs/") in page
    assert tenant_url(tenant_a.tenant, "/accounts/saml/azure-ad/metadata/") in page
    assert tenant_url(tenant_a.tenant, "/accounts/oidc/google/login/callback/") in page
    bad = web.post("/settings/sso/", {"type": "saml", "name": "Broken", "metadata_xml": "<x/>"})
    assert bad.status_code == 400 and 'id="sso-error"' in bad.content.decode()
    assert web.post("/settings/sso/only/", {"sso_only": "on"}).status_code == 302
    assert web.post("/settings/sso/google/delete/").status_code == 302
    assert "accounts/oidc/google" not in web.get("/settings/sso/").content.decode()


@pytest.mark.django_db
def test_settings_page_is_for_admins(api, tenant_a):
    _member_token(api, tenant_a)
    web = Client(HTTP_HOST=tenant_a.host)
    web.post("/accounts/login/", {"login": "member@acme.test", "password": "a-long-enough-password-1"})
    assert web.get("/settings/sso/").status_code == 403
    assert web.post("/settings/sso/", {"type": "oidc", "name": "x"}).status_code == 403
