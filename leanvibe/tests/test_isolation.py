"""Tenant B, by host, by header and by token, can neither see nor touch tenant A's objects, and
learns nothing of their existence (404, not 403)."""

from __future__ import annotations

import pytest
from django.urls import get_resolver

# Every tenant-scoped API route and the test below that attacks it.
TENANT_SCOPED_ROUTES = {
    "api-projects": "test_list_and_create_never_cross_tenants",
    "api-project": "test_project_detail_of_another_tenant_is_404",
    "api-usage": "test_usage_is_per_tenant",
    "api-tenant": "test_tenant_detail_of_another_tenant_is_404",
}
# Platform routes: staff only on the public host (tested in tenants/tests/test_tenants_api.py).
PLATFORM_ROUTES = {"api-tenants", "api-tenant-suspend", "api-tenant-resume", "api-login"}


def test_every_api_route_is_covered_by_an_isolation_test():
    resolver = get_resolver("leanvibe.api.urls")
    names = {name for name in resolver.reverse_dict if isinstance(name, str)}
    assert names == set(TENANT_SCOPED_ROUTES) | PLATFORM_ROUTES, "add the new route to an isolation test"
    for test_name in TENANT_SCOPED_ROUTES.values():
        assert test_name in globals()


@pytest.fixture
def world(api, tenant_a, tenant_b):
    token_a = tenant_a.login(api)
    token_b = tenant_b.login(api)
    secret = api.post(
        "/api/v1/projects",
        {"name": "Secret Plan", "description": "A only"},
        host=tenant_a.host,
        token=token_a,
    ).body
    return {"a": tenant_a, "b": tenant_b, "token_a": token_a, "token_b": token_b, "secret": secret}


def _as_b(world):
    """Ways tenant B's user may call: B's context with B's token (must see only B)."""
    b = world["b"]
    return [
        {"host": b.host, "token": world["token_b"]},
        {"tenant_header": b.id, "token": world["token_b"]},
        {"tenant_header": b.tenant.schema_name, "token": world["token_b"]},
    ]


def _b_token_in_a_context(world):
    """B's token presented in A's context: unknown there, so 401."""
    a = world["a"]
    return [
        {"host": a.host, "token": world["token_b"]},
        {"tenant_header": a.id, "token": world["token_b"]},
    ]


def _assert_secret_intact(api, world):
    a = world["a"]
    fetched = api.get(f"/api/v1/projects/{world['secret']['id']}", host=a.host, token=world["token_a"])
    assert fetched.status_code == 200
    assert fetched.body == world["secret"]


@pytest.mark.django_db
def test_project_detail_of_another_tenant_is_404(api, world):
    path = f"/api/v1/projects/{world['secret']['id']}"
    for ctx in _as_b(world):
        assert api.get(path, **ctx).status_code == 404
        assert api.patch(path, {"name": "Stolen"}, **ctx).status_code == 404
        assert api.delete(path, **ctx).status_code == 404
        response = api.get(path, **ctx)
        assert response.body == {"error": "not_found", "detail": "Project not found."}
    for ctx in _b_token_in_a_context(world):
        assert api.get(path, **ctx).status_code == 401
        assert api.patch(path, {"name": "Stolen"}, **ctx).status_code == 401
        assert api.delete(path, **ctx).status_code == 401
    _assert_secret_intact(api, world)


@pytest.mark.django_db
def test_list_and_create_never_cross_tenants(api, world):
    for ctx in _as_b(world):
        names = [p["name"] for p in api.get("/api/v1/projects", **ctx).body["results"]]
        assert "Secret Plan" not in names
        # The same name is free in B: names are unique per tenant only.
    created = api.post("/api/v1/projects", {"name": "Secret Plan"}, **_as_b(world)[0])
    assert created.status_code == 201
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/projects", **ctx).status_code == 401
        assert api.post("/api/v1/projects", {"name": "Injected"}, **ctx).status_code == 401
    a_names = [
        p["name"]
        for p in api.get("/api/v1/projects", host=world["a"].host, token=world["token_a"]).body["results"]
    ]
    assert sorted(a_names) == ["Secret Plan", "Welcome"]
    _assert_secret_intact(api, world)


@pytest.mark.django_db
def test_usage_is_per_tenant(api, world):
    for ctx in _as_b(world):
        assert api.get("/api/v1/usage", **ctx).body["resources"]["projects"]["used"] == 1
    a_usage = api.get("/api/v1/usage", host=world["a"].host, token=world["token_a"]).body
    assert a_usage["resources"]["projects"]["used"] == 2
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/usage", **ctx).status_code == 401


@pytest.mark.django_db
def test_tenant_detail_of_another_tenant_is_404(api, world):
    path = f"/api/v1/tenants/{world['a'].id}"
    for ctx in _as_b(world):
        assert api.get(path, **ctx).status_code == 404
    for ctx in _b_token_in_a_context(world):
        assert api.get(path, **ctx).status_code == 401
