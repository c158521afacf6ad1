"""The data export through a real Celery worker (``celery_worker``: a worker thread on this run's
private queue, against committed data): the API's request reaches the worker after commit, the
progress is visible while it runs, and the archive downloads."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from conftest import ApiClient
from tenants.services import tenant_provision
from tenants.tests.test_tasks import celery_worker, wait_for  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def test_the_worker_writes_the_export_the_api_asked_for(
    celery_worker: Any,  # noqa: F811
    settings: Any,
    tmp_path: Any,
    client: Client,
) -> None:
    settings.EXPORTS_ROOT = tmp_path / "exports"
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "agents"
    tenant = tenant_provision(
        organization_name="Exports Inc",
        billing_email="owner@exports.test",
        admin_email="owner@exports.test",
        admin_password="correct-horse-battery",
    ).tenant
    api = ApiClient(client)
    host = tenant.primary_domain
    login = api.post(
        "/api/v1/auth/login", {"email": "owner@exports.test", "password": "correct-horse-battery"}, host=host
    )
    token = login.body["access_token"]
    started = api.post("/api/v1/exports", host=host, token=token)
    assert started.status_code == 202 and started.body["status"] == "pending"

    def ready() -> Any:
        body = api.get(f"/api/v1/exports/{started.body['id']}", host=host, token=token).body
        assert body["status"] in ("pending", "running", "ready"), body
        return body if body["status"] == "ready" else None

    body = wait_for(ready, "the export to be written")
    assert body["progress"] == 100 and body["parts_done"] == body["parts_total"]
    link = urlsplit(body["download_url"])
    response = Client().get(f"{link.path}?{link.query}", HTTP_HOST=host)
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.getvalue()))
    assert [p["name"] for p in json.loads(archive.read("projects.json"))] == ["Welcome"]
    assert [m["email"] for m in json.loads(archive.read("members.json"))] == ["owner@exports.test"]
