"""Refresh-token rotation, reuse detection and logout (``/api/v1/auth/refresh|logout``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import AuditEvent, AuthToken
from accounts.services import token_hash
from accounts.tests.mfa_helpers import totp_now

pytestmark = pytest.mark.django_db


def _login(api, handle):
    response = api.post(
        "/api/v1/auth/login", {"email": handle.owner_email, "password": handle.password}, host=handle.host
    )
    assert response.status_code == 200
    return response.body


def _refresh(api, handle, refresh_token):
    return api.post("/api/v1/auth/refresh", {"refresh_token": refresh_token}, host=handle.host)


def _projects(api, handle, access_token):
    return api.get("/api/v1/projects", host=handle.host, token=access_token).status_code


def _token(handle, secret) -> AuthToken:
    with schema_context(handle.tenant.schema_name):
        return AuthToken.objects.get(token_hash=token_hash(secret))


def test_refresh_rotates_into_a_new_pair_of_the_same_family(api, tenant_a, settings):
    first = _login(api, tenant_a)
    response = _refresh(api, tenant_a, first["refresh_token"])
    assert response.status_code == 200
    second = response.body
    assert second["token_type"] == "bearer"
    assert second["expires_in"] == settings.ACCESS_TOKEN_LIFETIME
    assert {second["access_token"], second["refresh_token"]}.isdisjoint(first.values())
    assert _projects(api, tenant_a, second["access_token"]) == 200

    old, new = _token(tenant_a, first["refresh_token"]), _token(tenant_a, second["refresh_token"])
    assert old.rotated_at is not None and old.revoked_at is None
    assert new.family == old.family and new.rotated_at is None
    # Stored hashed only, with the configured lifetimes.
    with schema_context(tenant_a.tenant.schema_name):
        stored = set(AuthToken.objects.values_list("token_hash", flat=True))
    assert second["refresh_token"] not in stored and second["access_token"] not in stored
    new_access = _token(tenant_a, second["access_token"])
    assert (
        abs((new_access.expires_at - new_access.created_at).total_seconds() - settings.ACCESS_TOKEN_LIFETIME)
        < 5
    )
    assert abs((new.expires_at - new.created_at).total_seconds() - settings.REFRESH_TOKEN_LIFETIME) < 5
    # A chain: the new refresh token rotates in turn.
    assert _refresh(api, tenant_a, second["refresh_token"]).status_code == 200


def test_lifetimes_come_from_settings(api, tenant_a, settings):
    settings.ACCESS_TOKEN_LIFETIME = 120
    settings.REFRESH_TOKEN_LIFETIME = 600
    pair = _login(api, tenant_a)
    assert pair["expires_in"] == 120
    refresh = _token(tenant_a, pair["refresh_token"])
    assert abs((refresh.expires_at - refresh.created_at).total_seconds() - 600) < 5
    again = _refresh(api, tenant_a, pair["refresh_token"]).body
    assert again["expires_in"] == 120


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(api, tenant_a):
    """The attack: a stolen refresh token is used after the legitimate client rotated it (or the
    other way round). Whoever comes second reveals the theft; the whole chain dies."""
    first = _login(api, tenant_a)
    other_session = _login(api, tenant_a)
    second = _refresh(api, tenant_a, first["refresh_token"]).body
    third = _refresh(api, tenant_a, second["refresh_token"]).body
    assert _projects(api, tenant_a, third["access_token"]) == 200

    replay = _refresh(api, tenant_a, first["refresh_token"])
    assert replay.status_code == 401
    assert replay.body["error"] == "refresh_token_reused"

    # Every access and refresh token of the family is revoked, the newest included...
    for pair in (first, second, third):
        assert _projects(api, tenant_a, pair["access_token"]) == 401
    assert _refresh(api, tenant_a, third["refresh_token"]).status_code == 401
    family = _token(tenant_a, first["refresh_token"]).family
    with schema_context(tenant_a.tenant.schema_name):
        assert not AuthToken.objects.filter(family=family, revoked_at__isnull=True).exists()
        assert AuthToken.objects.filter(family=family).count() == 6
        event = AuditEvent.objects.get(type=AuditEvent.Type.TOKEN_REUSE_DETECTED)
    assert event.actor_email == tenant_a.owner_email and event.data["family"] == str(family)
    # ...and the user's other session is untouched.
    assert _projects(api, tenant_a, other_session["access_token"]) == 200
    # Replaying again keeps answering "reused".
    assert _refresh(api, tenant_a, second["refresh_token"]).body["error"] == "refresh_token_reused"


def test_expired_revoked_unknown_and_access_tokens_cannot_refresh(api, tenant_a):
    pair = _login(api, tenant_a)
    assert _refresh(api, tenant_a, pair["access_token"]).status_code == 401  # not a refresh token
    assert _refresh(api, tenant_a, "lvr_" + "0" * 43).body["error"] == "invalid_refresh_token"

    with schema_context(tenant_a.tenant.schema_name):
        AuthToken.objects.filter(token_hash=token_hash(pair["refresh_token"])).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    response = _refresh(api, tenant_a, pair["refresh_token"])
    assert response.status_code == 401 and response.body["error"] == "invalid_refresh_token"

    pair = _login(api, tenant_a)
    with schema_context(tenant_a.tenant.schema_name):
        AuthToken.objects.filter(token_hash=token_hash(pair["refresh_token"])).update(
            revoked_at=timezone.now()
        )
    assert _refresh(api, tenant_a, pair["refresh_token"]).status_code == 401


@pytest.mark.parametrize(
    "body", [{}, {"refresh_token": 42}, {"refresh_token": "x" * 500}, {"refresh_token": "a", "extra": 1}, []]
)
def test_bad_refresh_input_is_400(api, tenant_a, body):
    response = api.post("/api/v1/auth/refresh", body, host=tenant_a.host)
    assert response.status_code == 400
    assert response.body["error"] == "validation_error"


def test_refresh_of_a_deactivated_user_is_refused(api, tenant_a):
    from accounts.models import User

    pair = _login(api, tenant_a)
    with schema_context(tenant_a.tenant.schema_name):
        User.objects.filter(email=tenant_a.owner_email).update(is_active=False)
    assert _refresh(api, tenant_a, pair["refresh_token"]).status_code == 401


def test_logout_revokes_the_current_family_only(api, tenant_a):
    kept = _login(api, tenant_a)
    pair = _login(api, tenant_a)
    response = api.post("/api/v1/auth/logout", host=tenant_a.host, token=pair["access_token"])
    assert response.status_code == 204
    assert _projects(api, tenant_a, pair["access_token"]) == 401
    assert _refresh(api, tenant_a, pair["refresh_token"]).status_code == 401
    assert _projects(api, tenant_a, kept["access_token"]) == 200
    with schema_context(tenant_a.tenant.schema_name):
        assert AuditEvent.objects.filter(type=AuditEvent.Type.LOGOUT).count() == 1
    # Logging out needs a valid token.
    assert api.post("/api/v1/auth/logout", host=tenant_a.host, token=pair["access_token"]).status_code == 401
    assert api.post("/api/v1/auth/logout", host=tenant_a.host).status_code == 401


def test_staff_refresh_on_the_public_host(api, tenant_a):
    from accounts.models import User

    staff = User.objects.create_superuser("staff@leanvibe.test", "staff-password-123")
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    pair = api.post(
        "/api/v1/auth/login",
        {"email": "staff@leanvibe.test", "password": "staff-password-123", "mfa_code": totp_now(device)},
    ).body
    response = api.post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert response.status_code == 200
    # A public-schema refresh token is unknown on a tenant.
    assert _refresh(api, tenant_a, response.body["refresh_token"]).status_code == 401


def test_token_authentication_records_last_activity_without_a_query(api, tenant_a, django_assert_num_queries):
    from rest_framework.test import APIRequestFactory

    from accounts.authentication import BearerTokenAuthentication
    from accounts.services.tokens import token_activities

    pair = _login(api, tenant_a)
    token = _token(tenant_a, pair["access_token"])
    request = APIRequestFactory().get("/api/v1/projects", HTTP_AUTHORIZATION=f"Bearer {pair['access_token']}")
    with schema_context(tenant_a.tenant.schema_name):
        assert token_activities([token.family]) == {}
        assert AuthToken.objects.count() == 2  # sets the connection's search_path first
        with django_assert_num_queries(1):
            assert BearerTokenAuthentication().authenticate(request) is not None
        seen = token_activities([token.family])[str(token.family)]
    assert timezone.now() - seen < timedelta(seconds=5)
