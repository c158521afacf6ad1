"""Passwords are hashed with Argon2id at OWASP's parameters; PBKDF2 hashes made before still
verify and are replaced by Argon2id at the holder's next successful sign-in, whichever way they
sign in (API, web form, admin console, SSO account link).

The suite hashes with MD5 for speed (conftest.py); these tests put the project's real hashers
back with the ``settings`` fixture."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import argon2
import pytest
from django.contrib.auth.hashers import identify_hasher, make_password
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

import leanvibe.settings as project_settings
from accounts.models import User
from accounts.testing.oidc_provider import OidcTestProvider
from accounts.tests.mfa_helpers import totp_now
from accounts.tests.test_sso_oidc import acme_oidc_provider, add_oidc, api_sign_in

ROOT = Path(__file__).resolve().parents[2]
HASHERS = [
    "accounts.hashers.Argon2idPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]
STAFF_EMAIL = "staff@leanvibe.test"
STAFF_PASSWORD = "staff-password-123"


@pytest.fixture
def idp() -> Iterator[OidcTestProvider]:
    yield from acme_oidc_provider()


def use_real_hashers(settings: Any) -> None:
    settings.PASSWORD_HASHERS = HASHERS


def assert_owasp_argon2id(encoded: str) -> None:
    """Argon2id, 19 MiB (19456 KiB), two passes, one lane: OWASP's password storage minimum."""
    assert identify_hasher(encoded).algorithm == "argon2"
    algorithm, rest = encoded.split("$", 1)
    params = argon2.extract_parameters("$" + rest)
    assert (algorithm, params.type) == ("argon2", argon2.Type.ID)
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19456, 2, 1)


def stored_hash(schema: str, email: str) -> str:
    with schema_context(schema):
        return str(User.objects.get(email=email).password)


def store_hash(schema: str, email: str, encoded: str) -> None:
    with schema_context(schema):
        assert User.objects.filter(email=email).update(password=encoded) == 1


# --- configuration ----------------------------------------------------------------------------


def test_argon2id_is_the_default_and_pbkdf2_still_verifies():
    assert project_settings.PASSWORD_HASHERS == HASHERS


def test_the_environment_still_chooses_the_hashers():
    code = "from django.conf import settings; print(','.join(settings.PASSWORD_HASHERS))"
    env = {key: value for key, value in os.environ.items() if key != "PASSWORD_HASHERS"}
    env["DJANGO_SETTINGS_MODULE"] = "leanvibe.settings"
    default = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert default.stdout.strip().split(",") == HASHERS, default.stderr
    chosen = "django.contrib.auth.hashers.PBKDF2PasswordHasher"
    override = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "PASSWORD_HASHERS": chosen},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert override.stdout.strip() == chosen, override.stderr


def test_new_hashes_are_argon2id_with_owasp_parameters(settings):
    use_real_hashers(settings)
    encoded = make_password("a-long-enough-password-1")
    assert_owasp_argon2id(encoded)
    assert encoded != make_password("a-long-enough-password-1")  # salted


@pytest.mark.django_db
def test_provisioning_stores_the_owner_with_argon2id(make_tenant, settings):
    use_real_hashers(settings)
    handle = make_tenant()
    assert_owasp_argon2id(stored_hash(handle.tenant.schema_name, handle.owner_email))


# --- the upgrade at sign-in -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("old_algorithm", ["pbkdf2_sha256", "pbkdf2_sha1"])
def test_api_sign_in_upgrades_a_pbkdf2_hash(api, tenant_a, settings, old_algorithm):
    use_real_hashers(settings)
    schema = tenant_a.tenant.schema_name
    store_hash(schema, tenant_a.owner_email, make_password(tenant_a.password, hasher=old_algorithm))
    response = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
    )
    assert response.status_code == 200, response.body
    upgraded = stored_hash(schema, tenant_a.owner_email)
    assert_owasp_argon2id(upgraded)
    # The new hash is the same password: the next sign-in works and rewrites nothing.
    again = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
    )
    assert again.status_code == 200
    assert stored_hash(schema, tenant_a.owner_email) == upgraded


