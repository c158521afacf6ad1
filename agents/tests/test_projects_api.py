from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def owner(api, tenant_a):
    return {"host": tenant_a.host, "token": tenant_a.login(api)}


@pytest.mark.django_db
def test_create_get_list_projects(api, owner):
    created = api.post("/api/v1/projects", {"name": "Rocket", "description": "Go up"}, **owner)
    assert created.status_code == 201, created.body
    assert created.body["name"] == "Rocket"
    assert created.body["status"] == "active"
    assert created.body["description"] == "Go up"
    assert set(created.body) == {"id", "name", "description", "status", "created_at", "updated_at"}
    fetched = api.get(f"/api/v1/projects/{created.body['id']}", **owner)
    assert fetched.body == created.body
    listed = api.get("/api/v1/projects", **owner)
    assert [p["name"] for p in listed.body["results"]] == ["Rocket", "Welcome"]


@pytest.mark.django_db
def test_duplicate_name_is_409(api, owner):
    assert api.post("/api/v1/projects", {"name": "Rocket"}, **owner).status_code == 201
    duplicate = api.post("/api/v1/projects", {"name": "Rocket"}, **owner)
    assert duplicate.status_code == 409
    assert duplicate.body["error"] == "project_exists"
    assert duplicate.body["detail"] == "Project 'Rocket' already exists in your organization"
    # Case and surrounding spaces do not make a different name.
    assert api.post("/api/v1/projects", {"name": "  rocket "}, **owner).status_code == 409


@pytest.mark.django_db
def test_rename_to_taken_name_is_409(api, owner):
    rocket = api.post("/api/v1/projects", {"name": "Rocket"}, **owner).body
    response = api.patch(f"/api/v1/projects/{rocket['id']}", {"name": "Welcome"}, **owner)
    assert response.status_code == 409
    assert response.body["detail"] == "Project 'Welcome' already exists in your organization"
    # Renaming to its own name (other case) is fine.
    assert api.patch(f"/api/v1/projects/{rocket['id']}", {"name": "ROCKET"}, **owner).status_code == 200


@pytest.mark.django_db
def test_patch_updates_fields_and_archives(api, owner):
    rocket = api.post("/api/v1/projects", {"name": "Rocket"}, **owner).body
    patched = api.patch(
        f"/api/v1/projects/{rocket['id']}", {"description": "New", "status": "archived"}, **owner
    )
    assert patched.status_code == 200
    assert patched.body["description"] == "New"
    assert patched.body["status"] == "archived"
    assert patched.body["name"] == "Rocket"
    archived = api.get("/api/v1/projects?status=archived", **owner).body["results"]
    assert [p["name"] for p in archived] == ["Rocket"]
    active = api.get("/api/v1/projects?status=active", **owner).body["results"]
    assert [p["name"] for p in active] == ["Welcome"]
    assert api.get("/api/v1/projects?status=deleted", **owner).status_code == 400


@pytest.mark.django_db
def test_patch_cannot_set_deleted(api, owner):
    rocket = api.post("/api/v1/projects", {"name": "Rocket"}, **owner).body
    response = api.patch(f"/api/v1/projects/{rocket['id']}", {"status": "deleted"}, **owner)
    assert response.status_code == 400
    assert "status" in response.body["detail"]


@pytest.mark.django_db
def test_delete_is_soft_and_frees_the_name(api, owner):
    rocket = api.post("/api/v1/projects", {"name": "Rocket"}, **owner).body
    assert api.delete(f"/api/v1/projects/{rocket['id']}", **owner).status_code == 204
    assert api.get(f"/api/v1/projects/{rocket['id']}", **owner).status_code == 404
    assert api.delete(f"/api/v1/projects/{rocket['id']}", **owner).status_code == 404
    assert [p["name"] for p in api.get("/api/v1/projects", **owner).body["results"]] == ["Welcome"]
    again = api.post("/api/v1/projects", {"name": "Rocket"}, **owner)
    assert again.status_code == 201
    assert again.body["id"] != rocket["id"]
    from django_tenants.utils import schema_context

    from agents.models import Project

    with schema_context(owner["host"].split(".")[0]):
        assert Project.objects.get(id=rocket["id"]).status == "deleted"  # the row is kept


@pytest.mark.django_db
@pytest.mark.parametrize("project_id", [str(uuid.uuid4()), "not-a-uuid", "1", "' OR 1=1 --"])
def test_unknown_project_is_404(api, owner, project_id):
    for method in ("get", "delete"):
        response = getattr(api, method)(f"/api/v1/projects/{project_id}", **owner)
        assert response.status_code == 404
    assert api.patch(f"/api/v1/projects/{project_id}", {"name": "x"}, **owner).status_code == 404


@pytest.mark.django_db
def test_members_read_and_write_projects(api, tenant_a):
    from django_tenants.utils import schema_context

    from accounts.services import member_add

    with schema_context(tenant_a.tenant.schema_name):
        member_add(tenant=tenant_a.tenant, email="member@acme.test", password="member-password-123")
    token = tenant_a.login(api, email="member@acme.test", password="member-password-123")
    created = api.post("/api/v1/projects", {"name": "Member's"}, host=tenant_a.host, token=token)
    assert created.status_code == 201
    assert (
        api.patch(
            f"/api/v1/projects/{created.body['id']}", {"name": "Renamed"}, host=tenant_a.host, token=token
        ).status_code
        == 200
    )
    assert (
        api.delete(f"/api/v1/projects/{created.body['id']}", host=tenant_a.host, token=token).status_code
        == 204
    )


@pytest.mark.django_db
def test_unsupported_method_is_405_json(api, owner):
    response = api.call("PUT", "/api/v1/projects", {"name": "x"}, **owner)
    assert response.status_code == 405
    assert response.body["error"] == "method_not_allowed"
