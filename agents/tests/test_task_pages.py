"""The tenant's task pages through Django's test client on its host: list with badges and empty
state, the new task form with inline errors, a task's page, its events feed, cancel, download,
and the dashboard's latest tasks. Tasks run in process with recorded model answers."""

from __future__ import annotations

import io
import json
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from agents.models import DevelopmentTask
from agents.tests.test_pages import HTML, sign_in
from agents.tests.test_tasks_api import run_queued
from conftest import TenantHandle
from leanvibe.tests.html import field_errors, messages, page, texts

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@pytest.fixture(autouse=True)
def workspace(settings: Any, tmp_path: Path) -> Path:
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    return Path(settings.AGENTS_WORKSPACE_ROOT)


class Site:
    def __init__(self, client: Client, handle: TenantHandle) -> None:
        self.client, self.handle = client, handle

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, HTTP_HOST=self.handle.host, **HTML, **kw)

    def post(self, path: str, data: dict[str, str], **kw: Any) -> Any:
        return self.client.post(path, data, HTTP_HOST=self.handle.host, **HTML, **kw)

    def create(self, **data: str) -> Any:
        fields = {"title": "Add two numbers", "description": "Write add(a, b).", "priority": "medium", **data}
        return self.post("/tasks/new/", fields)

    def task(self) -> DevelopmentTask:
        with tenant_context(self.handle.tenant):
            return DevelopmentTask.objects.get()


@pytest.fixture
def site(client: Client, tenant_a: TenantHandle) -> Site:
    sign_in(client, tenant_a)
    return Site(client, tenant_a)


@pytest.mark.django_db
def test_pages_require_signing_in(client, tenant_a):
    for path in ("/tasks/", "/tasks/new/", f"/tasks/{uuid.uuid4()}/", f"/tasks/{uuid.uuid4()}/events/"):
        response = client.get(path, HTTP_HOST=tenant_a.host)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_empty_list_and_dashboard(site):
    doc = page(site.get("/tasks/"))
    assert texts(doc, '//*[@id="tasks-empty"]//h3') == ["No tasks"]
    assert doc.xpath('//a[@href="/tasks/new/"]')
    dashboard = page(site.get("/"))
    assert texts(dashboard, '//*[@id="latest-tasks"]//h3') == ["No tasks yet"]


@pytest.mark.django_db
def test_form_shows_errors_inline_and_creates_nothing(site):
    response = site.create(title="", requirements="x" * 501)
    assert response.status_code == 400
    doc = page(response)
    assert field_errors(doc, "title") == ["This field is required."]
    assert field_errors(doc, "requirements")
    assert doc.xpath('//textarea[@name="description"]')[0].text.strip() == "Write add(a, b)."
    response = site.create(priority="whenever", project=str(uuid.uuid4()))
    assert response.status_code == 400
    assert field_errors(page(response), "priority") and field_errors(page(response), "project")
    with tenant_context(site.handle.tenant):
        assert not DevelopmentTask.objects.exists()


@pytest.mark.django_db
def test_create_lists_and_shows_the_task(site):
    with tenant_context(site.handle.tenant):
        from agents.selectors import project_list

        welcome = project_list().get()
    response = site.create(
        requirements="add(2, 3) == 5\n\n  returns an int ", priority="high", project=str(welcome.id)
    )
    task = site.task()
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.id}/"
    assert (task.requirements, task.priority, task.project_id) == (
        ["add(2, 3) == 5", "returns an int"],
        "high",
        welcome.id,
    )
    assert messages(page(site.get(f"/tasks/{task.id}/"))) == ["Task “Add two numbers” queued."]
    listed = page(site.get("/tasks/"))
    assert texts(listed, '//ul[@id="task-list"]//a[@class="task-title"]') == ["Add two numbers"]
    assert texts(listed, '//ul[@id="task-list"]//*[contains(@class, "task-status")]') == ["Queued"]
    assert texts(page(site.get("/tasks/?status=completed")), '//*[@id="tasks-empty"]//h3') == [
        "No tasks with this status"
    ]
    doc = page(site.get(f"/tasks/{task.id}/"))
    assert texts(doc, '//h1[@id="task-title"]') == ["Add two numbers"]
    root = doc.xpath('//*[@id="task-root"]')[0]
    assert root.get("data-events-url") == f"/tasks/{task.id}/events/" and root.get("data-after") == "1"
    assert doc.xpath('//script[@src="/static/js/task.js"]')
    assert "hidden" in doc.xpath('//*[@id="task-download"]')[0].get("class")
    assert texts(page(site.get("/")), '//*[@id="latest-task-list"]//a[@class="task-title"]') == [
        "Add two numbers"
    ]


