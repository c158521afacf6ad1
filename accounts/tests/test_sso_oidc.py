"""OpenID Connect sign-in against a real provider the tests start (accounts.testing), through
the API (initiate/callback → our tokens) and the pages (browser redirects, session sign-in)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from django_tenants.utils import tenant_context

from accounts.models import AuditEvent, Role, User
from accounts.testing.oidc_provider import OidcTestProvider

REDIRECT = "https://app.example.test/sso/done"


def acme_oidc_provider() -> Iterator[OidcTestProvider]:
    with OidcTestProvider(client_id="leanvibe-acme", client_secret="acme-secret") as provider:
        provider.user = {
            "sub": "okta-ada",
            "email": "ada@acme.test",
            "email_verified": True,
            "name": "Ada Lovelace",
            "groups": ["engineering"],
        }
        yield provider


@pytest.fixture
def idp() -> Iterator[OidcTestProvider]:
    yield from acme_oidc_provider()


def add_oidc(api: Any, tenant: Any, idp: OidcTestProvider, **extra: Any) -> dict[str, Any]:
    token = tenant.login(api)
    response = api.post(
        "/api/v1/auth/sso/providers",
        {
            "type": "oidc",
            "name": "Okta",
            "server_url": idp.issuer,
            "client_id": idp.client_id,
            "client_secret": idp.client_secret,
            **extra,
        },
        host=tenant.host,
        token=token,
    )
    assert response.status_code == 201, response.body
    return dict(response.body)


def db(tenant: Any) -> Any:
    """Read the tenant's schema (requests leave the connection on public)."""
    return tenant_context(tenant.tenant)


def idp_redirect(authorization_url: str) -> dict[str, str]:
    """Follow the authorization URL at the provider; return the query it redirects back with."""
    response = requests.get(authorization_url, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlparse(response.headers["Location"]).query).items()}


def api_sign_in(api: Any, tenant: Any, provider_id: str) -> tuple[Any, dict[str, str]]:
    started = api.post(
        "/api/v1/auth/sso/initiate", {"provider": provider_id, "redirect_uri": REDIRECT}, host=tenant.host
    )
    assert started.status_code == 200, started.body
    back = idp_redirect(started.body["authorization_url"])
    return api.post(
        "/api/v1/auth/sso/callback", {"code": back["code"], "state": back["state"]}, host=tenant.host
    ), back


@pytest.mark.django_db
def test_api_flow_sends_state_nonce_and_pkce_and_creates_member_just_in_time(api, tenant_a, idp):
    provider = add_oidc(api, tenant_a, idp, role_claim="groups", role_mapping={"engineering": "admin"})
    started = api.post(
        "/api/v1/auth/sso/initiate",
        {"provider": provider["id"], "redirect_uri": REDIRECT},
        host=tenant_a.host,
    )
    assert started.status_code == 200
    assert started.body["expires_in"] == 600
    query = parse_qs(urlparse(started.body["authorization_url"]).query)
    assert query["state"] == [started.body["state"]]
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["nonce"][0] and query["redirect_uri"] == [REDIRECT]
    back = idp_redirect(started.body["authorization_url"])
    response = api.post(
        "/api/v1/auth/sso/callback", {"code": back["code"], "state": back["state"]}, host=tenant_a.host
    )
    assert response.status_code == 200, response.body
    assert idp.token_requests[-1]["code_verifier"]  # PKCE verifier sent to the token endpoint
    me = api.get("/api/v1/users", host=tenant_a.host, token=response.body["access_token"])
    assert me.status_code == 200
    with db(tenant_a):
        user = User.objects.get(email="ada@acme.test")
    assert user.full_name == "Ada Lovelace"
    assert user.role == Role.ADMIN  # mapped from the "groups" claim
    assert not user.has_usable_password()
    with db(tenant_a):
        assert SocialAccount.objects.filter(user=user, provider=provider["id"], uid="okta-ada").exists()
    with db(tenant_a):
        assert AuditEvent.objects.filter(
            type=AuditEvent.Type.LOGIN_SUCCEEDED, actor=user, data__method="sso"
        ).exists()


