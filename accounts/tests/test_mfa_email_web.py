"""Email one-time codes as the second factor of the web sign-in (accounts.login_stages)."""

from __future__ import annotations

import pytest
from django.core import mail
from django_otp.plugins.otp_email.models import EmailDevice
from django_tenants.utils import schema_context

from accounts.models import AuditEvent, User
from accounts.tests.mfa_helpers import enrol_totp

pytestmark = pytest.mark.django_db


def _email_device(handle) -> None:
    with schema_context(handle.tenant.schema_name):
        user = User.objects.get(email=handle.owner_email)
        EmailDevice.objects.create(user=user, name="email", confirmed=True)


def _current_code(handle) -> str:
    with schema_context(handle.tenant.schema_name):
        return str(EmailDevice.objects.get().token)


def _unthrottle(handle) -> None:
    """django-otp delays the next try after a wrong code by a few seconds; skip the wait."""
    with schema_context(handle.tenant.schema_name):
        EmailDevice.objects.update(throttling_failure_count=0, throttling_failure_timestamp=None)


def _sign_in(client, handle):
    return client.post(
        "/accounts/login/", {"login": handle.owner_email, "password": handle.password}, HTTP_HOST=handle.host
    )


def test_the_password_alone_does_not_sign_in_a_member_with_email_codes(client, tenant_a):
    _email_device(tenant_a)
    host = tenant_a.host
    mail.outbox.clear()
    response = _sign_in(client, tenant_a)
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/email/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [tenant_a.owner_email]
    code = _current_code(tenant_a)
    assert code in mail.outbox[0].body
    # Not signed in before the code.
    assert client.get("/", HTTP_HOST=host).status_code == 302
    page = client.get("/accounts/2fa/email/", HTTP_HOST=host)
    html = page.content.decode()
    assert page.status_code == 200 and "leanvibe.css" in html and tenant_a.owner_email in html

    wrong = client.post(
        "/accounts/2fa/email/", {"code": "000000" if code != "000000" else "111111"}, HTTP_HOST=host
    )
    assert wrong.status_code == 200 and 'id="mfa-email-error"' in wrong.content.decode()
    assert client.get("/", HTTP_HOST=host).status_code == 302
    with schema_context(tenant_a.tenant.schema_name):
        failed = AuditEvent.objects.filter(type=AuditEvent.Type.MFA_FAILED).get()
    assert failed.data == {"method": "login", "via": "web"}

    _unthrottle(tenant_a)
    ok = client.post("/accounts/2fa/email/", {"code": code}, HTTP_HOST=host)
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert client.get("/", HTTP_HOST=host).status_code == 200

    # Single use: the same code does not sign in again.
    client.post("/accounts/logout/", HTTP_HOST=host)
    assert _sign_in(client, tenant_a)["Location"] == "/accounts/2fa/email/"
    replay = client.post("/accounts/2fa/email/", {"code": code}, HTTP_HOST=host)
    assert replay.status_code == 200 and 'id="mfa-email-error"' in replay.content.decode()
    assert client.get("/", HTTP_HOST=host).status_code == 302


def test_at_most_one_email_a_minute(client, tenant_a):
    _email_device(tenant_a)
    host = tenant_a.host
    mail.outbox.clear()
    _sign_in(client, tenant_a)
    resend = client.post("/accounts/2fa/email/", {"action": "send"}, HTTP_HOST=host)
    assert resend.status_code == 200 and "less than a minute ago" in resend.content.decode()
    client.get("/accounts/logout/", HTTP_HOST=host)
    client.cookies.clear()
    _sign_in(client, tenant_a)
    assert len(mail.outbox) == 1


def test_the_challenge_page_needs_a_pending_sign_in(client, tenant_a):
    _email_device(tenant_a)
    page = client.get("/accounts/2fa/email/", HTTP_HOST=tenant_a.host)
    assert page.status_code == 302 and page["Location"] == "/accounts/login/"
    post = client.post("/accounts/2fa/email/", {"code": "123456"}, HTTP_HOST=tenant_a.host)
    assert post.status_code == 302 and post["Location"] == "/accounts/login/"
    assert client.get("/", HTTP_HOST=tenant_a.host).status_code == 302


def test_too_many_wrong_codes_lock_the_challenge(client, tenant_a, settings):
    settings.MFA_MAX_FAILURES = 2
    _email_device(tenant_a)
    host = tenant_a.host
    _sign_in(client, tenant_a)
    code = _current_code(tenant_a)
    for _ in range(2):
        _unthrottle(tenant_a)
        client.post("/accounts/2fa/email/", {"code": "not-it"}, HTTP_HOST=host)
    _unthrottle(tenant_a)
    locked = client.post("/accounts/2fa/email/", {"code": code}, HTTP_HOST=host)
    assert locked.status_code == 429
    assert client.get("/", HTTP_HOST=host).status_code == 302


def test_a_member_with_an_app_can_ask_for_an_email_code_instead(client, api, tenant_a):
    enrol_totp(api, tenant_a.host, tenant_a.login(api))
    host = tenant_a.host
    # Without an email device, allauth's page offers no email option and our page refuses.
    assert _sign_in(client, tenant_a)["Location"] == "/accounts/2fa/authenticate/"
    assert (
        "mfa-email-instead" not in client.get("/accounts/2fa/authenticate/", HTTP_HOST=host).content.decode()
    )
    refused = client.post("/accounts/2fa/email/", {"action": "send"}, HTTP_HOST=host)
    assert refused.status_code == 302 and refused["Location"] == "/accounts/login/"
    client.cookies.clear()

    _email_device(tenant_a)
    mail.outbox.clear()
    assert _sign_in(client, tenant_a)["Location"] == "/accounts/2fa/authenticate/"
    assert len(mail.outbox) == 0  # the app is the default: no email until asked
    page = client.get("/accounts/2fa/authenticate/", HTTP_HOST=host).content.decode()
    assert 'id="mfa-email-instead"' in page
    chosen = client.post("/accounts/2fa/email/", {"action": "send"}, HTTP_HOST=host)
    assert chosen.status_code == 200 and "We emailed you a new code" in chosen.content.decode()
    assert len(mail.outbox) == 1
    ok = client.post("/accounts/2fa/email/", {"code": _current_code(tenant_a)}, HTTP_HOST=host)
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert client.get("/", HTTP_HOST=host).status_code == 200
