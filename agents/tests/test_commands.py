"""``manage.py agent_task create`` and ``watch``."""

from __future__ import annotations

import io
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from agents.management.commands.agent_task import progress_bar
from agents.models import DevelopmentTask
from agents.tests.test_tasks_api import run_queued

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@pytest.fixture(autouse=True)
def workspace(settings: Any, tmp_path: Path) -> Path:
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    return Path(settings.AGENTS_WORKSPACE_ROOT)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("agent_task", *args, stdout=out)
    return out.getvalue()


def test_progress_bar():
    assert progress_bar(0, width=10) == "[..........]   0%"
    assert progress_bar(50, width=10) == "[#####.....]  50%"
    assert progress_bar(100, width=10) == "[##########] 100%"


@needs_bwrap
@pytest.mark.django_db
def test_create_by_subdomain_then_watch_until_done(tenant_a):
    """Recorded model answers (the pipeline runs in process between the two commands)."""
    subdomain = tenant_a.tenant.schema_name
    out = run(
        "create",
        "--tenant",
        subdomain,
        "--title",
        "Add",
        "--description",
        "Write add(a, b).",
        "--priority",
        "high",
        "--requirement",
        "add(2, 3) == 5",
    )
    with tenant_context(tenant_a.tenant):
        task = DevelopmentTask.objects.get()
    assert (task.title, task.priority, task.requirements, task.status) == (
        "Add",
        "high",
        ["add(2, 3) == 5"],
        "queued",
    )
    assert f"Task {task.id} queued: Add" in out
    run_queued(tenant_a)
    watched = run("watch", str(task.id), "--tenant", tenant_a.id, "--interval", "0.01")
    lines = watched.splitlines()
    assert lines[0] == f"Add ({task.id})"
    assert "  > analysis (attempt 1)" in lines
    assert progress_bar(15) in lines and progress_bar(90) in lines
    assert lines[-1] == f"{progress_bar(100)} completed"


@pytest.mark.django_db
def test_watch_times_out_on_a_task_that_does_not_finish(tenant_a):
    run("create", "--tenant", tenant_a.id, "--title", "Add", "--description", "Write add(a, b).")
    with tenant_context(tenant_a.tenant):
        task = DevelopmentTask.objects.get()
    with pytest.raises(CommandError, match="Timed out"):
        run("watch", str(task.id), "--tenant", tenant_a.id, "--interval", "0.01", "--timeout", "0.05")


@pytest.mark.django_db
def test_unknown_tenant_task_project_and_bad_values_are_errors(tenant_a, tenant_b):
    with pytest.raises(CommandError, match="No organisation"):
        run("create", "--tenant", "nobody", "--title", "x", "--description", "y")
    with pytest.raises(CommandError, match="No project"):
        run("create", "--tenant", tenant_a.id, "--title", "x", "--description", "y", "--project", "nope")
    with pytest.raises(CommandError, match="priority"):
        run("create", "--tenant", tenant_a.id, "--title", "x", "--description", "y", "--priority", "asap")
    with pytest.raises(CommandError, match=r"(?i)title|blank"):
        run("create", "--tenant", tenant_a.id, "--title", " ", "--description", "y")
    run("create", "--tenant", tenant_a.id, "--title", "A's", "--description", "y")
    with tenant_context(tenant_a.tenant):
        task = DevelopmentTask.objects.get()
    # Another tenant's task is unknown there.
    with pytest.raises(CommandError, match="No task"):
        run("watch", str(task.id), "--tenant", tenant_b.id)
    with pytest.raises(CommandError, match="No task"):
        run("watch", str(uuid.uuid4()), "--tenant", tenant_a.id)
