from __future__ import annotations

import uuid
from typing import ClassVar

import pytest
from django_tenants.utils import schema_context

from accounts.models import User
from accounts.services import member_add, tokens_issue
from leanvibe.access import Access
from leanvibe.api.base import PlatformAPIView
from tenants.api.views import TenantDetailApi
from tenants.registry import ChangeActor
from tenants.services import tenant_settings_update

SIGNUP = {
    "organization_name": "Acme Corporation",
    "billing_email": "billing@acme.test",
    "admin_email": "owner@acme.test",
    "admin_password": "correct-horse-battery-staple",
}


@pytest.fixture
def staff_token(db):
    staff = User.objects.create_superuser("staff@leanvibe.test", "staff-password-123")
    return tokens_issue(user=staff).access_token


@pytest.mark.django_db
def test_signup_returns_the_new_tenant(api, settings):
    response = api.post("/api/v1/tenants", SIGNUP)
    assert response.status_code == 201, response.body
    body = response.body
    assert set(body) >= {"id", "organization_name", "subdomain", "domain", "plan", "is_active", "user_count"}
    assert body["organization_name"] == "Acme Corporation"
    assert body["subdomain"] == "acme-corporation"
    assert body["domain"] == f"acme-corporation.{settings.BASE_DOMAIN}"
    assert body["plan"] == "starter"
    assert body["is_active"] is True
    assert body["user_count"] == 1
    assert "admin_password" not in body
    # The owner can sign in on the new tenant's host straight away.
    login = api.post(
        "/api/v1/auth/login",
        {"email": "owner@acme.test", "password": SIGNUP["admin_password"]},
        host=body["domain"],
    )
    assert login.status_code == 200


@pytest.mark.django_db
def test_signup_with_plan(api):
    response = api.post("/api/v1/tenants", {**SIGNUP, "plan": "enterprise"})
    assert response.status_code == 201
    assert response.body["plan"] == "enterprise"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**SIGNUP, "plan": "platinum"}, "plan"),
        ({**SIGNUP, "billing_email": "not-an-email"}, "billing_email"),
        ({**SIGNUP, "admin_email": 42}, "admin_email"),
        ({k: v for k, v in SIGNUP.items() if k != "organization_name"}, "organization_name"),
        ({**SIGNUP, "organization_name": "   !!! "}, "organization_name"),
        ({**SIGNUP, "admin_password": "short"}, "admin_password"),
        ({**SIGNUP, "is_staff": True}, "is_staff"),
    ],
)
def test_signup_rejects_bad_input(api, payload, field):
    response = api.post("/api/v1/tenants", payload)
    assert response.status_code == 400
    assert response.body["error"] == "validation_error"
    assert field in response.body["detail"]


@pytest.mark.django_db
def test_signup_is_rate_limited_per_client_address(api, settings):
    settings.SIGNUP_RATE = "2/hour"
    for n in range(2):
        ok = api.post(
            "/api/v1/tenants", {**SIGNUP, "admin_email": f"o{n}@acme.test"}, remote_addr="198.51.100.7"
        )
        assert ok.status_code == 201
    limited = api.post(
        "/api/v1/tenants", {**SIGNUP, "admin_email": "o3@acme.test"}, remote_addr="198.51.100.7"
    )
    assert limited.status_code == 429
    assert limited.body["error"] == "rate_limited"
    assert int(limited["Retry-After"]) > 0
    other = api.post("/api/v1/tenants", {**SIGNUP, "admin_email": "o4@acme.test"}, remote_addr="198.51.100.8")
    assert other.status_code == 201


@pytest.mark.django_db
def test_platform_staff_are_not_rate_limited(api, settings, staff_token):
    settings.SIGNUP_RATE = "1/hour"
    for n in range(3):
        response = api.post(
            "/api/v1/tenants", {**SIGNUP, "admin_email": f"o{n}@acme.test"}, token=staff_token
        )
        assert response.status_code == 201


@pytest.mark.django_db
def test_staff_get_any_tenant_with_live_user_count(api, tenant_a, staff_token):
    first = api.get(f"/api/v1/tenants/{tenant_a.id}", token=staff_token)
    assert first.status_code == 200
    assert first.body["user_count"] == 1
    with schema_context(tenant_a.tenant.schema_name):
        member_add(tenant=tenant_a.tenant, email="m@acme.test", password="another-good-password-1")
    second = api.get(f"/api/v1/tenants/{tenant_a.id}", token=staff_token)
    assert second.body["user_count"] == 2


