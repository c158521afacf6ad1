from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import AuthToken, User
from accounts.services import token_hash
from accounts.tests.mfa_helpers import totp_now


@pytest.mark.django_db
def test_login_returns_bearer_tokens(api, tenant_a, settings):
    response = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
    )
    assert response.status_code == 200
    body = response.body
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.ACCESS_TOKEN_LIFETIME
    assert body["access_token"] != body["refresh_token"]
    # Stored hashed, never in clear.
    with schema_context(tenant_a.tenant.schema_name):
        stored = set(AuthToken.objects.values_list("token_hash", flat=True))
    assert token_hash(body["access_token"]) in stored
    assert body["access_token"] not in stored


@pytest.mark.django_db
def test_login_email_is_case_insensitive(api, tenant_a):
    response = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email.upper(), "password": tenant_a.password},
        host=tenant_a.host,
    )
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "owner1@example.com", "password": "wrong-password"},
        {"email": "nobody@example.com", "password": "correct-horse-battery-staple"},
    ],
)
def test_wrong_credentials_are_401(api, tenant_a, credentials):
    credentials = {
        **credentials,
        "email": credentials["email"].replace("owner1@example.com", tenant_a.owner_email),
    }
    response = api.post("/api/v1/auth/login", credentials, host=tenant_a.host)
    assert response.status_code == 401
    assert response.body["error"] == "invalid_credentials"


@pytest.mark.django_db
def test_credentials_of_tenant_a_do_not_work_on_tenant_b(api, tenant_a, tenant_b):
    response = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_b.host,
    )
    assert response.status_code == 401


@pytest.mark.django_db
def test_token_of_tenant_a_is_401_on_tenant_b_by_host_and_header(api, tenant_a, tenant_b):
    token_a = tenant_a.login(api)
    assert api.get("/api/v1/projects", host=tenant_b.host, token=token_a).status_code == 401
    assert api.get("/api/v1/projects", tenant_header=tenant_b.id, token=token_a).status_code == 401
    assert api.get("/api/v1/projects", host=tenant_a.host, token=token_a).status_code == 200


@pytest.mark.django_db
def test_same_email_in_two_tenants_are_two_users(api, make_tenant):
    a = make_tenant("Alpha", email="same@example.com")
    b = make_tenant("Beta", email="same@example.com")
    token_a = a.login(api)
    token_b = b.login(api)
    assert api.get("/api/v1/projects", host=a.host, token=token_b).status_code == 401
    assert api.get("/api/v1/projects", host=b.host, token=token_a).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer a b", "Bearer " + "x" * 500, "Bearer not-a-token", "Bearer lva_" + "0" * 43],
)
def test_bad_bearer_tokens_are_401(api, tenant_a, header):
    response = api.get("/api/v1/projects", host=tenant_a.host, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.body["error"] == "authentication_failed"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_missing_token_is_401(api, tenant_a):
    response = api.get("/api/v1/projects", host=tenant_a.host)
    assert response.status_code == 401
    assert response.body["error"] == "not_authenticated"


@pytest.mark.django_db
def test_expired_revoked_and_refresh_tokens_are_refused(api, tenant_a):
    login = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
    ).body
    schema = tenant_a.tenant.schema_name
    # A refresh token is not an access token.
    assert api.get("/api/v1/projects", host=tenant_a.host, token=login["refresh_token"]).status_code == 401
    with schema_context(schema):
        AuthToken.objects.filter(token_hash=token_hash(login["access_token"])).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    assert api.get("/api/v1/projects", host=tenant_a.host, token=login["access_token"]).status_code == 401

    fresh = tenant_a.login(api)
    with schema_context(schema):
        AuthToken.objects.filter(token_hash=token_hash(fresh)).update(revoked_at=timezone.now())
    assert api.get("/api/v1/projects", host=tenant_a.host, token=fresh).status_code == 401


@pytest.mark.django_db
def test_deactivated_user_cannot_log_in_or_use_tokens(api, tenant_a):
    token = tenant_a.login(api)
    with schema_context(tenant_a.tenant.schema_name):
        User.objects.filter(email=tenant_a.owner_email).update(is_active=False)
    assert api.get("/api/v1/projects", host=tenant_a.host, token=token).status_code == 401
    response = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
    )
    assert response.status_code == 401


@pytest.mark.django_db
def test_platform_staff_log_in_on_the_public_host(api, tenant_a):
    staff = User.objects.create_superuser("staff@leanvibe.test", "staff-password-123")
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    response = api.post(
        "/api/v1/auth/login",
        {"email": "staff@leanvibe.test", "password": "staff-password-123", "mfa_code": totp_now(device)},
    )
    assert response.status_code == 200
    # A staff token is a public-schema token: unknown to every tenant.
    assert (
        api.get("/api/v1/projects", host=tenant_a.host, token=response.body["access_token"]).status_code
        == 401
    )
    # And a tenant owner cannot log in on the public host.
    owner = api.post("/api/v1/auth/login", {"email": tenant_a.owner_email, "password": tenant_a.password})
    assert owner.status_code == 401


@pytest.mark.django_db
def test_token_authentication_is_one_query(api, tenant_a, django_assert_num_queries):
    from rest_framework.test import APIRequestFactory

    from accounts.authentication import BearerTokenAuthentication

    token = tenant_a.login(api)
    request = APIRequestFactory().get("/api/v1/projects", HTTP_AUTHORIZATION=f"Bearer {token}")
    with schema_context(tenant_a.tenant.schema_name):
        assert User.objects.count() == 1  # sets the connection's search_path first
        with django_assert_num_queries(1):
            result = BearerTokenAuthentication().authenticate(request)
            assert result is not None
            user, _token = result
            assert user.email == tenant_a.owner_email
