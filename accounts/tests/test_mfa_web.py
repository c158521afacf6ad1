"""Two-factor on the pages: allauth's enrolment and challenge, in our layout, with our storage
(encrypted), our audit trail and the same replay rules as the API."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator
from django_tenants.utils import schema_context

from accounts.mfa_adapter import ENCRYPTED_PREFIX
from accounts.models import AuditEvent
from accounts.tests.mfa_helpers import login, totp_code, wait_away_from_step_boundary

pytestmark = pytest.mark.django_db


def _sign_in(client, handle):
    response = client.post(
        "/accounts/login/", {"login": handle.owner_email, "password": handle.password}, HTTP_HOST=handle.host
    )
    assert response.status_code == 302
    return response["Location"]


def _enrol_on_the_page(client, handle, capture=None) -> tuple[str, list[str]]:
    host = handle.host
    _sign_in(client, handle)
    reauth = client.get("/accounts/2fa/totp/activate/", HTTP_HOST=host)
    client.post(reauth["Location"], {"password": handle.password}, HTTP_HOST=host)
    page = client.get("/accounts/2fa/totp/activate/", HTTP_HOST=host)
    assert page.status_code == 200
    html = page.content.decode()
    assert "leanvibe.css" in html and "data:image/svg+xml;base64," in html  # our layout, the QR code
    secret = page.context["form"].secret
    assert secret in html
    wait_away_from_step_boundary()
    if capture is None:
        done = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret, -1)}, HTTP_HOST=host)
    else:
        # allauth sends its signal (to our audit receiver) on commit, which in production comes
        # within the request; the test's transaction defers it, so run it in the tenant's schema.
        with capture() as callbacks:
            done = client.post(
                "/accounts/2fa/totp/activate/", {"code": totp_code(secret, -1)}, HTTP_HOST=host
            )
        with schema_context(handle.tenant.schema_name):
            for callback in callbacks:
                callback()
    assert done.status_code == 302, done.content.decode()[:2000]
    codes_page = client.get("/accounts/2fa/recovery-codes/", HTTP_HOST=host)
    assert codes_page.status_code == 200
    codes = list(codes_page.context["unused_codes"])
    assert len(codes) == 10
    client.post("/accounts/logout/", HTTP_HOST=host)
    return secret, codes


def test_enrol_then_sign_in_with_a_code_on_the_pages(client, tenant_a, django_capture_on_commit_callbacks):
    secret, _ = _enrol_on_the_page(client, tenant_a, django_capture_on_commit_callbacks)
    host = tenant_a.host
    with schema_context(tenant_a.tenant.schema_name):
        stored = Authenticator.objects.get(type="totp").data["secret"]
        enrolled = AuditEvent.objects.filter(type=AuditEvent.Type.MFA_ENROLLED).get()
    assert stored.startswith(ENCRYPTED_PREFIX) and secret not in stored
    assert enrolled.data == {"method": "totp", "via": "web"}

    assert _sign_in(client, tenant_a) == "/accounts/2fa/authenticate/"
    assert client.get("/", HTTP_HOST=host).status_code == 302  # not signed in yet
    challenge = client.get("/accounts/2fa/authenticate/", HTTP_HOST=host)
    assert challenge.status_code == 200 and "leanvibe.css" in challenge.content.decode()
    wrong = client.post("/accounts/2fa/authenticate/", {"code": "000000"}, HTTP_HOST=host)
    assert wrong.status_code == 200 and "Incorrect code" in wrong.content.decode()
    with schema_context(tenant_a.tenant.schema_name):
        assert AuditEvent.objects.filter(type=AuditEvent.Type.MFA_FAILED).count() == 1

    wait_away_from_step_boundary()
    code = totp_code(secret)
    ok = client.post("/accounts/2fa/authenticate/", {"code": code}, HTTP_HOST=host)
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert client.get("/", HTTP_HOST=host).status_code == 200

    # The code used on the page cannot be used again, on the page or through the API.
    client.post("/accounts/logout/", HTTP_HOST=host)
    _sign_in(client, tenant_a)
    replay = client.post("/accounts/2fa/authenticate/", {"code": code}, HTTP_HOST=host)
    assert replay.status_code == 200 and "Incorrect code" in replay.content.decode()


def test_a_code_used_through_the_api_is_refused_on_the_page(client, api, tenant_a):
    secret, _ = _enrol_on_the_page(client, tenant_a)
    wait_away_from_step_boundary()
    code = totp_code(secret, +1)
    assert login(api, tenant_a, mfa_code=code).status_code == 200
    _sign_in(client, tenant_a)
    replay = client.post("/accounts/2fa/authenticate/", {"code": code}, HTTP_HOST=tenant_a.host)
    assert replay.status_code == 200 and "Incorrect code" in replay.content.decode()


def test_a_recovery_code_works_once_on_the_page(client, tenant_a):
    _, codes = _enrol_on_the_page(client, tenant_a)
    host = tenant_a.host
    _sign_in(client, tenant_a)
    ok = client.post("/accounts/2fa/authenticate/", {"code": codes[0]}, HTTP_HOST=host)
    assert ok.status_code == 302
    with schema_context(tenant_a.tenant.schema_name):
        assert AuditEvent.objects.filter(type=AuditEvent.Type.RECOVERY_CODE_USED).count() == 1
    client.post("/accounts/logout/", HTTP_HOST=host)
    _sign_in(client, tenant_a)
    again = client.post("/accounts/2fa/authenticate/", {"code": codes[0]}, HTTP_HOST=host)
    assert again.status_code == 200 and "Incorrect code" in again.content.decode()
