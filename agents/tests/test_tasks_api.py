"""The development tasks API (``/api/v1/tasks...``, ``/api/v1/analytics/ai-productivity``).

Tasks progress through the real pipeline, run in process with recorded model answers
(``RecordedBackend``, ``agents/tests/recorded_answers.py``) and the real sandbox.
"""

from __future__ import annotations

import io
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from agents import pipeline
from agents.inference.recorded import RecordedBackend
from agents.models import DevelopmentTask
from agents.tests import recorded_answers as rec
from conftest import TenantHandle

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@pytest.fixture(autouse=True)
def workspace(settings: Any, tmp_path: Path) -> Path:
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    return Path(settings.AGENTS_WORKSPACE_ROOT)


@pytest.fixture
def owner(api: Any, tenant_a: TenantHandle) -> dict[str, str]:
    return {"host": tenant_a.host, "token": tenant_a.login(api)}


def run_queued(handle: TenantHandle, answers: list[Any] | None = None) -> DevelopmentTask:
    """Run the tenant's oldest queued task through the pipeline, in process, with recorded model
    answers (what the worker does, without Celery)."""
    with tenant_context(handle.tenant):
        task = pipeline.task_claim(tenant=handle.tenant)
        assert task is not None
        backend = RecordedBackend(rec.COMPLETES_FIRST_TIME if answers is None else answers)
        pipeline.task_execute(tenant=handle.tenant, task=task, backend=backend)
        task.refresh_from_db()
        return task


def create(api: Any, ctx: dict[str, str], **fields: Any) -> Any:
    body = {"title": "Add two numbers", "description": "Write add(a, b).", **fields}
    return api.post("/api/v1/tasks", body, **ctx)


TASK_FIELDS = {
    "id",
    "title",
    "description",
    "requirements",
    "priority",
    "status",
    "progress_percentage",
    "created_at",
    "started_at",
    "completed_at",
    "error",
    "attempts",
    "project_id",
    "agent",
}


@pytest.mark.django_db
def test_create_get_and_list(api, owner):
    created = create(api, owner, priority="high", requirements=["add(2, 3) == 5"])
    assert created.status_code == 201, created.body
    task = created.body
    assert set(task) == TASK_FIELDS
    assert task["status"] == "queued"
    assert task["priority"] == "high"
    assert task["requirements"] == ["add(2, 3) == 5"]
    assert task["progress_percentage"] == 0
    assert (task["project_id"], task["started_at"], task["error"], task["attempts"]) == (None, None, "", 0)
    assert task["agent"] == "Coder"
    assert api.get(f"/api/v1/tasks/{task['id']}", **owner).body == task
    assert api.get("/api/v1/tasks", **owner).body["results"] == [task]
    assert api.get("/api/v1/tasks?status=queued", **owner).body["results"] == [task]
    assert api.get("/api/v1/tasks?status=completed", **owner).body["results"] == []


@pytest.mark.django_db
def test_defaults_and_project_filter(api, owner):
    project = api.post("/api/v1/projects", {"name": "Maths"}, **owner).body
    in_project = create(api, owner, project_id=project["id"]).body
    create(api, owner, title="Loose")
    assert in_project["project_id"] == project["id"]
    assert in_project["priority"] == "medium" and in_project["requirements"] == []
    listed = api.get(f"/api/v1/tasks?project_id={project['id']}", **owner).body["results"]
    assert [t["id"] for t in listed] == [in_project["id"]]
    assert len(api.get("/api/v1/tasks", **owner).body["results"]) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": 5}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"description": ["a"]}, "description"),
        ({"priority": "whenever"}, "priority"),
        ({"priority": 1}, "priority"),
        ({"requirements": "one"}, "requirements"),
        ({"requirements": [1, 2]}, "requirements"),
        ({"requirements": [""]}, "requirements"),
        ({"requirements": ["x"] * 51}, "requirements"),
        ({"project_id": "not-a-uuid"}, "project_id"),
        ({"project_id": 7}, "project_id"),
        ({"agent": "Coder"}, "agent"),
        ({"status": "completed"}, "status"),
    ],
)
def test_bad_input_is_400_naming_the_field(api, owner, payload, field):
    response = create(api, owner, **payload)
    assert response.status_code == 400, response.body
    assert response.body["error"] == "validation_error"
    assert field in response.body["fields"]


