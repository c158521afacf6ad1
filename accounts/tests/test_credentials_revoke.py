"""Changing or resetting a password, removing a second factor or being deactivated revokes every
API token and refresh chain and every other web session of the account at once.

Django's session auth hash would sign other browsers out after a password change, but API tokens
never look at it, and removing a second factor does not change it: one service
(``accounts.services.tokens.credentials_revoke``) does the revoking for every path.
"""

from __future__ import annotations

import re

import pytest
from allauth.mfa.models import Authenticator
from django.core import mail
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import AuditEvent, AuthToken, Role
from accounts.services import user_create
from accounts.tests.mfa_helpers import enrol_totp, totp_code, wait_away_from_step_boundary

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "an-entirely-new-passphrase-77"
RESET_LINK = re.compile(r"https?://[^/\s]+(/accounts/password/reset/key/[^\s]+/)")


def _browser(handle, email=None, password=None, ip="203.0.113.20") -> Client:
    client = Client(HTTP_HOST=handle.host, REMOTE_ADDR=ip, HTTP_USER_AGENT="TestBrowser/1.0")
    response = client.post(
        "/accounts/login/", {"login": email or handle.owner_email, "password": password or handle.password}
    )
    assert response.status_code == 302, response.content[:500]
    assert _signed_in(client)
    return client


def _signed_in(client: Client) -> bool:
    return bool(client.get("/").status_code == 200)


def _api_pair(api, handle, email=None, password=None, **extra) -> dict:
    response = api.post(
        "/api/v1/auth/login",
        {"email": email or handle.owner_email, "password": password or handle.password, **extra},
        host=handle.host,
    )
    assert response.status_code == 200, response.body
    return dict(response.body)


def _token_works(api, handle, pair) -> bool:
    return bool(api.get("/api/v1/projects", host=handle.host, token=pair["access_token"]).status_code == 200)


def _refresh_works(api, handle, pair) -> bool:
    response = api.post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, host=handle.host)
    return bool(response.status_code == 200)


def _audit_types(handle) -> list[str]:
    with schema_context(handle.tenant.schema_name):
        return list(AuditEvent.objects.order_by("created_at").values_list("type", flat=True))


def _revocation(handle) -> AuditEvent:
    with schema_context(handle.tenant.schema_name):
        return AuditEvent.objects.get(type=AuditEvent.Type.CREDENTIALS_REVOKED)


