"""In an SSO-only tenant a password sign-in answers the same whatever the password: no oracle.

Only an owner with the right password gets in (the break-glass way back when the identity
provider is broken); every other attempt — a member's right or wrong password, an owner's wrong
one, an unknown email — is the same 403 ``sso_required`` (API) or the same form error (web), and
counts toward the sign-in lock.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import AuditEvent, Role
from accounts.services import user_create
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

MEMBER = "member@example.com"
MEMBER_PASSWORD = "a-long-enough-password-1"
WRONG = "not-the-password-at-all"
LIMIT = 3


@pytest.fixture
def sso_only(tenant_a, settings):
    settings.LOGIN_FAILURE_LIMIT = LIMIT
    settings.LOGIN_FAILURE_IP_LIMIT = 50
    settings.LOGIN_FAILURE_WINDOW = 60
    settings.LOGIN_FAILURE_DELAY = 0
    with schema_context(tenant_a.tenant.schema_name):
        user_create(email=MEMBER, password=MEMBER_PASSWORD, role=Role.MEMBER)
    Tenant.objects.filter(pk=tenant_a.tenant.pk).update(settings={"sso_only": True})
    return tenant_a


def _api_login(api, handle, email, password, ip="203.0.113.9"):
    return api.post(
        "/api/v1/auth/login", {"email": email, "password": password}, host=handle.host, remote_addr=ip
    )


def test_the_api_answers_the_same_for_a_right_and_a_wrong_password(api, sso_only):
    right = _api_login(api, sso_only, MEMBER, MEMBER_PASSWORD)
    wrong = _api_login(api, sso_only, MEMBER, WRONG)
    unknown = _api_login(api, sso_only, "nobody@example.com", WRONG)
    owner_wrong = _api_login(api, sso_only, sso_only.owner_email, WRONG)
    for response in (right, wrong, unknown, owner_wrong):
        assert response.status_code == 403, response.body
        assert response.body == right.body
    assert right.body["error"] == "sso_required"
    # The owner's break-glass: the right password still signs in.
    assert _api_login(api, sso_only, sso_only.owner_email, sso_only.password).status_code == 200


def test_refused_api_attempts_count_toward_the_lock(api, sso_only):
    for password in (WRONG, MEMBER_PASSWORD):
        assert _api_login(api, sso_only, MEMBER, password).status_code == 403
    locked = _api_login(api, sso_only, MEMBER, MEMBER_PASSWORD)
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    with schema_context(sso_only.tenant.schema_name):
        failed = AuditEvent.objects.filter(type=AuditEvent.Type.LOGIN_FAILED, actor_email=MEMBER)
        assert failed.count() == LIMIT


def _web_login(handle, email, password, ip="203.0.113.10"):
    browser = Client(HTTP_HOST=handle.host, REMOTE_ADDR=ip)
    return browser, browser.post("/accounts/login/", {"login": email, "password": password})


def _form_errors(response) -> str:
    form = response.context["form"]
    return repr(sorted((field, [str(e) for e in errors]) for field, errors in form.errors.items()))


def test_the_web_form_shows_the_same_message_for_a_right_and_a_wrong_password(sso_only):
    browser, right = _web_login(sso_only, MEMBER, MEMBER_PASSWORD)
    _, wrong = _web_login(sso_only, MEMBER, WRONG)
    _, owner_wrong = _web_login(sso_only, sso_only.owner_email, WRONG)
    for response in (right, wrong, owner_wrong):
        assert response.status_code == 200
        assert "single sign-on only" in response.content.decode()
        assert _form_errors(response) == _form_errors(right)
    assert browser.get("/").status_code == 302  # not signed in
    _, owner = _web_login(sso_only, sso_only.owner_email, sso_only.password)
    assert owner.status_code == 302


def test_refused_web_attempts_count_toward_the_lock(sso_only):
    for password in (WRONG, MEMBER_PASSWORD):
        assert _web_login(sso_only, MEMBER, password)[1].status_code == 200
    _, locked = _web_login(sso_only, MEMBER, MEMBER_PASSWORD)
    assert locked.status_code == 429
    with schema_context(sso_only.tenant.schema_name):
        failed = AuditEvent.objects.filter(type=AuditEvent.Type.LOGIN_FAILED, actor_email=MEMBER)
        assert failed.count() == LIMIT
