"""Which tenant a request reaches: by host, by X-Tenant-ID, never by anything else."""

from __future__ import annotations

import uuid

import pytest

from leanvibe.db import connection
from tenants.services import tenant_suspend


@pytest.mark.django_db
def test_host_resolves_tenant(api, tenant_a):
    token = tenant_a.login(api)
    response = api.get("/api/v1/projects", host=tenant_a.host, token=token)
    assert response.status_code == 200
    assert [p["name"] for p in response.body["results"]] == ["Welcome"]
    # The connection is back on the public schema once the response is done.
    assert connection.schema_name == "public"


@pytest.mark.django_db
def test_host_with_port_resolves_tenant(api, tenant_a):
    token = tenant_a.login(api)
    assert api.get("/api/v1/projects", host=f"{tenant_a.host}:8000", token=token).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("by", ["id", "subdomain", "upper-subdomain", "uuid-hex"])
def test_header_resolves_tenant_on_public_host(api, tenant_a, by):
    token = tenant_a.login(api)
    value = {
        "id": tenant_a.id,
        "subdomain": tenant_a.tenant.schema_name,
        "upper-subdomain": tenant_a.tenant.schema_name.upper(),
        "uuid-hex": uuid.UUID(tenant_a.id).hex,
    }[by]
    response = api.get("/api/v1/projects", tenant_header=value, token=token)
    assert response.status_code == 200


@pytest.mark.django_db
def test_unknown_subdomain_is_json_404(api):
    response = api.get("/api/v1/projects", host="nobody.localhost")
    assert response.status_code == 404
    assert response.body["error"] == "tenant_not_found"


@pytest.mark.django_db
def test_unknown_subdomain_page_is_html_404(client):
    response = client.get("/", HTTP_HOST="nobody.localhost", HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert b"Organisation not found" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    [
        "public",
        "PUBLIC",
        "pg_catalog",
        "information_schema",
        "tenant_template",
        "pool_0123abcd",
        "acme'; DROP SCHEMA public CASCADE; --",
        'acme"',
        "../acme",
        "acme corporation",
        "x" * 5000,
        "",
        "   ",
        str(uuid.uuid4()),
        "00000000-0000-0000-0000-000000000000",
        "%00",
        "acme;",
    ],
)
def test_header_values_that_are_not_a_tenant_are_plain_404(api, tenant_a, value):
    token = tenant_a.login(api)
    response = api.get("/api/v1/projects", tenant_header=value, token=token)
    assert response.status_code == 404
    assert response.body["error"] == "tenant_not_found"
    assert connection.schema_name == "public"
    # The public schema is untouched and the tenant still answers.
    assert api.get("/api/v1/projects", host=tenant_a.host, token=token).status_code == 200


@pytest.mark.django_db
def test_header_is_ignored_outside_the_api_and_on_tenant_hosts(api, client, tenant_a, tenant_b):
    token_b = tenant_b.login(api)
    # On B's host, a header naming A changes nothing: B's projects, B's token.
    response = api.get("/api/v1/projects", host=tenant_b.host, tenant_header=tenant_a.id, token=token_b)
    assert response.status_code == 200
    # Public pages ignore the header.
    page = client.get("/", HTTP_X_TENANT_ID=tenant_a.id)
    assert page.status_code == 200
    assert b"Create your organisation" in page.content


@pytest.mark.django_db
def test_suspended_tenant_is_403_by_host_and_header(api, client, tenant_a):
    token = tenant_a.login(api)
    tenant_suspend(tenant=tenant_a.tenant)
    for kwargs in ({"host": tenant_a.host}, {"tenant_header": tenant_a.id}):
        response = api.get("/api/v1/projects", token=token, **kwargs)
        assert response.status_code == 403
        assert response.body["error"] == "tenant_suspended"
    login = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
    )
    assert login.status_code == 403
    page = client.get("/", HTTP_HOST=tenant_a.host, HTTP_ACCEPT="text/html")
    assert page.status_code == 403
    assert b"suspended" in page.content


@pytest.mark.django_db
def test_public_host_api_without_header_has_no_tenant(api):
    response = api.get("/api/v1/projects")
    assert response.status_code == 404
    assert response.body["error"] == "tenant_not_found"