@pytest.mark.django_db
def test_missing_fields_and_bad_bodies_are_400(api, owner):
    missing = api.post("/api/v1/tasks", {"title": "No description"}, **owner)
    assert missing.status_code == 400
    assert "description: This field is required." in missing.body["detail"]
    for raw in ("[]", "42", '{"title": ', "null"):
        assert api.call("POST", "/api/v1/tasks", raw=raw, **owner).status_code == 400
    assert api.get("/api/v1/tasks", **owner).body["results"] == []


@pytest.mark.django_db
def test_unknown_or_deleted_project_is_404(api, owner):
    unknown = create(api, owner, project_id=str(uuid.uuid4()))
    assert unknown.status_code == 404
    assert unknown.body["error"] == "project_not_found"
    project = api.post("/api/v1/projects", {"name": "Gone"}, **owner).body
    api.delete(f"/api/v1/projects/{project['id']}", **owner)
    assert create(api, owner, project_id=project["id"]).status_code == 404
    assert api.get(f"/api/v1/tasks?project_id={project['id']}", **owner).status_code == 404
    assert api.get("/api/v1/tasks?project_id=%C2%B2", **owner).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["done", "", "QUEUED", "²"])
def test_invalid_status_filter_is_400(api, owner, value):
    response = api.get(f"/api/v1/tasks?status={value}", **owner)
    assert response.status_code == 400
    assert response.body["error"] == "invalid_filter"
    assert "status" in response.body["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize("suffix", ["", "/status", "/code", "/download", "/events", "/cancel"])
def test_unknown_task_is_404_json(api, owner, suffix):
    method = "POST" if suffix == "/cancel" else "GET"
    for task_id in (str(uuid.uuid4()), "nope", "²"):
        response = api.call(method, f"/api/v1/tasks/{task_id}{suffix}", **owner)
        assert response.status_code == 404
        assert response.body == {"error": "not_found", "detail": "Task not found."}


@pytest.mark.django_db
def test_requires_a_token(api, tenant_a):
    assert api.get("/api/v1/tasks", host=tenant_a.host).status_code == 401
    assert api.post("/api/v1/tasks", {"title": "x"}, host=tenant_a.host).status_code == 401
    assert api.get("/api/v1/analytics/ai-productivity", host=tenant_a.host).status_code == 401


@pytest.mark.django_db
def test_code_and_download_before_completion_are_400(api, owner):
    task = create(api, owner).body
    for suffix in ("code", "download"):
        response = api.get(f"/api/v1/tasks/{task['id']}/{suffix}", **owner)
        assert response.status_code == 400
        assert response.body["error"] == "task_not_completed"
    # Whatever the client accepts, the download's error is JSON.
    zipped = api.get(f"/api/v1/tasks/{task['id']}/download", headers={"Accept": "application/zip"}, **owner)
    assert zipped.status_code == 400
    assert zipped.body["error"] == "task_not_completed"


@needs_bwrap
@pytest.mark.django_db
def test_a_completed_task_status_code_download_and_analytics(api, owner, tenant_a):
    """Recorded model answers."""
    task = create(api, owner).body
    run_queued(tenant_a)
    fetched = api.get(f"/api/v1/tasks/{task['id']}", **owner).body
    assert fetched["status"] == "completed" and fetched["progress_percentage"] == 100
    assert fetched["attempts"] == 1 and fetched["started_at"] and fetched["completed_at"]

    status = api.get(f"/api/v1/tasks/{task['id']}/status", **owner).body
    assert status["status"] == "completed" and status["progress_percentage"] == 100
    names = [s["name"] for s in status["steps"]]
    assert names == ["analysis", "architecture", "implementation", "tests", "validation", "documentation"]
    for step in status["steps"]:
        assert set(step) == {"name", "status", "attempt", "tokens_in", "tokens_out", "duration_ms", "error"}
        assert step["status"] == "completed"
    assert status["steps"][0]["tokens_out"] > 0

    code = api.get(f"/api/v1/tasks/{task['id']}/code", **owner).body
    files = {f["path"]: f for f in code["files"]}
    assert sorted(files) == ["README.md", "solution.py", "test_solution.py"]
    assert [files[p]["kind"] for p in sorted(files)] == ["doc", "code", "test"]
    assert "return a + b" in files["solution.py"]["content"]
    assert code["quality"]["tests_passed"] == 1 and code["quality"]["tests_failed"] == 0
    assert set(code["quality"]) == {"tests_passed", "tests_failed", "lint_findings", "coverage", "attempts"}

    download = api.client.get(
        f"/api/v1/tasks/{task['id']}/download",
        HTTP_HOST=owner["host"],
        HTTP_AUTHORIZATION=f"Bearer {owner['token']}",
    )
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    assert f'filename="task-{task["id"]}.zip"' in download["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    prefix = f"task-{task['id']}/"
    assert sorted(archive.namelist()) == [prefix + p for p in sorted(files)]
    assert archive.read(prefix + "solution.py").decode() == files["solution.py"]["content"]

    cancel = api.post(f"/api/v1/tasks/{task['id']}/cancel", **owner)
    assert cancel.status_code == 409
    assert cancel.body["error"] == "task_finished"

    create(api, owner, title="Still queued")
    stats = api.get("/api/v1/analytics/ai-productivity", **owner).body
    assert stats["total_tasks"] == 2 and stats["completed_tasks"] == 1
    assert (stats["failed_tasks"], stats["in_progress_tasks"]) == (0, 0)
    assert stats["completion_rate"] == 50.0
    assert stats["first_attempt_pass_rate"] == 100.0 and stats["average_attempts"] == 1.0
    assert stats["productivity_score"] == 65.0
    assert stats["average_completion_hours"] > 0 and stats["tokens_per_second"] > 0


@pytest.mark.django_db
def test_analytics_of_a_new_tenant_are_zero(api, owner):
    assert api.get("/api/v1/analytics/ai-productivity", **owner).body == {
        "total_tasks": 0,
        "completed_tasks": 0,
        "failed_tasks": 0,
        "in_progress_tasks": 0,
        "completion_rate": 0.0,
        "average_completion_hours": 0.0,
        "productivity_score": 0.0,
        "tokens_per_second": 0.0,
        "first_attempt_pass_rate": 0.0,
        "average_attempts": 0.0,
    }


@pytest.mark.django_db
def test_cancel_a_queued_task_then_again_is_409(api, owner):
    task = create(api, owner).body
    cancelled = api.post(f"/api/v1/tasks/{task['id']}/cancel", **owner)
    assert cancelled.status_code == 200
    assert cancelled.body["status"] == "cancelled"
    again = api.post(f"/api/v1/tasks/{task['id']}/cancel", **owner)
    assert again.status_code == 409
    assert again.body == {"error": "task_finished", "detail": "The task is already cancelled."}
    assert api.get(f"/api/v1/tasks/{task['id']}/code", **owner).body["error"] == "task_not_completed"


@pytest.mark.django_db
def test_cancel_a_running_task_is_202(api, owner, tenant_a):
    task = create(api, owner).body
    with tenant_context(tenant_a.tenant):
        DevelopmentTask.objects.filter(id=task["id"]).update(status=DevelopmentTask.Status.IN_PROGRESS)
    response = api.post(f"/api/v1/tasks/{task['id']}/cancel", **owner)
    assert response.status_code == 202
    assert response.body["status"] == "in_progress"
    events = api.get(f"/api/v1/tasks/{task['id']}/events", **owner).body["events"]
    assert [e["type"] for e in events] == ["status", "cancel_requested"]


@pytest.mark.django_db
def test_only_the_creator_or_an_admin_cancels_a_task(api, owner, tenant_a):
    """A hostile colleague: another member may read a task but not stop it (403, the task goes
    on); its creator may, and so may an admin."""
    from accounts.models import Role
    from accounts.services import user_create

    with tenant_context(tenant_a.tenant):
        for email, role in (("ann@example.com", Role.MEMBER), ("bob@example.com", Role.MEMBER)):
            user_create(email=email, password=tenant_a.password, role=role)
        user_create(email="ada@example.com", password=tenant_a.password, role=Role.ADMIN)
    ann, bob, ada = (
        {"host": tenant_a.host, "token": tenant_a.login(api, email)}
        for email in ("ann@example.com", "bob@example.com", "ada@example.com")
    )
    first, second = create(api, ann).body, create(api, ann).body

    refused = api.post(f"/api/v1/tasks/{first['id']}/cancel", **bob)
    assert refused.status_code == 403 and refused.body["error"] == "cancel_not_allowed"
    assert api.get(f"/api/v1/tasks/{first['id']}", **bob).body["status"] != "cancelled"
    assert api.post(f"/api/v1/tasks/{first['id']}/cancel", **ann).body["status"] == "cancelled"
    assert api.post(f"/api/v1/tasks/{second['id']}/cancel", **ada).body["status"] == "cancelled"
