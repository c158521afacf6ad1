"""The platform admin console requires a verified second factor for staff (django-otp TOTP)."""

from __future__ import annotations

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User

pytestmark = pytest.mark.django_db
PASSWORD = "staff-pass-123"


@pytest.fixture
def staff(db):
    return User.objects.create_superuser(email="staff@leanvibe.test", password=PASSWORD)


def _sign_in(client, token: str | None, **extra: str):
    data = {"username": "staff@leanvibe.test", "password": PASSWORD, "next": "/admin/", **extra}
    if token is not None:
        data["otp_token"] = token
    return client.post("/admin/login/?next=/admin/", data)


def test_staff_signed_in_without_a_verified_device_cannot_reach_the_console(client, staff):
    TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    client.force_login(staff)  # password only, no second factor
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/admin/tenants/tenant/").status_code == 302


def test_password_alone_is_refused(client, staff):
    TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    response = _sign_in(client, None)
    assert response.status_code == 200
    assert "otp_token" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_a_wrong_code_is_refused(client, staff):
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    good = totp(device.bin_key)
    response = _sign_in(client, "000000" if good != "000000" else "111111")
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_staff_without_any_device_cannot_sign_in(client, staff):
    response = _sign_in(client, "123456")
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_a_right_code_opens_the_console_and_cannot_be_replayed(client, staff):
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    code = totp(device.bin_key)
    assert _sign_in(client, code).status_code == 302
    assert client.get("/admin/").status_code == 200

    client.post("/admin/logout/")
    assert client.get("/admin/").status_code == 302
    replay = _sign_in(client, code)
    assert replay.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_another_users_device_cannot_be_chosen(client, staff):
    other = User.objects.create_superuser(email="other@leanvibe.test", password="other-pass-123")
    other_device = TOTPDevice.objects.create(user=other, name="other", confirmed=True)
    TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    response = _sign_in(client, totp(other_device.bin_key), otp_device=other_device.persistent_id)
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302