@pytest.mark.django_db
def test_default_role_is_member_and_second_sign_in_reuses_the_link(api, tenant_a, idp):
    provider = add_oidc(api, tenant_a, idp)
    first, _ = api_sign_in(api, tenant_a, provider["id"])
    second, _ = api_sign_in(api, tenant_a, provider["id"])
    assert first.status_code == second.status_code == 200
    with db(tenant_a):
        assert User.objects.filter(email="ada@acme.test").count() == 1
    with db(tenant_a):
        assert User.objects.get(email="ada@acme.test").role == Role.MEMBER
    with db(tenant_a):
        assert SocialAccount.objects.count() == 1


@pytest.mark.django_db
def test_existing_member_with_the_same_verified_email_is_not_linked_without_proof(api, tenant_a, idp):
    """The IdP's word is not enough to open an existing account (the owner's here): 409 and
    nothing is linked or created (accounts/tests/test_sso_takeover.py covers the link)."""
    add = add_oidc(api, tenant_a, idp)
    idp.user = {"sub": "okta-owner", "email": tenant_a.owner_email.upper(), "email_verified": True}
    response, _ = api_sign_in(api, tenant_a, add["id"])
    assert response.status_code == 409 and response.body["error"] == "sso_link_required"
    with db(tenant_a):
        assert not SocialAccount.objects.exists()
        assert User.objects.count() == 1
        assert User.objects.get(email=tenant_a.owner_email).role == Role.OWNER


@pytest.mark.django_db
def test_unverified_email_is_not_linked_to_an_existing_member(api, tenant_a, idp):
    add = add_oidc(api, tenant_a, idp)
    idp.user = {"sub": "evil", "email": tenant_a.owner_email, "email_verified": False}
    response, _ = api_sign_in(api, tenant_a, add["id"])
    assert response.status_code == 403
    assert response.body["error"] == "sso_email_unverified"
    with db(tenant_a):
        assert not SocialAccount.objects.exists()


@pytest.mark.django_db
def test_email_domain_allowlist(api, tenant_a, idp):
    add = add_oidc(api, tenant_a, idp, allowed_domains=["acme.test"])
    idp.user = {"sub": "x", "email": "mallory@evil.test", "email_verified": True}
    response, _ = api_sign_in(api, tenant_a, add["id"])
    assert response.status_code == 403 and response.body["error"] == "sso_domain_not_allowed"
    with db(tenant_a):
        assert not User.objects.filter(email="mallory@evil.test").exists()
    with db(tenant_a):
        assert AuditEvent.objects.filter(type=AuditEvent.Type.SSO_LOGIN_REFUSED).exists()
    idp.user = {"sub": "y", "email": "bob@acme.test", "email_verified": True}
    ok, _ = api_sign_in(api, tenant_a, add["id"])
    assert ok.status_code == 200


@pytest.mark.django_db
def test_plan_user_limit_applies_to_just_in_time_creation(api, tenant_a, idp):
    add = add_oidc(api, tenant_a, idp)
    for n in range(2):  # starter: 3 users, the owner is one
        idp.user = {"sub": f"u{n}", "email": f"u{n}@acme.test", "email_verified": True}
        assert api_sign_in(api, tenant_a, add["id"])[0].status_code == 200
    idp.user = {"sub": "u3", "email": "u3@acme.test", "email_verified": True}
    response, _ = api_sign_in(api, tenant_a, add["id"])
    assert response.status_code == 403 and response.body["error"] == "quota_exceeded"
    with db(tenant_a):
        assert not User.objects.filter(email="u3@acme.test").exists()


