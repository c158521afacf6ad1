"""End to end in headless Chromium: a member creates a development task on the new task page and
watches it finish on the task's page (progress bar, step timeline, streamed output), then sees
the highlighted files and the quality report.

Everything is real: pytest-django's live server, a Celery worker on this run's queue (a thread
of this process) running the pipeline and the sandbox, with recorded model answers (the tenant's
"Coder" profile replays ``recorded_answers.SCRIPTS["Coder"]`` through ``AGENTS_BACKEND_FACTORY``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from agents.models import DevelopmentTask
from agents.services import agent_create
from leanvibe.tests.browser import (
    ARTIFACTS,
    BROWSER_MARKS,
    chromium,
    expect,
    new_page,
    provision,
    sign_in,
    tenant_origin,
)
from tenants.tests.test_tasks import celery_worker  # noqa: F401 - the fixture

PASSWORD = "orbital-mechanics-42"
OWNER = "ada@analytical.example"

pytestmark = [
    *BROWSER_MARKS,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed"),
]


def test_member_creates_a_task_and_watches_it_finish(
    site_url: str,
    celery_worker: Any,  # noqa: F811
    settings: Any,
    tmp_path: Path,
) -> None:
    settings.AGENTS_BACKEND_FACTORY = "agents.tests.recorded_answers.backend_for_agent"
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    tenant = provision("Analytical Engines", OWNER, PASSWORD)
    with tenant_context(tenant):
        agent_create(name="Coder", model="recorded")
    origin = tenant_origin(site_url, tenant)
    failed: list[str] = []

    with chromium() as browser:
        context, page = new_page(browser, failed)
        sign_in(page, origin, OWNER, PASSWORD)
        expect(page).to_have_url(f"{origin}/")
        expect(page.locator("#latest-tasks")).to_contain_text("No tasks yet")
        page.goto(f"{origin}/tasks/")
        expect(page.locator("#tasks-empty")).to_contain_text("No tasks")
        page.get_by_role("link", name="New task").first.click()
        expect(page).to_have_url(f"{origin}/tasks/new/")

        # An inline error first, then the task.
        page.get_by_role("button", name="Start task").click()
        expect(page.locator(".field.has-error").first).to_contain_text("This field is required.")
        page.get_by_label("Title").fill("Add two numbers")
        page.get_by_label("What should the agent build?").fill("Write add(a, b) returning the sum.")
        page.get_by_label("Requirements").fill("add(2, 3) == 5")
        page.get_by_role("button", name="Start task").click()
        expect(page).to_have_url(re.compile(rf"^{re.escape(origin)}/tasks/[0-9a-f-]{{36}}/$"))

        # Live: steps appear and the model's output streams in before the task is done.
        expect(page.locator("#task-steps li").first).to_be_visible()
        expect(page.locator("#model-output")).to_contain_text("plan")
        page.screenshot(path=str(ARTIFACTS / "task-running.png"), full_page=True)

        # Done: the page reloads with the files and the quality report.
        expect(page.locator("#task-status-badge")).to_have_text("Completed", timeout=90_000)
        expect(page.locator("#task-progress-value")).to_have_text("100%")
        expect(page.locator("#task-progress-fill")).to_have_attribute("width", "100%")
        expect(page.locator("#files summary code")).to_have_text(
            ["README.md", "solution.py", "test_solution.py"]
        )
        page.locator('details[data-path="solution.py"] summary').click()
        expect(page.locator('details[data-path="solution.py"] pre span.k').first).to_be_visible()
        expect(page.locator("#q-tests-passed")).to_have_text("1")
        expect(page.locator("#task-steps li")).to_have_count(6)
        expect(page.locator("#task-download")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "task-completed.png"), full_page=True)

        page.goto(f"{origin}/tasks/")
        expect(page.locator("#task-list .task-status")).to_have_text(["Completed"])
        context.close()

    assert failed == []
    with tenant_context(tenant):
        task = DevelopmentTask.objects.get()
        assert (task.status, task.progress, task.requirements) == ("completed", 100, ["add(2, 3) == 5"])
