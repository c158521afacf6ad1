"""Single sign-on is not a way into someone else's account (issue 6, section 1).

Attacked as a hostile admin (who registers an IdP that asserts the owner's email), as a member
with an unverified address, and as an API client skipping the second factor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.core import mail
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.models import AuditEvent, Role, User
from accounts.services import member_add
from accounts.testing.oidc_provider import OidcTestProvider
from accounts.testing.saml_idp import SamlTestIdp
from accounts.tests.mfa_helpers import enrol_totp, totp_code, wait_away_from_step_boundary
from accounts.tests.test_sso_oidc import acme_oidc_provider, add_oidc, api_sign_in
from accounts.tests.test_sso_saml import add_saml, browser, sign_in_via_idp, signed_in_as

PASSWORD = "a-long-enough-password-1"


@pytest.fixture
def idp() -> Iterator[OidcTestProvider]:
    yield from acme_oidc_provider()


def _add_member(api: Any, tenant: Any, email: str, role: str = Role.MEMBER) -> str:
    with tenant_context(tenant.tenant):
        member_add(tenant=tenant.tenant, email=email, password=PASSWORD, role=role)
    return str(tenant.login(api, email, PASSWORD))


def _counts(tenant: Any) -> tuple[int, int]:
    with tenant_context(tenant.tenant):
        return User.objects.count(), SocialAccount.objects.count()


def _web_signed_in(tenant: Any, email: str, password: str) -> Client:
    web = Client(HTTP_HOST=tenant.host)
    assert web.post("/accounts/login/", {"login": email, "password": password}).status_code == 302
    return web


def _web_oidc(web: Client, provider: dict[str, Any]) -> Any:
    start = web.post(urlparse(provider["login_url"]).path)
    back = urlparse(requests.get(start["Location"], allow_redirects=False, timeout=10).headers["Location"])
    return web.get(f"{back.path}?{back.query}")


# --- managing providers is an owner's action ------------------------------------------------------


@pytest.mark.django_db
def test_admins_read_but_cannot_add_change_or_remove_providers_or_switch_settings(api, tenant_a, idp):
    provider = add_oidc(api, tenant_a, idp)
    admin = _add_member(api, tenant_a, "admin@acme.test", Role.ADMIN)
    host = tenant_a.host
    assert api.get("/api/v1/auth/sso/providers", host=host, token=admin).status_code == 200
    assert api.get("/api/v1/auth/sso/settings", host=host, token=admin).status_code == 200
    attempts = [
        api.post(
            "/api/v1/auth/sso/providers",
            {"type": "oidc", "name": "Evil", "server_url": idp.issuer, "client_id": "x"},
            host=host,
            token=admin,
        ),
        api.patch(f"/api/v1/auth/sso/providers/{provider['id']}", {"name": "Evil"}, host=host, token=admin),
        api.delete(f"/api/v1/auth/sso/providers/{provider['id']}", host=host, token=admin),
        api.patch("/api/v1/auth/sso/settings", {"sso_only": True}, host=host, token=admin),
        api.patch("/api/v1/auth/sso/settings", {"trust_idp_mfa": True}, host=host, token=admin),
    ]
    assert [r.status_code for r in attempts] == [403] * 5
    assert {r.body["error"] for r in attempts} == {"permission_denied"}
    # The pages: read-only for admins, every write refused.
    web = _web_signed_in(tenant_a, "admin@acme.test", PASSWORD)
    page = web.get("/settings/sso/")
    assert page.status_code == 200 and 'id="sso-read-only"' in page.content.decode()
    assert 'id="oidc-form"' not in page.content.decode()
    assert web.post("/settings/sso/", {"type": "oidc", "name": "Evil"}).status_code == 403
    assert web.post(f"/settings/sso/{provider['id']}/delete/").status_code == 403
    assert web.post("/settings/sso/only/", {"sso_only": "on"}).status_code == 403
    with tenant_context(tenant_a.tenant):
        app = SocialApp.objects.get()
        assert app.name == "Okta"
    assert tenant_a.tenant.__class__.objects.get(pk=tenant_a.tenant.pk).settings.get("sso_only") is not True


@pytest.mark.django_db
def test_every_change_is_audited_and_emailed_to_every_owner(
    api, tenant_a, idp, django_capture_on_commit_callbacks
):
    owner = tenant_a.login(api)
    _add_member(api, tenant_a, "second-owner@acme.test", Role.OWNER)
    _add_member(api, tenant_a, "admin@acme.test", Role.ADMIN)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        provider = add_oidc(api, tenant_a, idp)
        path = f"/api/v1/auth/sso/providers/{provider['id']}"
        assert api.patch(path, {"name": "Okta EU"}, host=tenant_a.host, token=owner).status_code == 200
        settings_ = api.patch(
            "/api/v1/auth/sso/settings",
            {"sso_only": True, "trust_idp_mfa": True},
            host=tenant_a.host,
            token=owner,
        )
        assert settings_.status_code == 200 and settings_.body == {"sso_only": True, "trust_idp_mfa": True}
        assert api.delete(path, host=tenant_a.host, token=owner).status_code == 204
    assert len(mail.outbox) == 4
    for message in mail.outbox:
        assert sorted(message.to) == sorted([tenant_a.owner_email, "second-owner@acme.test"])
        assert message.subject == "Sign-in settings changed in Acme Corporation"
        assert tenant_a.owner_email in message.body  # who did it
    bodies = [m.body for m in mail.outbox]
    assert "“Okta” (OIDC) was added" in bodies[0]
    assert "“Okta EU” was changed (name)" in bodies[1]
    assert "only way in" in bodies[2] and "second factor given at the identity provider" in bodies[2]
    assert "“Okta EU” was removed" in bodies[3]
    with tenant_context(tenant_a.tenant):
        types = list(AuditEvent.objects.order_by("created_at").values_list("type", "data"))
    assert (
        AuditEvent.Type.SECURITY_SETTINGS_CHANGED,
        {"changes": {"sso_only": True, "trust_idp_mfa": True}},
    ) in types
    # Saving the same values again changes nothing and emails nobody.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        api.patch("/api/v1/auth/sso/settings", {"trust_idp_mfa": True}, host=tenant_a.host, token=owner)
    assert mail.outbox == []


# --- an IdP cannot open an existing account -------------------------------------------------------


@pytest.mark.django_db
def test_idp_asserting_the_owners_email_gets_no_tokens_and_creates_nothing(api, tenant_a, idp):
    """The takeover: an IdP (here the owner's own, as admins may no longer add one) asserts the
    owner's email, verified. Before the fix the callback returned the owner's tokens."""
    provider = add_oidc(api, tenant_a, idp)
    idp.user = {"sub": "attacker", "email": tenant_a.owner_email.upper(), "email_verified": True}
    response, _ = api_sign_in(api, tenant_a, provider["id"])
    assert response.status_code == 409
    assert response.body["error"] == "sso_link_required"
    assert "access_token" not in response.body and response.body["link_token"]
    assert _counts(tenant_a) == (1, 0)
    with tenant_context(tenant_a.tenant):
        assert AuditEvent.objects.filter(type=AuditEvent.Type.SSO_LINK_REQUIRED).exists()
    # The attacker does not know the password: linking is refused, and counts toward the lock.
    wrong = api.post(
        "/api/v1/auth/sso/link",
        {"link_token": response.body["link_token"], "password": "not-the-password"},
        host=tenant_a.host,
    )
    assert wrong.status_code == 401 and wrong.body["error"] == "invalid_credentials"
    assert _counts(tenant_a) == (1, 0)


@pytest.mark.django_db
def test_the_holder_links_once_with_password_and_second_factor_then_signs_in_by_sso(api, tenant_a, idp):
    provider = add_oidc(api, tenant_a, idp)
    secret = enrol_totp(api, tenant_a.host, tenant_a.login(api))["secret"]
    idp.user = {"sub": "okta-owner", "email": tenant_a.owner_email, "email_verified": True}
    first, _ = api_sign_in(api, tenant_a, provider["id"])
    assert first.status_code == 409
    link_token = first.body["link_token"]
    body = {"link_token": link_token, "password": tenant_a.password}
    no_code = api.post("/api/v1/auth/sso/link", body, host=tenant_a.host)
    assert no_code.status_code == 422 and no_code.body["error"] == "mfa_required"
    assert _counts(tenant_a) == (1, 0)
    wait_away_from_step_boundary()
    linked = api.post("/api/v1/auth/sso/link", {**body, "mfa_code": totp_code(secret)}, host=tenant_a.host)
    assert linked.status_code == 200, linked.body
    assert linked.body["access_token"].startswith("lva_")
    with tenant_context(tenant_a.tenant):
        account = SocialAccount.objects.get()
        assert account.user.email == tenant_a.owner_email and account.uid == "okta-owner"
        assert AuditEvent.objects.filter(type=AuditEvent.Type.SSO_LINKED).count() == 1
    # The token works once.
    again = api.post("/api/v1/auth/sso/link", {**body, "mfa_code": totp_code(secret, 1)}, host=tenant_a.host)
    assert again.status_code == 400 and again.body["error"] == "sso_pending_invalid"
    # From now on the linked identity signs in, and the owner still gives the second factor.
    second, _ = api_sign_in(api, tenant_a, provider["id"])
    assert second.status_code == 422 and second.body["error"] == "mfa_required"
    assert _counts(tenant_a) == (1, 1)


# --- the second factor after single sign-on -------------------------------------------------------


@pytest.mark.django_db
def test_api_callback_asks_for_the_second_factor_with_a_continuation_token(api, tenant_a, idp):
    provider = add_oidc(api, tenant_a, idp)
    created, _ = api_sign_in(api, tenant_a, provider["id"])  # Ada, created just in time
    assert created.status_code == 200
    secret = enrol_totp(api, tenant_a.host, created.body["access_token"])["secret"]
    response, _ = api_sign_in(api, tenant_a, provider["id"])
    assert response.status_code == 422, response.body
    assert response.body["error"] == "mfa_required" and response.body["methods"] == ["totp", "recovery_code"]
    assert "access_token" not in response.body
    mfa_token = response.body["mfa_token"]
    wrong = api.post(
        "/api/v1/auth/sso/callback", {"mfa_token": mfa_token, "mfa_code": "000000"}, host=tenant_a.host
    )
    assert wrong.status_code == 401 and wrong.body["error"] == "invalid_mfa_code"
    wait_away_from_step_boundary()
    done = api.post(
        "/api/v1/auth/sso/callback",
        {"mfa_token": mfa_token, "mfa_code": totp_code(secret)},
        host=tenant_a.host,
    )
    assert done.status_code == 200 and done.body["access_token"]
    replay = api.post(
        "/api/v1/auth/sso/callback",
        {"mfa_token": mfa_token, "mfa_code": totp_code(secret, 1)},
        host=tenant_a.host,
    )
    assert replay.status_code == 400 and replay.body["error"] == "sso_pending_invalid"
    # A continuation token is tenant-scoped: unknown on another tenant's host.
    mixed = api.post(
        "/api/v1/auth/sso/callback", {"mfa_token": mfa_token, "code": "x", "state": "y"}, host=tenant_a.host
    )
    assert mixed.status_code == 400 and mixed.body["error"] == "validation_error"


@pytest.mark.django_db
def test_continuation_token_of_one_tenant_is_unknown_in_another(api, tenant_a, tenant_b, idp):
    provider = add_oidc(api, tenant_a, idp)
    created, _ = api_sign_in(api, tenant_a, provider["id"])
    enrol_totp(api, tenant_a.host, created.body["access_token"])
    response, _ = api_sign_in(api, tenant_a, provider["id"])
    other = api.post(
        "/api/v1/auth/sso/callback",
        {"mfa_token": response.body["mfa_token"], "mfa_code": "123456"},
        host=tenant_b.host,
    )
    assert other.status_code == 400 and other.body["error"] == "sso_pending_invalid"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("trust", "amr", "expected"),
    [(True, ["pwd", "mfa"], 200), (True, ["hwk"], 200), (True, ["pwd"], 422), (False, ["pwd", "otp"], 422)],
)
def test_idp_mfa_is_accepted_only_when_the_tenant_trusts_it(api, tenant_a, idp, trust, amr, expected):
    owner = tenant_a.login(api)
    provider = add_oidc(api, tenant_a, idp)
    created, _ = api_sign_in(api, tenant_a, provider["id"])
    enrol_totp(api, tenant_a.host, created.body["access_token"])
    api.patch("/api/v1/auth/sso/settings", {"trust_idp_mfa": trust}, host=tenant_a.host, token=owner)
    idp.user = {**idp.user, "amr": amr}
    response, _ = api_sign_in(api, tenant_a, provider["id"])
    assert response.status_code == expected, response.body


@pytest.mark.django_db
def test_web_sso_goes_through_allauths_mfa_stage_unless_the_idp_mfa_is_trusted(api, tenant_a):
    owner = tenant_a.login(api)
    with SamlTestIdp() as saml:
        saml.user = {"name_id": "ada@acme.test", "attributes": {"email": ["ada@acme.test"]}}
        provider = add_saml(api, tenant_a, saml)
        first = browser(tenant_a)
        assert sign_in_via_idp(first, provider).status_code == 302
        assert signed_in_as(first) == "ada@acme.test"  # created just in time, no second factor yet
        with tenant_context(tenant_a.tenant):
            ada = User.objects.get(email="ada@acme.test")
            ada.set_password(PASSWORD)
            ada.save()
        enrol_totp(api, tenant_a.host, tenant_a.login(api, "ada@acme.test", PASSWORD))
        web = browser(tenant_a)
        landed = sign_in_via_idp(web, provider)
        assert landed.status_code == 302 and landed["Location"] == "/accounts/2fa/authenticate/"
        assert signed_in_as(web) is None  # not signed in before the code
        # The tenant trusts its IdP's MFA and the IdP asserts a multi-factor context.
        api.patch("/api/v1/auth/sso/settings", {"trust_idp_mfa": True}, host=tenant_a.host, token=owner)
        password_only = browser(tenant_a)
        assert sign_in_via_idp(password_only, provider)["Location"] == "/accounts/2fa/authenticate/"
        saml.user["authn_context"] = "https://refeds.org/profile/mfa"
        trusted = browser(tenant_a)
        assert sign_in_via_idp(trusted, provider).status_code == 302
        assert signed_in_as(trusted) == "ada@acme.test"


# --- the web link page ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_web_first_sso_of_an_existing_member_asks_for_the_password_once(api, tenant_a, idp):
    _add_member(api, tenant_a, "ada@acme.test")
    provider = add_oidc(api, tenant_a, idp)
    web = Client(HTTP_HOST=tenant_a.host)
    landed = _web_oidc(web, provider)
    assert landed.status_code == 302 and landed["Location"] == "/sso/link/"
    assert signed_in_as(web) is None and _counts(tenant_a) == (2, 0)
    page = web.get("/sso/link/").content.decode()
    assert "ada@acme.test" in page and 'name="code"' not in page  # Ada has no second factor
    assert 'id="sso-link-reset"' in page  # an account without a password sets one by email
    wrong = web.post("/sso/link/", {"password": "nope"})
    assert wrong.status_code == 400 and 'id="sso-link-error"' in wrong.content.decode()
    assert _counts(tenant_a) == (2, 0)
    done = web.post("/sso/link/", {"password": PASSWORD})
    assert done.status_code == 302
    assert signed_in_as(web) == "ada@acme.test" and _counts(tenant_a) == (2, 1)
    # Another browser now signs in through the IdP directly.
    other = Client(HTTP_HOST=tenant_a.host)
    assert _web_oidc(other, provider).status_code == 302
    assert signed_in_as(other) == "ada@acme.test"
    # The link page without a pending sign-in is an error page, not a 500.
    assert Client(HTTP_HOST=tenant_a.host).get("/sso/link/").status_code == 400


@pytest.mark.django_db
def test_saml_first_sign_in_of_an_existing_member_links_only_after_the_password(api, tenant_a):
    with SamlTestIdp() as saml:
        saml.user = {"name_id": tenant_a.owner_email, "attributes": {"email": [tenant_a.owner_email]}}
        provider = add_saml(api, tenant_a, saml)
        web = browser(tenant_a)
        landed = sign_in_via_idp(web, provider)
        assert landed.status_code == 302 and landed["Location"] == "/sso/link/"
        assert signed_in_as(web) is None and _counts(tenant_a) == (1, 0)
        assert web.post("/sso/link/", {"password": tenant_a.password}).status_code == 302
        assert signed_in_as(web) == tenant_a.owner_email and _counts(tenant_a) == (1, 1)


# --- only verified addresses: no capture through an unverified one ---------------------------------


@pytest.mark.django_db
def test_an_unverified_address_cannot_be_made_primary(api, tenant_a):
    _add_member(api, tenant_a, "mallory@acme.test")
    web = _web_signed_in(tenant_a, "mallory@acme.test", PASSWORD)
    added = web.post("/accounts/email/", {"action_add": "", "email": "ada@acme.test"})
    assert added.status_code == 302
    web.post("/accounts/email/", {"action_primary": "", "email": "ada@acme.test"})
    with tenant_context(tenant_a.tenant):
        mallory = User.objects.get(email="mallory@acme.test")  # still her sign-in address
        claimed = EmailAddress.objects.get(email="ada@acme.test")
        assert claimed.user == mallory and not claimed.verified and not claimed.primary


@pytest.mark.django_db
def test_sso_never_matches_an_unverified_address(api, tenant_a, idp):
    """Mallory adds Ada's address (unverified) before Ada's first SSO sign-in: Ada gets an
    account of her own, Mallory gets nothing."""
    _add_member(api, tenant_a, "mallory@acme.test")
    web = _web_signed_in(tenant_a, "mallory@acme.test", PASSWORD)
    web.post("/accounts/email/", {"action_add": "", "email": "ada@acme.test"})
    provider = add_oidc(api, tenant_a, idp)
    response, _ = api_sign_in(api, tenant_a, provider["id"])
    assert response.status_code == 200, response.body
    with tenant_context(tenant_a.tenant):
        account = SocialAccount.objects.get()
        assert account.user.email == "ada@acme.test"
        assert EmailAddress.objects.get(email="ada@acme.test", verified=True).user == account.user
        assert not SocialAccount.objects.filter(user__email="mallory@acme.test").exists()
