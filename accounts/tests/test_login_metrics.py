"""``leanvibe_logins_total{result}`` moves with real sign-ins: the API, the web form (allauth and
Django's auth signals), a wrong second factor, and SSO outcomes as their own results."""

from __future__ import annotations

from typing import Any

from django.test import Client

from accounts.metrics import RESULTS, login_result
from accounts.models import AuditEvent
from accounts.tests.mfa_helpers import enrol_totp, login, totp_code
from accounts.tests.test_sso_oidc import add_oidc, api_sign_in, idp  # noqa: F401 - the fixture
from leanvibe.tests.metrics_helpers import value

LOGINS = "leanvibe_logins_total"


def _counts() -> dict[str, float]:
    return {result: value(LOGINS, result=result) for result in RESULTS}


def _moved(before: dict[str, float]) -> dict[str, float]:
    return {result: count - before[result] for result, count in _counts().items() if count != before[result]}


def test_api_sign_ins_count_by_result(api: Any, tenant_a: Any) -> None:
    before = _counts()
    assert login(api, tenant_a, password="wrong-password").status_code == 401
    assert (
        api.post(
            "/api/v1/auth/login", {"email": "nobody@example.com", "password": "x" * 12}, host=tenant_a.host
        ).status_code
        == 401
    )
    assert _moved(before) == {"failed": 2}
    assert login(api, tenant_a).status_code == 200
    assert _moved(before) == {"failed": 2, "succeeded": 1}


def test_a_wrong_second_factor_counts_as_mfa_failed(api: Any, tenant_a: Any) -> None:
    secret = enrol_totp(api, tenant_a.host, tenant_a.login(api))["secret"]
    before = _counts()
    wrong = login(api, tenant_a, mfa_code="000000" if totp_code(secret) != "000000" else "111111")
    assert wrong.status_code == 401
    assert _moved(before) == {"mfa_failed": 1}


def test_web_form_sign_ins_count_by_result(tenant_a: Any) -> None:
    browser = Client(HTTP_HOST=tenant_a.host)
    before = _counts()
    wrong = browser.post("/accounts/login/", {"login": tenant_a.owner_email, "password": "wrong-password"})
    assert wrong.status_code == 200  # the form again
    assert _moved(before) == {"failed": 1}
    right = browser.post("/accounts/login/", {"login": tenant_a.owner_email, "password": tenant_a.password})
    assert right.status_code == 302
    assert _moved(before) == {"failed": 1, "succeeded": 1}


def test_sso_sign_ins_count_as_sso_results(api: Any, tenant_a: Any, idp: Any) -> None:  # noqa: F811
    """A real OpenID Connect sign-in (the local identity provider), then one refused because the
    address is outside the tenant's allowed domains."""
    provider = add_oidc(api, tenant_a, idp, allowed_domains=["acme.test"])
    before = _counts()
    signed_in, _ = api_sign_in(api, tenant_a, provider["id"])
    assert signed_in.status_code == 200, signed_in.body
    idp.user = {"sub": "mallory", "email": "mallory@evil.test", "email_verified": True}
    refused, _ = api_sign_in(api, tenant_a, provider["id"])
    assert refused.status_code == 403
    assert _moved(before) == {"sso_succeeded": 1, "sso_refused": 1}


def test_sso_outcomes_and_non_sign_ins_get_their_own_labels() -> None:
    assert (
        login_result(AuditEvent.Type.LOGIN_SUCCEEDED, {"method": "sso", "provider": "okta"})
        == "sso_succeeded"
    )
    assert (
        login_result(AuditEvent.Type.LOGIN_FAILED, {"method": "sso_link", "provider": "okta"}) == "sso_failed"
    )
    assert login_result(AuditEvent.Type.SSO_LOGIN_REFUSED, {"provider": "okta"}) == "sso_refused"
    assert login_result(AuditEvent.Type.LOGIN_FAILED, {"method": "password_change"}) is None
    assert login_result(AuditEvent.Type.MFA_FAILED, {"method": "totp_setup"}) is None
    assert login_result(AuditEvent.Type.MFA_ENROLLED, {"method": "totp"}) is None