@pytest.mark.django_db
def test_a_wrong_password_upgrades_nothing(api, tenant_a, settings):
    use_real_hashers(settings)
    schema = tenant_a.tenant.schema_name
    old = make_password(tenant_a.password, hasher="pbkdf2_sha256")
    store_hash(schema, tenant_a.owner_email, old)
    response = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": "not-the-password"},
        host=tenant_a.host,
    )
    assert response.status_code == 401
    assert stored_hash(schema, tenant_a.owner_email) == old


@pytest.mark.django_db
def test_an_argon2_hash_with_other_parameters_is_brought_to_owasps(api, tenant_a, settings):
    """Django's own Argon2 defaults (100 MiB, 8 lanes) verify, then move to the project's."""
    use_real_hashers(settings)
    schema = tenant_a.tenant.schema_name
    django_default = argon2.PasswordHasher(time_cost=2, memory_cost=102400, parallelism=8)
    store_hash(schema, tenant_a.owner_email, "argon2" + django_default.hash(tenant_a.password))
    response = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
    )
    assert response.status_code == 200, response.body
    assert_owasp_argon2id(stored_hash(schema, tenant_a.owner_email))


@pytest.mark.django_db
def test_web_form_sign_in_upgrades_a_pbkdf2_hash(tenant_a, settings):
    use_real_hashers(settings)
    schema = tenant_a.tenant.schema_name
    store_hash(schema, tenant_a.owner_email, make_password(tenant_a.password, hasher="pbkdf2_sha256"))
    web = Client(HTTP_HOST=tenant_a.host)
    response = web.post("/accounts/login/", {"login": tenant_a.owner_email, "password": tenant_a.password})
    assert response.status_code == 302
    assert web.get("/").wsgi_request.user.is_authenticated
    assert_owasp_argon2id(stored_hash(schema, tenant_a.owner_email))


@pytest.mark.django_db
def test_staff_console_sign_in_upgrades_a_pbkdf2_hash(settings):
    use_real_hashers(settings)
    staff = User.objects.create_superuser(email=STAFF_EMAIL, password=STAFF_PASSWORD)
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    store_hash("public", STAFF_EMAIL, make_password(STAFF_PASSWORD, hasher="pbkdf2_sha256"))
    console = Client()
    response = console.post(
        "/admin/login/?next=/admin/",
        {
            "username": STAFF_EMAIL,
            "password": STAFF_PASSWORD,
            "otp_token": totp_now(device),
            "next": "/admin/",
        },
    )
    assert response.status_code == 302
    assert console.get("/admin/").status_code == 200
    assert_owasp_argon2id(stored_hash("public", STAFF_EMAIL))


@pytest.mark.django_db
def test_staff_api_sign_in_upgrades_a_pbkdf2_hash(api, settings):
    use_real_hashers(settings)
    staff = User.objects.create_superuser(email=STAFF_EMAIL, password=STAFF_PASSWORD)
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    store_hash("public", STAFF_EMAIL, make_password(STAFF_PASSWORD, hasher="pbkdf2_sha1"))
    response = api.post(
        "/api/v1/auth/login", {"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "mfa_code": totp_now(device)}
    )
    assert response.status_code == 200, response.body
    assert_owasp_argon2id(stored_hash("public", STAFF_EMAIL))


@pytest.mark.django_db
def test_sso_account_link_upgrades_a_pbkdf2_hash(api, tenant_a, settings, idp):
    """Linking an SSO identity to an existing account proves its password (sso_link_confirm)."""
    provider = add_oidc(api, tenant_a, idp)  # signs the owner in with the suite's MD5 hash
    use_real_hashers(settings)
    schema = tenant_a.tenant.schema_name
    store_hash(schema, tenant_a.owner_email, make_password(tenant_a.password, hasher="pbkdf2_sha256"))
    idp.user = {"sub": "okta-owner", "email": tenant_a.owner_email, "email_verified": True}
    first, _ = api_sign_in(api, tenant_a, provider["id"])
    assert first.status_code == 409 and first.body["error"] == "sso_link_required"
    linked = api.post(
        "/api/v1/auth/sso/link",
        {"link_token": first.body["link_token"], "password": tenant_a.password},
        host=tenant_a.host,
    )
    assert linked.status_code == 200, linked.body
    assert_owasp_argon2id(stored_hash(schema, tenant_a.owner_email))