@pytest.mark.django_db
def test_events_feed_and_cancel(site):
    site.create()
    task = site.task()
    feed = site.get(f"/tasks/{task.id}/events/?after=0")
    assert feed.status_code == 200
    body = json.loads(feed.content)
    assert [e["type"] for e in body["events"]] == ["status"]
    assert (body["next"], body["done"], body["status"]) == (1, False, "queued")
    assert site.get(f"/tasks/{task.id}/events/?after=x").status_code == 400
    cancelled = page(site.post(f"/tasks/{task.id}/cancel/", {}, follow=True))
    assert messages(cancelled)[-1] == "Task cancelled."
    assert site.task().status == "cancelled"
    again = page(site.post(f"/tasks/{task.id}/cancel/", {}, follow=True))
    assert messages(again) == ["The task is already cancelled."]
    body = json.loads(site.get(f"/tasks/{task.id}/events/?after=1").content)
    assert [e["type"] for e in body["events"]] == ["done"] and body["done"] is True
    not_ready = page(site.get(f"/tasks/{task.id}/download/", follow=True))
    assert messages(not_ready) == ["The code can be downloaded once the task is completed."]


@pytest.mark.django_db
def test_another_tenants_task_is_404(site, make_tenant, client):
    other = make_tenant("Other Org")
    with tenant_context(other.tenant):
        from agents.services import task_create

        foreign = task_create(tenant=other.tenant, title="Secret", description="x")
    for path in ("", "events/", "download/"):
        assert site.get(f"/tasks/{foreign.id}/{path}").status_code == 404
    assert site.post(f"/tasks/{foreign.id}/cancel/", {}).status_code == 404


@needs_bwrap
@pytest.mark.django_db
def test_completed_task_page_shows_files_quality_and_downloads(site):
    """Recorded model answers."""
    site.create()
    run_queued(site.handle)
    task = site.task()
    doc = page(site.get(f"/tasks/{task.id}/"))
    assert texts(doc, '//*[@id="task-status-badge"]//span') == ["Completed"]
    assert doc.xpath('//*[@id="task-root"]')[0].get("data-finished") == "1"
    assert texts(doc, '//*[@id="files"]//summary/code') == ["README.md", "solution.py", "test_solution.py"]
    # Highlighted on the server: Pygments' classes, no inline style.
    solution = doc.xpath('//details[@data-path="solution.py"]//pre')[0]
    assert solution.xpath('.//span[@class="k"]') and not solution.xpath(".//*[@style]")
    assert texts(doc, '//*[@id="q-tests-passed"]') == ["1"] and texts(doc, '//*[@id="q-tests-failed"]') == [
        "0"
    ]
    assert [li.get("data-step") for li in doc.xpath('//ol[@id="task-steps"]/li')] == [
        "analysis",
        "architecture",
        "implementation",
        "tests",
        "validation",
        "documentation",
    ]
    assert "return a + b" in texts(doc, '//pre[@id="model-output"]')[0]
    assert "hidden" not in doc.xpath('//*[@id="task-download"]')[0].get("class")
    download = site.get(f"/tasks/{task.id}/download/")
    assert download["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    assert sorted(names) == [f"task-{task.id}/{p}" for p in ("README.md", "solution.py", "test_solution.py")]
