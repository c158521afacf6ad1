"""Behind a proxy (``NUM_PROXIES``), every record and every limit sees the client's address.

Django's test client sends the headers a proxy on this machine would: ``REMOTE_ADDR`` 127.0.0.1
and ``X-Forwarded-For`` with the address it saw. Nothing is sent to those addresses.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import AuditEvent, AuthToken

pytestmark = pytest.mark.django_db

PROXY = "127.0.0.1"
CLIENT = "203.0.113.7"
OTHER_CLIENT = "198.51.100.23"


@pytest.fixture
def behind_one_proxy(settings):
    settings.NUM_PROXIES = 1


@pytest.fixture
def no_proxy(settings):
    settings.NUM_PROXIES = 0


def _api_login(api, handle, *, forwarded, password=None, email=None):
    return api.post(
        "/api/v1/auth/login",
        {"email": email or handle.owner_email, "password": password or handle.password},
        host=handle.host,
        remote_addr=PROXY,
        headers={"X-Forwarded-For": forwarded},
    )


def _web_login(handle, *, forwarded):
    browser = Client(HTTP_HOST=handle.host, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded)
    response = browser.post("/accounts/login/", {"login": handle.owner_email, "password": handle.password})
    assert response.status_code == 302, response.content[:300]
    assert browser.get("/").status_code == 200
    return browser


def test_audit_event_and_token_record_the_forwarded_client(api, tenant_a, behind_one_proxy):
    # The client wrote "10.0.0.1" itself; the proxy appended what it saw.
    assert _api_login(api, tenant_a, forwarded=f"10.0.0.1, {CLIENT}").status_code == 200
    with schema_context(tenant_a.tenant.schema_name):
        event = AuditEvent.objects.get(type=AuditEvent.Type.LOGIN_SUCCEEDED)
        assert event.ip_address == CLIENT
        assert set(AuthToken.objects.values_list("ip_address", flat=True)) == {CLIENT}


def test_web_session_records_the_forwarded_client(tenant_a, behind_one_proxy):
    from allauth.usersessions.models import UserSession

    _web_login(tenant_a, forwarded=CLIENT)
    with schema_context(tenant_a.tenant.schema_name):
        assert list(UserSession.objects.values_list("ip", flat=True)) == [CLIENT]
        event = AuditEvent.objects.get(type=AuditEvent.Type.LOGIN_SUCCEEDED)
        assert event.ip_address == CLIENT


def test_a_short_forwarded_header_is_not_a_500(tenant_a, settings):
    """allauth's own helper raised ImproperlyConfigured when the header had fewer entries than
    trusted proxies; ours takes the leftmost, which a trusted proxy wrote."""
    settings.NUM_PROXIES = 2
    from allauth.usersessions.models import UserSession

    _web_login(tenant_a, forwarded=CLIENT)
    with schema_context(tenant_a.tenant.schema_name):
        assert list(UserSession.objects.values_list("ip", flat=True)) == [CLIENT]


def test_sign_in_lock_counts_the_forwarded_client(api, tenant_a, settings, behind_one_proxy):
    settings.LOGIN_FAILURE_IP_LIMIT = 2
    settings.LOGIN_FAILURE_LIMIT = 100
    settings.LOGIN_FAILURE_DELAY = 0
    for n in range(2):
        failed = _api_login(api, tenant_a, forwarded=CLIENT, email=f"nobody{n}@example.com", password="x")
        assert failed.status_code in (401, 429)
    locked = _api_login(api, tenant_a, forwarded=CLIENT)
    assert locked.status_code == 429 and locked.body["error"] == "rate_limited"
    # Another client behind the same proxy is not locked out with it.
    assert _api_login(api, tenant_a, forwarded=OTHER_CLIENT).status_code == 200


def test_without_proxies_a_forged_header_is_ignored(api, tenant_a, settings, no_proxy):
    settings.LOGIN_FAILURE_IP_LIMIT = 2
    settings.LOGIN_FAILURE_LIMIT = 100
    settings.LOGIN_FAILURE_DELAY = 0
    for n in range(2):
        _api_login(api, tenant_a, forwarded=f"192.0.2.{n}", email=f"nobody{n}@example.com", password="x")
    # A new forged address each time does not escape the lock of the real one.
    assert _api_login(api, tenant_a, forwarded="192.0.2.99").status_code == 429
    with schema_context(tenant_a.tenant.schema_name):
        addresses = set(AuditEvent.objects.values_list("ip_address", flat=True))
    assert addresses == {PROXY}


def test_web_session_ignores_a_forged_header_without_proxies(tenant_a, no_proxy):
    from allauth.usersessions.models import UserSession

    _web_login(tenant_a, forwarded=CLIENT)
    with schema_context(tenant_a.tenant.schema_name):
        assert list(UserSession.objects.values_list("ip", flat=True)) == [PROXY]


def test_sign_up_limit_counts_the_forwarded_client(api, settings, behind_one_proxy):
    settings.SIGNUP_RATE = "1/hour"

    def sign_up(n, forwarded):
        return api.post(
            "/api/v1/tenants",
            {"organization_name": f"Org {n}", "billing_email": f"o{n}@x.test", "admin_email": f"o{n}@x.test"},
            remote_addr=PROXY,
            headers={"X-Forwarded-For": forwarded},
        )

    assert sign_up(1, CLIENT).status_code == 201
    limited = sign_up(2, CLIENT)
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert sign_up(3, OTHER_CLIENT).status_code == 201


def test_sso_initiate_is_rate_limited_per_client(api, tenant_a, settings, behind_one_proxy):
    settings.SSO_INITIATE_RATE = "2/minute"

    def initiate(forwarded):
        return api.post(
            "/api/v1/auth/sso/initiate",
            {"provider": "nobody", "redirect_uri": "https://app.example.com/cb"},
            host=tenant_a.host,
            remote_addr=PROXY,
            headers={"X-Forwarded-For": forwarded},
        )

    for _ in range(2):
        assert initiate(CLIENT).status_code == 404  # no such provider, but counted
    limited = initiate(CLIENT)
    assert limited.status_code == 429
    assert limited.body["error"] == "rate_limited"
    assert 0 < int(limited["Retry-After"]) <= 60
    assert initiate(OTHER_CLIENT).status_code == 404
