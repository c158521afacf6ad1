"""Brute-force protection of sign-in, on the API and the web form (accounts/services/throttle.py).

Real Redis, real time: the lock's expiry is tested with a short window, not a patched clock.
"""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import AuditEvent
from accounts.services import user_create

pytestmark = pytest.mark.django_db

LIMIT = 3
WRONG = "not-the-password"


@pytest.fixture(autouse=True)
def _policy(settings):
    settings.LOGIN_FAILURE_LIMIT = LIMIT
    settings.LOGIN_FAILURE_IP_LIMIT = 6
    settings.LOGIN_FAILURE_WINDOW = 60
    settings.LOGIN_FAILURE_DELAY = 0


def _login(api, handle, email=None, password=None, ip="203.0.113.1"):
    return api.post(
        "/api/v1/auth/login",
        {"email": email or handle.owner_email, "password": password or handle.password},
        host=handle.host,
        remote_addr=ip,
    )


def _fail_until_locked(api, handle, **kw):
    for _ in range(LIMIT - 1):
        response = _login(api, handle, password=WRONG, **kw)
        assert response.status_code == 401
        assert response.body["error"] == "invalid_credentials"
    response = _login(api, handle, password=WRONG, **kw)
    assert response.status_code == 429, response.body
    return response


def test_the_nth_failure_is_refused_with_retry_after(api, tenant_a):
    response = _fail_until_locked(api, tenant_a)
    assert response.body["error"] == "rate_limited"
    assert 55 <= int(response["Retry-After"]) <= 60
    # Locked: even the right password is refused, from any address.
    for ip in ("203.0.113.1", "198.51.100.2"):
        locked = _login(api, tenant_a, ip=ip)
        assert locked.status_code == 429
        assert "access_token" not in locked.body and int(locked["Retry-After"]) > 0
    with schema_context(tenant_a.tenant.schema_name):
        assert AuditEvent.objects.filter(type=AuditEvent.Type.LOGIN_FAILED).count() == LIMIT
        assert not AuditEvent.objects.filter(type=AuditEvent.Type.LOGIN_SUCCEEDED).exists()


def test_the_lock_lifts_after_the_window(api, tenant_a, settings):
    settings.LOGIN_FAILURE_WINDOW = 2
    response = _fail_until_locked(api, tenant_a)
    assert 1 <= int(response["Retry-After"]) <= 2
    assert _login(api, tenant_a).status_code == 429
    time.sleep(2.2)
    assert _login(api, tenant_a).status_code == 200


def test_another_account_is_unaffected(api, tenant_a):
    with schema_context(tenant_a.tenant.schema_name):
        user_create(email="colleague@example.com", password=tenant_a.password)
    _fail_until_locked(api, tenant_a)
    assert _login(api, tenant_a, email="colleague@example.com").status_code == 200


def test_the_same_email_in_another_tenant_is_unaffected(api, make_tenant):
    a = make_tenant("Alpha", email="same@example.com")
    b = make_tenant("Beta", email="same@example.com")
    _fail_until_locked(api, a)
    assert _login(api, b).status_code == 200
    assert _login(api, a).status_code == 429


def test_one_address_trying_many_accounts_is_locked_out_but_others_are_not(api, tenant_a):
    # Six failures from one address, spread over accounts so that no account reaches its limit.
    for n in range(5):
        assert _login(api, tenant_a, email=f"guess{n}@example.com", password=WRONG).status_code == 401
    response = _login(api, tenant_a, email="guess5@example.com", password=WRONG)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    # That address is refused even for a real account with the right password...
    assert _login(api, tenant_a).status_code == 429
    # ...while the same account from another address signs in.
    assert _login(api, tenant_a, ip="198.51.100.2").status_code == 200


def test_a_successful_sign_in_resets_the_account_counter(api, tenant_a):
    for _ in range(LIMIT - 1):
        assert _login(api, tenant_a, password=WRONG).status_code == 401
    assert _login(api, tenant_a).status_code == 200
    for _ in range(LIMIT - 1):
        assert _login(api, tenant_a, password=WRONG).status_code == 401
    assert _login(api, tenant_a).status_code == 200


def test_failures_slow_down_further_attempts(api, tenant_a, settings):
    settings.LOGIN_FAILURE_DELAY = 0.3
    started = time.monotonic()
    assert _login(api, tenant_a, password=WRONG).status_code == 401
    first = time.monotonic() - started
    started = time.monotonic()
    assert _login(api, tenant_a).status_code == 200  # one failure before it: waits, then succeeds
    assert time.monotonic() - started >= 0.3 > first - 0.05


# --- the web sign-in form --------------------------------------------------------------------
def _web(handle, ip="203.0.113.1") -> Client:
    return Client(HTTP_HOST=handle.host, REMOTE_ADDR=ip)


def _web_login(client, email, password):
    return client.post("/accounts/login/", {"login": email, "password": password})


def test_the_web_form_is_limited_too(tenant_a):
    browser = _web(tenant_a)
    for _ in range(LIMIT - 1):
        response = _web_login(browser, tenant_a.owner_email, WRONG)
        assert response.status_code == 200  # the form again, with its error
        assert b"incorrect" in response.content or b"not correct" in response.content
    response = _web_login(browser, tenant_a.owner_email, WRONG)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert b"Too many attempts" in response.content and b"leanvibe.css" in response.content
    # The right password is refused while locked, and the browser stays signed out.
    response = _web_login(_web(tenant_a, ip="198.51.100.3"), tenant_a.owner_email, tenant_a.password)
    assert response.status_code == 429
    assert browser.get("/").status_code == 302
    with schema_context(tenant_a.tenant.schema_name):
        failed = AuditEvent.objects.filter(type=AuditEvent.Type.LOGIN_FAILED)
        assert failed.count() == LIMIT and {e.data["method"] for e in failed} == {"web"}


def test_web_and_api_failures_share_one_counter(api, tenant_a):
    browser = _web(tenant_a)
    for _ in range(LIMIT - 1):
        assert _web_login(browser, tenant_a.owner_email, WRONG).status_code == 200
    # The attacker switches to the API: the budget is already spent there.
    assert _login(api, tenant_a, password=WRONG).status_code == 429
    assert _login(api, tenant_a).status_code == 429


def test_the_web_lock_lifts_and_a_web_sign_in_is_audited(tenant_a, settings):
    settings.LOGIN_FAILURE_WINDOW = 2
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "6/2s/ip,3/2s/key"}
    browser = _web(tenant_a)
    for _ in range(LIMIT):
        _web_login(browser, tenant_a.owner_email, WRONG)
    assert _web_login(browser, tenant_a.owner_email, tenant_a.password).status_code == 429
    time.sleep(2.2)
    response = _web_login(browser, tenant_a.owner_email, tenant_a.password)
    assert response.status_code == 302
    assert browser.get("/").status_code == 200
    with schema_context(tenant_a.tenant.schema_name):
        event = AuditEvent.objects.get(type=AuditEvent.Type.LOGIN_SUCCEEDED)
    assert event.actor_email == tenant_a.owner_email and event.data == {"method": "web"}
