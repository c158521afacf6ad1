"""The journey steps agents ticks (level 5, AI Developer): a task the real pipeline completes with
its tests passing in the sandbox (recorded model answers, ``recorded_answers.py``, and the real
sandbox), and its code downloaded through the API or the task's page; never by the actions next
to them (a task whose tests fail, one that fails earlier, reading the code, downloading a task
that is not completed)."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from agents import pipeline
from agents.models import DevelopmentTask, TaskStep
from agents.services import agent_default_get
from agents.tests import recorded_answers as rec
from agents.tests.test_pages import HTML, sign_in
from agents.tests.test_tasks_api import create, run_queued
from tenants.journey.models import LevelUnlocked, StepDone
from tenants.journey.services import journey_unlock_email_send
from tenants.tests.journey_helpers import journey_check

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
pytestmark = pytest.mark.django_db

PASSED, DOWNLOADED = "agent_task_passed", "agent_code_downloaded"
TESTS_FAIL = [rec.PLAN, rec.DESIGN, rec.CODE_BAD, rec.TESTS, rec.CODE_BAD, rec.CODE_BAD]
NO_PLAN = ["I would write a function.", "Still no plan."]


@pytest.fixture(autouse=True)
def workspace(settings: Any, tmp_path: Path) -> Path:
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    return Path(settings.AGENTS_WORKSPACE_ROOT)


@pytest.fixture
def owner(api, tenant_a) -> dict[str, str]:
    return {"host": tenant_a.host, "token": tenant_a.login(api)}


def done(handle) -> set[str]:
    return set(StepDone.objects.filter(tenant_id=handle.tenant.pk).values_list("step", flat=True))


@needs_bwrap
def test_a_passed_task_ticks_the_step_and_downloading_its_code_unlocks_ai_developer(api, owner, tenant_a):
    """Recorded model answers."""
    task = create(api, owner).body
    assert not done(tenant_a) & {PASSED, DOWNLOADED}  # asked for is not done
    finished = run_queued(tenant_a)
    assert finished.status == "completed" and finished.quality["tests_passed"] == 1
    assert PASSED in done(tenant_a)
    ticked = StepDone.objects.get(tenant_id=tenant_a.tenant.pk, step=PASSED)
    assert ticked.done_at == finished.completed_at

    # Reading the code (the API, the page) is not downloading it.
    assert api.get(f"/api/v1/tasks/{task['id']}/code", **owner).status_code == 200
    assert api.get(f"/api/v1/tasks/{task['id']}/status", **owner).status_code == 200
    assert DOWNLOADED not in done(tenant_a)
    assert 5 not in set(
        LevelUnlocked.objects.filter(tenant_id=tenant_a.tenant.pk).values_list("number", flat=True)
    )

    download = api.client.get(
        f"/api/v1/tasks/{task['id']}/download",
        HTTP_HOST=owner["host"],
        HTTP_AUTHORIZATION=f"Bearer {owner['token']}",
    )
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert DOWNLOADED in done(tenant_a)
    unlock = LevelUnlocked.objects.get(tenant_id=tenant_a.tenant.pk, number=5)
    level = api.get("/api/v1/journey", **owner).body["levels"][4]
    assert (level["name"], level["badge"]) == ("AI Developer", "🤖") and level["unlocked_at"]
    assert [(s["id"], s["done"]) for s in level["steps"]] == [(PASSED, True), (DOWNLOADED, True)]
    mail.outbox.clear()
    assert journey_unlock_email_send(unlock_id=unlock.pk) == 1
    assert journey_unlock_email_send(unlock_id=unlock.pk) == 0
    [message] = mail.outbox
    assert message.subject == "Achievement unlocked: 🤖 AI Developer"
    assert message.to == [tenant_a.owner_email]
    assert "Enterprise Master" in message.body  # what comes next

    # A second task and a second download tick and unlock nothing twice.
    second = create(api, owner, title="Again").body
    run_queued(tenant_a)
    api.client.get(
        f"/api/v1/tasks/{second['id']}/download",
        HTTP_HOST=owner["host"],
        HTTP_AUTHORIZATION=f"Bearer {owner['token']}",
    )
    assert StepDone.objects.filter(tenant_id=tenant_a.tenant.pk, step__in=[PASSED, DOWNLOADED]).count() == 2
    assert LevelUnlocked.objects.filter(tenant_id=tenant_a.tenant.pk, number=5).count() == 1
    text = journey_check(tenant_a)
    assert "✓ An agent task completes with its tests passing in the sandbox" in text
    assert "✓ Its code downloaded" in text


@needs_bwrap
@pytest.mark.parametrize(
    ("answers", "error"),
    [(TESTS_FAIL, "tests_failed"), (NO_PLAN, "analysis_invalid_json")],
    ids=["its-tests-fail", "no-plan"],
)
def test_a_failed_task_ticks_nothing_and_its_download_is_400(api, owner, tenant_a, answers, error):
    """Recorded model answers: the tests still fail after three attempts, or the model never
    gives a plan."""
    task = create(api, owner).body
    failed = run_queued(tenant_a, answers)
    assert failed.status == "failed" and failed.error.startswith(error)
    download = api.get(f"/api/v1/tasks/{task['id']}/download", **owner)
    assert download.status_code == 400 and download.body["error"] == "task_not_completed"
    assert not done(tenant_a) & {PASSED, DOWNLOADED}
    journey_check(tenant_a)


def test_downloading_a_queued_or_running_task_is_refused_and_ticks_nothing(api, owner, tenant_a, client):
    task = create(api, owner).body
    sign_in(client, tenant_a)

    def refused() -> None:
        download = api.get(f"/api/v1/tasks/{task['id']}/download", **owner)
        assert download.status_code == 400 and download.body["error"] == "task_not_completed"
        page = client.get(f"/tasks/{task['id']}/download/", HTTP_HOST=tenant_a.host, **HTML)
        assert page.status_code == 302 and page["Location"].endswith(f"/tasks/{task['id']}/")

    refused()  # queued
    with tenant_context(tenant_a.tenant):
        claimed = pipeline.task_claim(tenant=tenant_a.tenant)  # the worker takes it
    assert claimed is not None and claimed.status == "in_progress"
    refused()  # running
    assert not done(tenant_a) & {PASSED, DOWNLOADED}


@needs_bwrap
def test_the_task_pages_download_ticks_the_step(client: Client, tenant_a):
    """Recorded model answers; the download link of the task's page."""
    sign_in(client, tenant_a)
    created = client.post(
        "/tasks/new/",
        {"title": "Add two numbers", "description": "Write add(a, b).", "priority": "medium"},
        HTTP_HOST=tenant_a.host,
        **HTML,
    )
    assert created.status_code == 302
    task = run_queued(tenant_a)
    assert client.get(f"/tasks/{task.id}/", HTTP_HOST=tenant_a.host, **HTML).status_code == 200
    assert DOWNLOADED not in done(tenant_a)  # the page shows the code; it is not downloaded
    download = client.get(f"/tasks/{task.id}/download/", HTTP_HOST=tenant_a.host, **HTML)
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert {PASSED, DOWNLOADED} <= done(tenant_a)
    assert LevelUnlocked.objects.filter(tenant_id=tenant_a.tenant.pk, number=5).exists()