@pytest.mark.django_db
def test_member_gets_own_tenant_by_host_and_header(api, tenant_a):
    token = tenant_a.login(api)
    by_host = api.get(f"/api/v1/tenants/{tenant_a.id}", host=tenant_a.host, token=token)
    assert by_host.status_code == 200
    assert by_host.body["id"] == tenant_a.id
    by_header = api.get(f"/api/v1/tenants/{tenant_a.id}", tenant_header=tenant_a.id, token=token)
    assert by_header.status_code == 200


@pytest.mark.django_db
def test_member_cannot_read_another_tenant(api, tenant_a, tenant_b):
    token = tenant_a.login(api)
    response = api.get(f"/api/v1/tenants/{tenant_b.id}", host=tenant_a.host, token=token)
    assert response.status_code == 404
    # Nor with B's host: A's token is unknown in B's schema.
    response = api.get(f"/api/v1/tenants/{tenant_b.id}", host=tenant_b.host, token=token)
    assert response.status_code == 401


@pytest.mark.django_db
def test_tenant_detail_needs_authentication(api, tenant_a):
    assert api.get(f"/api/v1/tenants/{tenant_a.id}").status_code == 401
    assert api.get(f"/api/v1/tenants/{tenant_a.id}", host=tenant_a.host).status_code == 401


@pytest.mark.django_db
def test_tenant_detail_takes_its_member_rule_from_the_base_class(api, tenant_a):
    """``access_map = {"GET": Access.MEMBER}``: a member is held to the tenant's two-factor rule
    like on any tenant endpoint, and a member rule cannot be given to a method of the wrong kind."""
    token = tenant_a.login(api)
    tenant_settings_update(
        tenant=tenant_a.tenant, changes={"require_mfa": True}, actor=ChangeActor(email="t@test")
    )
    refused = api.get(f"/api/v1/tenants/{tenant_a.id}", host=tenant_a.host, token=token)
    assert refused.status_code == 403 and refused.body["error"] == "mfa_enrollment_required"
    assert TenantDetailApi.access_map == {"GET": Access.MEMBER}
    with pytest.raises(TypeError, match="must be public, member or staff"):

        class AdminOnly(PlatformAPIView):
            access_map: ClassVar[dict[str, Access]] = {"GET": Access.ADMIN}


@pytest.mark.django_db
def test_unknown_or_malformed_tenant_id_is_404_for_staff(api, staff_token):
    assert api.get(f"/api/v1/tenants/{uuid.uuid4()}", token=staff_token).status_code == 404
    assert api.get("/api/v1/tenants/not-a-uuid", token=staff_token).status_code == 404


@pytest.mark.django_db
def test_staff_list_filter_suspend_and_resume(api, tenant_a, tenant_b, staff_token):
    listed = api.get("/api/v1/tenants", token=staff_token)
    assert listed.status_code == 200
    assert {t["subdomain"] for t in listed.body["results"]} == {"acme-corporation", "globex-industries"}
    assert all(t["user_count"] == 1 for t in listed.body["results"])

    suspended = api.post(f"/api/v1/tenants/{tenant_a.id}/suspend", token=staff_token)
    assert suspended.status_code == 200
    assert suspended.body["is_active"] is False
    assert suspended.body["status"] == "suspended"
    only_suspended = api.get("/api/v1/tenants?status=suspended", token=staff_token)
    assert [t["id"] for t in only_suspended.body["results"]] == [tenant_a.id]
    blocked = api.get("/api/v1/projects", host=tenant_a.host)
    assert blocked.status_code == 403
    assert blocked.body["error"] == "tenant_suspended"

    resumed = api.post(f"/api/v1/tenants/{tenant_a.id}/resume", token=staff_token)
    assert resumed.body["is_active"] is True
    assert tenant_a.login(api)


@pytest.mark.django_db
def test_non_staff_cannot_list_suspend_or_resume(api, tenant_a):
    token = tenant_a.login(api)
    assert api.get("/api/v1/tenants").status_code == 403
    # A tenant's own owner, on its host or by header, is not platform staff.
    assert api.get("/api/v1/tenants", host=tenant_a.host, token=token).status_code == 403
    for action in ("suspend", "resume"):
        assert api.post(f"/api/v1/tenants/{tenant_a.id}/{action}").status_code == 401
        response = api.post(f"/api/v1/tenants/{tenant_a.id}/{action}", host=tenant_a.host, token=token)
        assert response.status_code == 403
    member = User.objects.create_user("plain@leanvibe.test", "plain-password-123")
    plain_token = tokens_issue(user=member).access_token
    assert api.post(f"/api/v1/tenants/{tenant_a.id}/suspend", token=plain_token).status_code == 403
    assert api.get("/api/v1/tenants", token=plain_token).status_code == 403
