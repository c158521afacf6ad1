"""The admin console's sign-in (/admin/login/) shares the sign-in lock of every other sign-in,
and a staff password changed in the console revokes that person's API tokens."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, User
from accounts.services import tokens_issue
from accounts.tests.mfa_helpers import totp_now

pytestmark = pytest.mark.django_db

EMAIL = "staff@leanvibe.test"
PASSWORD = "staff-pass-123"
WRONG = "not-the-password"
NEW_PASSWORD = "a-brand-new-staff-passphrase-9"
LIMIT = 3


@pytest.fixture(autouse=True)
def _policy(settings):
    settings.LOGIN_FAILURE_LIMIT = LIMIT
    settings.LOGIN_FAILURE_IP_LIMIT = 6
    settings.LOGIN_FAILURE_WINDOW = 60
    settings.LOGIN_FAILURE_DELAY = 0


@pytest.fixture
def staff() -> User:
    return User.objects.create_superuser(email=EMAIL, password=PASSWORD)


@pytest.fixture
def device(staff: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=staff, name="console", confirmed=True)


def _console(ip: str = "203.0.113.30") -> Client:
    return Client(REMOTE_ADDR=ip)


def _sign_in(client: Client, password: str, code: str | None = None, email: str = EMAIL):
    data = {"username": email, "password": password, "next": "/admin/"}
    if code is not None:
        data["otp_token"] = code
    return client.post("/admin/login/?next=/admin/", data)


def _in_console(client: Client) -> bool:
    return bool(client.get("/admin/").status_code == 200)


def _lock(device: TOTPDevice, ip: str = "203.0.113.30") -> None:
    for _ in range(LIMIT - 1):
        assert _sign_in(_console(ip), WRONG, "123456").status_code == 200
    assert _sign_in(_console(ip), WRONG, "123456").status_code == 429


def test_failures_lock_the_console_sign_in_even_for_the_right_password_and_code(device):
    _lock(device)
    browser = _console("198.51.100.31")  # another address: the account itself is locked
    locked = _sign_in(browser, PASSWORD, totp_now(device))
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    assert not _in_console(browser)
    assert AuditEvent.objects.filter(type=AuditEvent.Type.LOGIN_FAILED, actor_email=EMAIL).count() == LIMIT


def test_while_locked_the_answer_is_the_same_whatever_the_password(device):
    _lock(device)
    right = _sign_in(_console(), PASSWORD, totp_now(device))
    wrong = _sign_in(_console(), WRONG, "000000")
    assert right.status_code == wrong.status_code == 429
    assert right.content == wrong.content
    assert abs(int(right["Retry-After"]) - int(wrong["Retry-After"])) <= 1
    assert set(right.headers) == set(wrong.headers)


def test_the_api_and_the_console_share_one_counter(api, device):
    for _ in range(LIMIT):
        api.post("/api/v1/auth/login", {"email": EMAIL, "password": WRONG}, remote_addr="203.0.113.32")
    assert _sign_in(_console(), PASSWORD, totp_now(device)).status_code == 429


def test_wrong_codes_count_toward_the_lock(device):
    good = totp_now(device)
    bad = "000000" if good != "000000" else "111111"
    for _ in range(LIMIT - 1):
        assert _sign_in(_console(), PASSWORD, bad).status_code == 200
    assert _sign_in(_console(), PASSWORD, bad).status_code == 429
    assert _sign_in(_console(), PASSWORD, good).status_code == 429


def test_one_address_is_locked_across_accounts(device):
    for n in range(5):
        assert _sign_in(_console(), WRONG, email=f"guess{n}@leanvibe.test").status_code == 200
    assert _sign_in(_console(), WRONG, email="guess5@leanvibe.test").status_code == 429
    assert _sign_in(_console(), PASSWORD, totp_now(device)).status_code == 429
    browser = _console("198.51.100.33")
    assert _sign_in(browser, PASSWORD, totp_now(device)).status_code == 302
    assert _in_console(browser)


def test_a_successful_console_sign_in_still_works(device):
    browser = _console()
    assert _sign_in(browser, PASSWORD, totp_now(device)).status_code == 302
    assert _in_console(browser)


# --- a staff password changed in the console ------------------------------------------------
def _token_works(api, access_token: str) -> bool:
    return bool(api.get("/api/v1/tenants", token=access_token).status_code == 200)


def test_changing_ones_password_in_the_console_revokes_ones_api_tokens(api, staff, device):
    issued = tokens_issue(user=staff)
    assert _token_works(api, issued.access_token)
    browser = _console()
    assert _sign_in(browser, PASSWORD, totp_now(device)).status_code == 302
    changed = browser.post(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert changed.status_code == 302, changed.content[:2000]
    assert not _token_works(api, issued.access_token)
    refreshed = api.post("/api/v1/auth/refresh", {"refresh_token": issued.refresh_token})
    assert refreshed.status_code == 401
    assert _in_console(browser)  # the console session that made the change survives
    revoked = AuditEvent.objects.get(type=AuditEvent.Type.CREDENTIALS_REVOKED)
    assert revoked.data["reason"] == "password_changed" and revoked.target_user_id == staff.pk


def test_setting_another_staff_password_revokes_their_api_tokens(api, staff, device):
    other = User.objects.create_superuser(email="other@leanvibe.test", password="other-pass-123")
    issued = tokens_issue(user=other)
    browser = _console()
    assert _sign_in(browser, PASSWORD, totp_now(device)).status_code == 302
    page = browser.get(f"/admin/accounts/user/{other.pk}/password/")
    assert page.status_code == 200
    fields = set(re.findall(r'name="([a-z_0-9]+)"', page.content.decode()))
    data = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    if "usable_password" in fields:
        data["usable_password"] = "true"
    changed = browser.post(f"/admin/accounts/user/{other.pk}/password/", data)
    assert changed.status_code == 302, changed.content[:2000]
    assert not _token_works(api, issued.access_token)
    assert AuditEvent.objects.filter(type=AuditEvent.Type.CREDENTIALS_REVOKED, target_user=other).exists()
