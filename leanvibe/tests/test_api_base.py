"""The access rules of the API base classes cannot be weakened by a subclass."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from leanvibe.access import Access
from leanvibe.api.base import DangerouslyPublicAPIView, PlatformAPIView, StaffAPIView, TenantAPIView


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
        "dispatch",
    ],
)
@pytest.mark.parametrize("base", [TenantAPIView, StaffAPIView, DangerouslyPublicAPIView, PlatformAPIView])
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


# --- the whole MRO is checked; DRF's defaults deny everything ------------------------------------
class _AllowAnyMixin:
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []


class _SkipChecksMixin:
    def check_permissions(self, request: Any) -> None:
        return None


@pytest.mark.parametrize("mixin", [_AllowAnyMixin, _SkipChecksMixin])
@pytest.mark.parametrize("base", [TenantAPIView, StaffAPIView, DangerouslyPublicAPIView, PlatformAPIView])
def test_a_mixin_ahead_of_the_base_class_cannot_weaken_it(base, mixin):
    with pytest.raises(TypeError, match=f"{mixin.__qualname__}\\."):
        type("Bypass", (mixin, base), {"__module__": "somewhere.api"})
    # Behind the base class it would be shadowed, but it is refused all the same.
    with pytest.raises(TypeError, match=f"{mixin.__qualname__}\\."):
        type("Shadowed", (base, mixin), {"__module__": "somewhere.api"})


def test_a_subclass_may_not_replace_dispatch():
    with pytest.raises(TypeError, match="dispatch"):
        type("Raw", (TenantAPIView,), {"__module__": "x", "dispatch": lambda self, request: None})


class _PlainApi(APIView):
    def get(self, request: Request) -> Response:
        return Response({"secret": "served"})


@pytest.mark.django_db
def test_a_plain_api_view_serves_nothing_even_with_a_valid_token(tenant_a, rf):
    from django_tenants.utils import schema_context

    from accounts.models import User
    from accounts.services import tokens_issue

    with schema_context(tenant_a.tenant.schema_name):
        owner = User.objects.get(email=tenant_a.owner_email)
        token = tokens_issue(user=owner).access_token
        for headers in ({}, {"HTTP_AUTHORIZATION": f"Bearer {token}"}):
            request = rf.get("/plain", **headers)
            request.tenant = tenant_a.tenant
            response = _PlainApi.as_view()(request)
            response.render()
            assert response.status_code == 403
            assert json.loads(response.content) == {
                "error": "permission_denied",
                "detail": "This endpoint has no access rule.",
            }


# --- per-method access on the base class (the tenant list: public sign-up, staff listing) --------
class _SignUpOrList(PlatformAPIView):
    """POST is public by nature (test); GET is for staff."""

    access_map = {"POST": Access.PUBLIC, "GET": Access.STAFF}

    def get(self, request: Request) -> Response:
        return Response({"listed": True})

    def post(self, request: Request) -> Response:
        return Response({"created": True})

    def put(self, request: Request) -> Response:
        return Response({"replaced": True})


def test_access_map_admits_only_public_member_or_staff_and_public_needs_a_reason():
    with pytest.raises(TypeError, match="public, member or staff"):
        type(
            "Admins",
            (PlatformAPIView,),
            {"__module__": "x", "__doc__": "x", "access_map": {"GET": "admin"}},
        )
    with pytest.raises(TypeError, match="docstring"):
        type("Unexplained", (PlatformAPIView,), {"__module__": "x", "access_map": {"POST": Access.PUBLIC}})


@pytest.mark.django_db
def test_access_map_decides_per_method(rf, tenant_a):
    from django_tenants.utils import schema_context

    from accounts.models import User
    from accounts.services import tokens_issue

    staff = User.objects.create_user(email="staff@platform.test", password="x" * 20, is_staff=True)
    staff_token = tokens_issue(user=staff).access_token
    view = _SignUpOrList.as_view()

    def call(method: str, token: str | None = None, tenant: Any = None) -> Any:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        request = getattr(rf, method)("/x", **headers)
        request.tenant = tenant
        return view(request)

    assert call("post").status_code == 200
    assert call("post", token="lva_not-a-token").status_code == 200
    for method in ("get", "put"):  # PUT is not in the map: staff only
        assert call(method).status_code == 403
        assert call(method, token="lva_not-a-token").status_code == 403
        assert call(method, token=staff_token).status_code == 200
    # Staff rights are the public host's: on a tenant's host the listing stays closed.
    with schema_context(tenant_a.tenant.schema_name):
        owner = User.objects.get(email=tenant_a.owner_email)
        owner_token = tokens_issue(user=owner).access_token
        denied = call("get", token=owner_token, tenant=tenant_a.tenant)
    assert denied.status_code == 403
    assert denied.data["error"] == "permission_denied"
