"""The access rules of the API base classes cannot be weakened by a subclass."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.permissions import AllowAny

from accounts.models import Role
from leanvibe.api.base import DangerouslyPublicAPIView, StaffAPIView, TenantAPIView


@pytest.mark.parametrize(
    "attribute",
    [
        "permission_classes",
        "authentication_classes",
        "get_permissions",
        "get_authenticators",
        "check_permissions",
        "check_object_permissions",
        "initial",
        "perform_authentication",
    ],
)
@pytest.mark.parametrize("base", [TenantAPIView, StaffAPIView, DangerouslyPublicAPIView])
def test_subclass_may_not_override_access_hooks(base, attribute):
    value: Any = [AllowAny] if attribute.endswith("classes") else (lambda self, *a, **k: [])
    with pytest.raises(TypeError, match=attribute):
        type("Weakened", (base,), {"__module__": "somewhere.api", attribute: value})


def test_grandchildren_are_checked_too():
    middle = type("Middle", (TenantAPIView,), {"__module__": "somewhere.api"})
    with pytest.raises(TypeError):
        type("Weakened", (middle,), {"__module__": "somewhere.api", "get_permissions": lambda self: []})


def test_role_map_may_raise_but_every_method_needs_at_least_member():
    raised: Any = type("AdminOnly", (TenantAPIView,), {"__module__": "x", "role_map": {"POST": Role.ADMIN}})
    assert raised.role_map["POST"] == Role.ADMIN
    with pytest.raises(KeyError):
        type("Bogus", (TenantAPIView,), {"__module__": "x", "role_map": {"GET": "anonymous"}})


@pytest.mark.django_db
def test_a_method_missing_from_role_map_needs_the_owner(api, tenant_a, rf):
    from django_tenants.utils import schema_context

    from accounts.services import member_add, tokens_issue

    view_class: Any = type(
        "OwnersPost",
        (TenantAPIView,),
        {"__module__": "x", "role_map": {"GET": Role.MEMBER}, "post": lambda self, request: None},
    )
    view = view_class.as_view()
    with schema_context(tenant_a.tenant.schema_name):
        member = member_add(tenant=tenant_a.tenant, email="m@acme.test", password="member-password-123")
        token = tokens_issue(user=member).access_token
        request = rf.post("/x", HTTP_AUTHORIZATION=f"Bearer {token}")
        request.tenant = tenant_a.tenant
        response = view(request)
    assert response.status_code == 403
    assert response.data["error"] == "permission_denied"


@pytest.mark.django_db
def test_openapi_schema_describes_the_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/tenants",
        "/api/v1/projects",
        "/api/v1/projects/{project_id}",
        "/api/v1/usage",
        "/api/v1/auth/login",
    ]:
        assert path in paths
