from __future__ import annotations


def test_create_and_list_projects(api, tenant_a):
    token = tenant_a.login(api)
    created = api.post("/api/v1/projects", {"name": "Rocket", "description": "Go up"}, host=tenant_a.host, token=token)
    assert created.status_code == 201, created.body
    listed = api.get("/api/v1/projects", host=tenant_a.host, token=token)
    assert [p["name"] for p in listed.body["results"]] == ["Rocket", "Welcome"]
