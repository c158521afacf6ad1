"""Malformed JSON, wrong types, missing and unknown fields, huge bodies: a 4xx JSON error that
names the problem, never a 500, and nothing changed."""

from __future__ import annotations

import pytest

from agents.models import Project


@pytest.fixture
def endpoints(api, tenant_a):
    token = tenant_a.login(api)
    project = api.post("/api/v1/projects", {"name": "Target"}, host=tenant_a.host, token=token).body
    ctx = {"host": tenant_a.host, "token": token}
    return {
        "signup": ("POST", "/api/v1/tenants", {}),
        "login": ("POST", "/api/v1/auth/login", {"host": tenant_a.host}),
        "project-create": ("POST", "/api/v1/projects", ctx),
        "project-update": ("PATCH", f"/api/v1/projects/{project['id']}", ctx),
    }


ALL = ["signup", "login", "project-create", "project-update"]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
@pytest.mark.parametrize(
    "raw",
    ['{"name": "x"', "{'name': 'x'}", "nul", '{"a":1}}', "\x00\x01", '{"name": NaN}'],
)
def test_malformed_json_is_400(api, endpoints, endpoint, raw):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, raw=raw, **ctx)
    assert response.status_code == 400
    assert response.body["error"] == "malformed_request"
    assert "JSON" in response.body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
@pytest.mark.parametrize("raw", [b"\xff\xfe\xfa", b'{"name": "\xc3\x28"}'])
def test_invalid_utf8_is_400(api, endpoints, endpoint, raw):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, raw=raw, **ctx)
    assert response.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
@pytest.mark.parametrize("body", [[], ["name"], "name", 42, None, True])
def test_body_that_is_not_an_object_is_400(api, endpoints, endpoint, body):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, raw=__import__("json").dumps(body), **ctx)
    assert response.status_code == 400
    assert response.body["error"] in {"validation_error", "malformed_request"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("endpoint", "payload", "field"),
    [
        (
            "signup",
            {"organization_name": 42, "billing_email": "a@b.co", "admin_email": "a@b.co"},
            "organization_name",
        ),
        (
            "signup",
            {"organization_name": "X", "billing_email": ["a@b.co"], "admin_email": "a@b.co"},
            "billing_email",
        ),
        (
            "signup",
            {"organization_name": "X", "billing_email": "a@b.co", "admin_email": "a@b.co", "plan": 1},
            "plan",
        ),
        (
            "signup",
            {"organization_name": {"a": 1}, "billing_email": "a@b.co", "admin_email": "a@b.co"},
            "organization_name",
        ),
        ("login", {"email": 1, "password": "x"}, "email"),
        ("login", {"email": "a@b.co", "password": True}, "password"),
        ("login", {"email": "a@b.co", "password": None}, "password"),
        ("project-create", {"name": 123}, "name"),
        ("project-create", {"name": ["a"]}, "name"),
        ("project-create", {"name": "ok", "description": {"x": 1}}, "description"),
        ("project-create", {"name": None}, "name"),
        ("project-create", {"name": ""}, "name"),
        ("project-create", {"name": "x" * 101}, "name"),
        ("project-update", {"name": False}, "name"),
        ("project-update", {"status": "exploded"}, "status"),
        ("project-update", {"description": 7}, "description"),
    ],
)
def test_wrong_types_and_values_are_400_naming_the_field(api, endpoints, endpoint, payload, field):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, payload, **ctx)
    assert response.status_code == 400
    assert response.body["error"] == "validation_error"
    assert field in response.body["fields"]
    assert field in response.body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("endpoint", "payload", "missing"),
    [
        ("signup", {"billing_email": "a@b.co", "admin_email": "a@b.co"}, "organization_name"),
        ("signup", {"organization_name": "X", "admin_email": "a@b.co"}, "billing_email"),
        ("signup", {"organization_name": "X", "billing_email": "a@b.co"}, "admin_email"),
        ("login", {"email": "a@b.co"}, "password"),
        ("login", {"password": "x"}, "email"),
        ("project-create", {"description": "no name"}, "name"),
    ],
)
def test_missing_fields_are_400_naming_the_field(api, endpoints, endpoint, payload, missing):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, payload, **ctx)
    assert response.status_code == 400
    assert f"{missing}: This field is required." in response.body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
def test_unknown_fields_are_400_naming_them(api, endpoints, endpoint):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, {"is_superuser": True, "schema_name": "public"}, **ctx)
    assert response.status_code == 400
    assert set(response.body["fields"]) >= {"is_superuser", "schema_name"}
    assert "is_superuser: Unknown field." in response.body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
def test_oversized_body_is_413(api, endpoints, endpoint, settings):
    method, path, ctx = endpoints[endpoint]
    body = '{"name": "' + "x" * (settings.API_MAX_BODY_BYTES + 10) + '"}'
    response = api.call(method, path, raw=body, **ctx)
    assert response.status_code == 413
    assert response.body["error"] == "payload_too_large"
    assert response.body["limit"] == settings.API_MAX_BODY_BYTES


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
def test_wrong_content_type_is_415(api, endpoints, endpoint):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, raw="name=x", content_type="application/x-www-form-urlencoded", **ctx)
    assert response.status_code == 415
    assert response.body["error"] == "unsupported_media_type"


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ['{"name": "\\ud800"}', '{"name": "nul\\u0000byte"}'])
def test_strings_postgres_cannot_store_are_400(api, endpoints, raw):
    method, path, ctx = endpoints["project-create"]
    response = api.call(method, path, raw=raw, **ctx)
    assert response.status_code == 400
    assert "name" in response.body["fields"]


@pytest.mark.django_db
def test_deeply_nested_json_is_a_clean_400(api, endpoints):
    method, path, ctx = endpoints["project-create"]
    raw = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.call(method, path, raw=raw, **ctx)
    assert response.status_code in {400, 413}


@pytest.mark.django_db
def test_bad_input_changes_nothing(api, endpoints, tenant_a):
    from django_tenants.utils import schema_context

    method, path, ctx = endpoints["project-update"]
    api.call(method, path, {"name": 5, "status": "archived"}, **ctx)
    api.call(method, path, raw='{"name": "Changed"', **ctx)
    with schema_context(tenant_a.tenant.schema_name):
        target = Project.objects.get(name="Target")
        assert target.status == "active"


@pytest.mark.django_db
def test_unknown_api_path_is_json_404(api, tenant_a):
    assert api.get("/api/v1/nothing-here").body["error"] == "not_found"
    assert api.get("/api/v1/nothing-here", host=tenant_a.host).status_code == 404