# --- attacks ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_state_mismatch_is_refused(api, tenant_a, idp):
    add = add_oidc(api, tenant_a, idp)
    started = api.post(
        "/api/v1/auth/sso/initiate", {"provider": add["id"], "redirect_uri": REDIRECT}, host=tenant_a.host
    )
    back = idp_redirect(started.body["authorization_url"])
    forged = api.post(
        "/api/v1/auth/sso/callback",
        {"code": back["code"], "state": back["state"][:-4] + "AAAA"},
        host=tenant_a.host,
    )
    assert forged.status_code == 400 and forged.body["error"] == "sso_state_invalid"
    assert idp.token_requests == []  # the code was never even exchanged
    with db(tenant_a):
        assert User.objects.count() == 1


@pytest.mark.django_db
def test_state_is_single_use(api, tenant_a, idp):
    add = add_oidc(api, tenant_a, idp)
    response, back = api_sign_in(api, tenant_a, add["id"])
    assert response.status_code == 200
    again = api.post(
        "/api/v1/auth/sso/callback", {"code": back["code"], "state": back["state"]}, host=tenant_a.host
    )
    assert again.status_code == 400 and again.body["error"] == "sso_state_invalid"


@pytest.mark.django_db
def test_nonce_mismatch_is_refused(api, tenant_a, idp):
    add = add_oidc(api, tenant_a, idp)
    idp.id_token_overrides = {"nonce": "a-nonce-from-another-sign-in"}
    response, _ = api_sign_in(api, tenant_a, add["id"])
    assert response.status_code == 401 and response.body["error"] == "sso_nonce_mismatch"
    with db(tenant_a):
        assert User.objects.count() == 1 and not SocialAccount.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("id_token_overrides", {"aud": "some-other-client"}),
        ("id_token_overrides", {"iss": "https://evil.example"}),
        ("id_token_overrides", {"exp": 1_000_000}),
        ("sign_with_foreign_key", True),
    ],
    ids=["wrong-audience", "wrong-issuer", "expired", "bad-signature"],
)
def test_invalid_id_tokens_are_refused(api, tenant_a, idp, knob, value):
    add = add_oidc(api, tenant_a, idp)
    setattr(idp, knob, value)
    response, _ = api_sign_in(api, tenant_a, add["id"])
    assert response.status_code == 401 and response.body["error"] == "sso_id_token_invalid"
    with db(tenant_a):
        assert User.objects.count() == 1 and not SocialAccount.objects.exists()


@pytest.mark.django_db
def test_provider_of_another_tenant_is_unknown(api, tenant_a, tenant_b, idp):
    b_provider = add_oidc(api, tenant_b, idp, name="Globex Okta")
    response = api.post(
        "/api/v1/auth/sso/initiate",
        {"provider": b_provider["id"], "redirect_uri": REDIRECT},
        host=tenant_a.host,
    )
    assert response.status_code == 404 and response.body["error"] == "sso_provider_not_found"
    # A state started on tenant B cannot be completed on tenant A.
    started = api.post(
        "/api/v1/auth/sso/initiate",
        {"provider": b_provider["id"], "redirect_uri": REDIRECT},
        host=tenant_b.host,
    )
    back = idp_redirect(started.body["authorization_url"])
    crossed = api.post(
        "/api/v1/auth/sso/callback", {"code": back["code"], "state": back["state"]}, host=tenant_a.host
    )
    assert crossed.status_code == 400 and crossed.body["error"] == "sso_state_invalid"
    with db(tenant_a):
        assert not User.objects.filter(email="ada@acme.test").exists()


@pytest.mark.django_db
def test_initiate_needs_a_tenant_and_valid_input(api, tenant_a, idp):
    assert (
        api.post("/api/v1/auth/sso/initiate", {"provider": "x", "redirect_uri": REDIRECT}).status_code == 404
    )
    add = add_oidc(api, tenant_a, idp)
    bad = api.post(
        "/api/v1/auth/sso/initiate",
        {"provider": add["id"], "redirect_uri": "javascript:alert(1)"},
        host=tenant_a.host,
    )
    assert bad.status_code == 400
    assert (
        api.post("/api/v1/auth/sso/callback", {"code": 1, "state": []}, host=tenant_a.host).status_code == 400
    )
