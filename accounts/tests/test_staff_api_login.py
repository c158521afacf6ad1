"""Platform staff get an API token (public host) only with the code of their django-otp TOTP
device (the admin console's second factor), and their tokens are short-lived."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, AuthToken, User
from accounts.services import token_hash
from accounts.tests.mfa_helpers import totp_now

pytestmark = pytest.mark.django_db

EMAIL = "staff@leanvibe.test"
PASSWORD = "staff-password-123"


@pytest.fixture
def staff() -> User:
    return User.objects.create_superuser(EMAIL, PASSWORD)


@pytest.fixture
def device(staff: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=staff, name="console", confirmed=True)


def _login(api, **extra):
    return api.post("/api/v1/auth/login", {"email": EMAIL, "password": PASSWORD, **extra})


def test_staff_without_a_code_are_asked_for_one(api, device):
    response = _login(api)
    assert response.status_code == 422
    assert response.body["error"] == "mfa_required" and response.body["methods"] == ["totp"]
    assert "access_token" not in response.body
    assert not AuthToken.objects.exists()


def test_staff_with_the_right_code_get_a_fifteen_minute_token(api, device, settings):
    assert settings.STAFF_ACCESS_TOKEN_LIFETIME == 900
    response = _login(api, mfa_code=totp_now(device))
    assert response.status_code == 200, response.body
    assert response.body["expires_in"] == 900
    access = AuthToken.objects.get(token_hash=token_hash(response.body["access_token"]))
    assert timedelta(seconds=890) < access.expires_at - timezone.now() <= timedelta(seconds=900)
    assert api.get("/api/v1/tenants", token=response.body["access_token"]).status_code == 200
    event = AuditEvent.objects.get(type=AuditEvent.Type.LOGIN_SUCCEEDED)
    assert event.data == {"method": "password+totp"}


def test_a_staff_code_cannot_be_used_twice(api, device):
    code = totp_now(device)
    assert _login(api, mfa_code=code).status_code == 200
    replay = _login(api, mfa_code=code)
    assert replay.status_code == 401 and replay.body["error"] == "invalid_mfa_code"


def test_a_wrong_staff_code_is_401_and_counted(api, device, settings):
    settings.MFA_MAX_FAILURES = 2
    right = totp_now(device)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(2):
        response = _login(api, mfa_code=wrong)
        assert response.status_code == 401 and response.body["error"] == "invalid_mfa_code"
    # The MFA failure limit: now even the right code is refused for a while.
    limited = _login(api, mfa_code=right)
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert AuditEvent.objects.filter(type=AuditEvent.Type.MFA_FAILED).count() == 2
    assert not AuthToken.objects.exists()


def test_staff_without_a_device_get_no_token(api, staff):
    response = _login(api, mfa_code="123456")
    assert response.status_code == 403
    assert response.body["error"] == "mfa_enrollment_required"
    assert _login(api).body["error"] == "mfa_enrollment_required"
    # An unconfirmed device does not count.
    TOTPDevice.objects.create(user=staff, name="pending", confirmed=False)
    assert _login(api).status_code == 403
    assert not AuthToken.objects.exists()


def test_a_wrong_password_is_still_401_without_revealing_the_second_factor(api, device):
    response = api.post("/api/v1/auth/login", {"email": EMAIL, "password": "wrong-password-1"})
    assert response.status_code == 401 and response.body["error"] == "invalid_credentials"


def test_staff_refresh_tokens_end_a_working_day_after_sign_in(api, device, settings):
    pair = _login(api, mfa_code=totp_now(device)).body
    first = AuthToken.objects.get(token_hash=token_hash(pair["refresh_token"]))
    lifetime = timedelta(seconds=settings.STAFF_REFRESH_TOKEN_LIFETIME)
    assert lifetime - timedelta(seconds=10) < first.expires_at - timezone.now() <= lifetime
    refreshed = api.post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.body["expires_in"] == 900
    second = AuthToken.objects.get(token_hash=token_hash(refreshed.body["refresh_token"]))
    # Rotation does not extend a staff session: the new refresh token ends when the first did.
    assert second.expires_at == first.expires_at