# --- the web pages (allauth) --------------------------------------------------------------------
def test_a_password_change_on_the_page_revokes_tokens_and_other_sessions(api, tenant_a):
    pair = _api_pair(api, tenant_a)
    other_pair = _api_pair(api, tenant_a)
    here = _browser(tenant_a)
    elsewhere = _browser(tenant_a, ip="198.51.100.21")
    response = here.post(
        "/accounts/password/change/",
        {"oldpassword": tenant_a.password, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content[:2000]
    assert not _token_works(api, tenant_a, pair) and not _token_works(api, tenant_a, other_pair)
    assert not _refresh_works(api, tenant_a, pair)
    assert not _signed_in(elsewhere)
    assert _signed_in(here)  # the session that made the change survives it
    types = _audit_types(tenant_a)
    assert AuditEvent.Type.PASSWORD_CHANGED in types and AuditEvent.Type.CREDENTIALS_REVOKED in types
    revoked = _revocation(tenant_a)
    assert revoked.data["reason"] == "password_changed" and revoked.data["tokens_revoked"] == 4
    # The new password signs in; its tokens are not touched by the earlier revocation.
    assert _token_works(api, tenant_a, _api_pair(api, tenant_a, password=NEW_PASSWORD))


def test_a_password_reset_revokes_tokens_and_every_session(api, tenant_a):
    pair = _api_pair(api, tenant_a)
    signed_in = _browser(tenant_a)
    anonymous = Client(HTTP_HOST=tenant_a.host)
    mail.outbox.clear()
    assert anonymous.post("/accounts/password/reset/", {"email": tenant_a.owner_email}).status_code == 302
    link = RESET_LINK.search(str(mail.outbox[-1].body))
    assert link, mail.outbox[-1].body
    form_page = anonymous.get(link.group(1))
    assert form_page.status_code == 302
    done = anonymous.post(form_page["Location"], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302, done.content[:2000]
    assert not _token_works(api, tenant_a, pair) and not _refresh_works(api, tenant_a, pair)
    assert not _signed_in(signed_in)
    types = _audit_types(tenant_a)
    assert AuditEvent.Type.PASSWORD_RESET in types
    assert _revocation(tenant_a).data["reason"] == "password_reset"
    assert _token_works(api, tenant_a, _api_pair(api, tenant_a, password=NEW_PASSWORD))


def test_removing_the_authenticator_on_the_page_revokes_tokens_and_other_sessions(api, tenant_a):
    pair = _api_pair(api, tenant_a)
    secret = enrol_totp(api, tenant_a.host, pair["access_token"])["secret"]
    browsers = []
    wait_away_from_step_boundary(8)
    for steps, ip in ((0, "203.0.113.22"), (1, "198.51.100.23")):
        browser = Client(HTTP_HOST=tenant_a.host, REMOTE_ADDR=ip)
        first = browser.post(
            "/accounts/login/", {"login": tenant_a.owner_email, "password": tenant_a.password}
        )
        assert first["Location"] == "/accounts/2fa/authenticate/"
        done = browser.post("/accounts/2fa/authenticate/", {"code": totp_code(secret, steps)})
        assert done.status_code == 302 and _signed_in(browser)
        browsers.append(browser)
    here, elsewhere = browsers
    # allauth asks for the password again, then carries out the removal it put on hold.
    reauth = here.post("/accounts/2fa/totp/deactivate/")
    assert reauth["Location"].startswith("/accounts/reauthenticate/")
    removed = here.post(reauth["Location"], {"password": tenant_a.password}, follow=True)
    assert removed.status_code == 200, removed.content[:2000]
    with schema_context(tenant_a.tenant.schema_name):
        assert not Authenticator.objects.exists()
    with schema_context(tenant_a.tenant.schema_name):
        assert not AuthToken.objects.filter(revoked_at__isnull=True).exists()
    assert not _token_works(api, tenant_a, pair)
    assert not _signed_in(elsewhere)
    assert _signed_in(here)
    assert _revocation(tenant_a).data["reason"] == "mfa_removed"


# --- the API ------------------------------------------------------------------------------------
def _change(api, handle, token, current, new, **kw):
    return api.post(
        "/api/v1/auth/password",
        {"current_password": current, "new_password": new},
        host=handle.host,
        token=token,
        **kw,
    )


def test_the_api_changes_the_password_and_revokes_every_token_and_session(api, tenant_a):
    pair = _api_pair(api, tenant_a)
    other_pair = _api_pair(api, tenant_a)
    browser = _browser(tenant_a)
    response = _change(api, tenant_a, pair["access_token"], tenant_a.password, NEW_PASSWORD)
    assert response.status_code == 204
    for used in (pair, other_pair):  # the caller's own tokens too: it signs in again
        assert not _token_works(api, tenant_a, used) and not _refresh_works(api, tenant_a, used)
    assert not _signed_in(browser)
    old = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
    )
    assert old.status_code == 401
    assert _token_works(api, tenant_a, _api_pair(api, tenant_a, password=NEW_PASSWORD))
    types = _audit_types(tenant_a)
    assert AuditEvent.Type.PASSWORD_CHANGED in types
    assert _revocation(tenant_a).data["reason"] == "password_changed"


def test_the_api_refuses_a_wrong_current_password_and_counts_it(api, tenant_a, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURE_DELAY = 0
    pair = _api_pair(api, tenant_a)
    for _ in range(2):
        wrong = _change(api, tenant_a, pair["access_token"], "not-my-password", NEW_PASSWORD)
        assert wrong.status_code == 400 and wrong.body["error"] == "invalid_current_password"
    locked = _change(api, tenant_a, pair["access_token"], "not-my-password", NEW_PASSWORD)
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    # Locked: even the right current password is refused now, and nothing was revoked.
    assert _change(api, tenant_a, pair["access_token"], tenant_a.password, NEW_PASSWORD).status_code == 429
    assert _token_works(api, tenant_a, pair)


def test_the_api_validates_the_new_password(api, tenant_a):
    pair = _api_pair(api, tenant_a)
    weak = _change(api, tenant_a, pair["access_token"], tenant_a.password, "password")
    assert weak.status_code == 400 and weak.body["error"] == "validation_error"
    assert "new_password" in weak.body["fields"]
    missing = api.post(
        "/api/v1/auth/password",
        {"new_password": NEW_PASSWORD},
        host=tenant_a.host,
        token=pair["access_token"],
    )
    assert missing.status_code == 400 and "current_password" in missing.body["fields"]
    assert _token_works(api, tenant_a, pair)
    assert api.post("/api/v1/auth/password", {}, host=tenant_a.host).status_code == 401


def test_removing_two_factor_through_the_api_revokes_every_token_and_session(api, tenant_a):
    pair = _api_pair(api, tenant_a)
    other_pair = _api_pair(api, tenant_a)
    browser = _browser(tenant_a)
    secret = enrol_totp(api, tenant_a.host, pair["access_token"])["secret"]
    removed = api.call(
        "DELETE",
        "/api/v1/auth/mfa",
        {"code": totp_code(secret)},
        host=tenant_a.host,
        token=pair["access_token"],
    )
    assert removed.status_code == 204, removed.body
    for used in (pair, other_pair):
        assert not _token_works(api, tenant_a, used) and not _refresh_works(api, tenant_a, used)
    assert not _signed_in(browser)
    assert _revocation(tenant_a).data["reason"] == "mfa_removed"


def test_deactivation_revokes_through_the_same_service(api, tenant_a):
    with schema_context(tenant_a.tenant.schema_name):
        user_create(email="member@example.com", password=tenant_a.password, role=Role.MEMBER)
    pair = _api_pair(api, tenant_a, email="member@example.com")
    browser = _browser(tenant_a, email="member@example.com")
    owner = tenant_a.login(api)
    with schema_context(tenant_a.tenant.schema_name):
        from accounts.models import User

        member_id = User.objects.get(email="member@example.com").pk
    assert api.delete(f"/api/v1/users/{member_id}", host=tenant_a.host, token=owner).status_code == 204
    assert not _token_works(api, tenant_a, pair) and not _refresh_works(api, tenant_a, pair)
    assert not _signed_in(browser)
    revoked = _revocation(tenant_a)
    assert revoked.data["reason"] == "member_deactivated" and revoked.target_user_id == member_id
