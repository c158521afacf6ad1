from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from accounts.services import member_add
from leanvibe.errors import QuotaExceeded
from tenants.plans import CATALOGUE, GB, spec_for


def test_plan_catalogue():
    starter, pro, ent = CATALOGUE["starter"], CATALOGUE["professional"], CATALOGUE["enterprise"]
    assert (starter.projects, starter.users, starter.api_calls, starter.storage_bytes) == (
        5,
        3,
        10_000,
        1 * GB,
    )
    assert (pro.projects, pro.users, pro.api_calls, pro.storage_bytes) == (50, 25, 100_000, 10 * GB)
    assert (ent.projects, ent.users, ent.storage_bytes) == (None, None, None)
    # Enterprise includes an amount of each metered metric and is never blocked on it.
    assert (ent.api_calls, ent.ai_requests) == (1_000_000, 10_000)
    assert spec_for("enterprise").hard_limit("api_calls") is None
    assert spec_for("professional").hard_limit("api_calls") == 110_000
    assert spec_for("professional").hard_limit("projects") == 50
    assert spec_for("starter").hard_limit("api_calls") == 10_000


@pytest.mark.django_db
def test_project_limit_of_starter_plan(api, tenant_a):
    token = tenant_a.login(api)
    for n in range(4):  # plus the Welcome project = 5
        assert (
            api.post("/api/v1/projects", {"name": f"P{n}"}, host=tenant_a.host, token=token).status_code
            == 201
        )
    response = api.post("/api/v1/projects", {"name": "One too many"}, host=tenant_a.host, token=token)
    assert response.status_code == 403
    assert response.body == {
        "error": "quota_exceeded",
        "detail": "Project limit reached (5). Upgrade to create more projects.",
        "limit": 5,
    }
    # Deleting one frees a slot; archived projects still count.
    projects = api.get("/api/v1/projects", host=tenant_a.host, token=token).body["results"]
    api.patch(
        f"/api/v1/projects/{projects[0]['id']}", {"status": "archived"}, host=tenant_a.host, token=token
    )
    assert (
        api.post("/api/v1/projects", {"name": "Still no"}, host=tenant_a.host, token=token).status_code == 403
    )
    api.delete(f"/api/v1/projects/{projects[1]['id']}", host=tenant_a.host, token=token)
    assert (
        api.post("/api/v1/projects", {"name": "Now yes"}, host=tenant_a.host, token=token).status_code == 201
    )


@pytest.mark.django_db
def test_enterprise_has_no_project_limit(api, make_tenant):
    big = make_tenant("Big Co", plan="enterprise")
    token = big.login(api)
    for n in range(7):
        assert api.post("/api/v1/projects", {"name": f"P{n}"}, host=big.host, token=token).status_code == 201


@pytest.mark.django_db
def test_user_limit_of_starter_plan(tenant_a):
    with schema_context(tenant_a.tenant.schema_name):
        member_add(tenant=tenant_a.tenant, email="m1@acme.test", password="member-password-123")
        member_add(tenant=tenant_a.tenant, email="m2@acme.test", password="member-password-123")
        with pytest.raises(QuotaExceeded) as excinfo:
            member_add(tenant=tenant_a.tenant, email="m3@acme.test", password="member-password-123")
    assert excinfo.value.detail == "User limit reached (3). Upgrade to create more users."
    assert excinfo.value.extra == {"limit": 3}
    assert excinfo.value.status == 403


@pytest.mark.django_db
def test_usage_reports_use_and_limits(api, tenant_a):
    token = tenant_a.login(api)
    api.post("/api/v1/projects", {"name": "Second"}, host=tenant_a.host, token=token)
    response = api.get("/api/v1/usage", host=tenant_a.host, token=token)
    assert response.status_code == 200
    resources = response.body["resources"]
    assert response.body["plan"] == "starter"
    assert resources["projects"]["used"] == 2
    assert resources["projects"]["limit"] == 5
    assert resources["users"] == {"used": 1, "limit": 3, "label": "Users"}
    # Authenticated calls are counted when admitted, before their view runs (the 429 is decided
    # from that count): the POST and this GET so far (logins are not counted).
    assert resources["api_calls"]["used"] == 2
    assert resources["api_calls"]["limit"] == 10_000
    assert resources["storage_bytes"]["used"] > 0
    assert resources["storage_bytes"]["limit"] == GB
    again = api.get("/api/v1/usage", host=tenant_a.host, token=token).body["resources"]
    assert again["api_calls"]["used"] == 3


@pytest.mark.django_db
def test_api_calls_are_counted_per_tenant(api, tenant_a, tenant_b):
    token_a = tenant_a.login(api)
    token_b = tenant_b.login(api)
    for _ in range(3):
        api.get("/api/v1/projects", host=tenant_a.host, token=token_a)
    usage_b = api.get("/api/v1/usage", host=tenant_b.host, token=token_b).body["resources"]
    usage_a = api.get("/api/v1/usage", host=tenant_a.host, token=token_a).body["resources"]
    assert usage_b["api_calls"]["used"] == 1  # this request itself
    assert usage_a["api_calls"]["used"] == 4