def test_journey_check_finds_a_task_passed_before_the_journey_and_backfill_ticks_it(tenant_a):
    """Rows written directly, as for a tenant whose task passed before the journey existed: a
    completed task whose validation passed counts; a completed one without a passed validation
    (a failed validation step only) does not."""
    tenant = tenant_a.tenant
    with tenant_context(tenant):
        agent = agent_default_get()
        now = timezone.now()
        unvalidated = DevelopmentTask.objects.create(
            title="Old", description="d", agent=agent, status="completed", completed_at=now
        )
        TaskStep.objects.create(task=unvalidated, name="validation", status="failed")
    journey_check(tenant_a)  # nothing passed: nothing missed

    with tenant_context(tenant):
        passed = DevelopmentTask.objects.create(
            title="Older", description="d", agent=agent, status="completed", completed_at=now
        )
        TaskStep.objects.create(task=passed, name="validation", attempt=2, status="completed")
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("journey_check", tenant.schema_name, stdout=out)
    assert f"[{PASSED}]  ← the records say done" in out.getvalue()
    assert f"[{DOWNLOADED}]  ← the records say" not in out.getvalue()

    call_command("journey_backfill", tenant.schema_name, stdout=StringIO(), stderr=StringIO())
    assert StepDone.objects.get(tenant_id=tenant.pk, step=PASSED).done_at == now
    assert DOWNLOADED not in done(tenant_a)  # downloads leave no record to backfill from
    journey_check(tenant_a)
