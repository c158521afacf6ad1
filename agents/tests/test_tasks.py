"""The agents' Celery tasks through a real worker (a thread consuming this test run's private
queue, ``celery_worker`` from tenants/tests/test_tasks.py) against committed data.

The worker builds each task's backend with ``AGENTS_BACKEND_FACTORY``: the tests with recorded
model answers point it at ``agents.tests.recorded_answers.backend_for_agent``; the tiny-model
test keeps the real factory (``MlxBackend`` on the model folder of the Agent profile).
"""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from agents import tasks
from agents.models import Agent, DevelopmentTask, TaskEvent, TaskStep
from agents.services import agent_create, task_cancel, task_create
from tenants.models import Tenant
from tenants.services import tenant_provision
from tenants.tests.test_tasks import celery_worker, wait_for  # noqa: F401 - the fixture
from tenants.usage import period_usage

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed"),
]
RECORDED = "agents.tests.recorded_answers.backend_for_agent"


@pytest.fixture
def tenant(celery_worker: Any, settings: Any, tmp_path: Path) -> Tenant:  # noqa: F811
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    return tenant_provision(
        organization_name="Agents Inc",
        billing_email="owner@agents.test",
        admin_email="owner@agents.test",
        admin_password="correct-horse-battery",
    ).tenant


def finished(task: DevelopmentTask) -> DevelopmentTask | None:
    task.refresh_from_db()
    return task if task.is_finished else None


def new_task(tenant: Tenant, agent: Agent) -> DevelopmentTask:
    return task_create(tenant=tenant, title="Add", description="Write add(a, b).", agent=agent)


def test_worker_runs_a_task_to_completion(tenant, settings):
    """Recorded model answers, replayed by the backend the worker builds from the Agent profile."""
    settings.AGENTS_BACKEND_FACTORY = RECORDED
    with tenant_context(tenant):
        task = new_task(tenant, agent_create(name="recorded-ok", model="recorded"))
        wait_for(lambda: finished(task), "the task to finish")
        assert task.status == DevelopmentTask.Status.COMPLETED, task.error
        assert (task.progress, task.attempts, task.runs) == (100, 1, 1)
        assert task.started_at and task.heartbeat_at and task.completed_at
        assert task.quality["tests_passed"] == 1
        assert TaskStep.objects.filter(task=task).count() == 6
        folder = Path(settings.AGENTS_WORKSPACE_ROOT) / tenant.schema_name / str(task.id)
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "solution.py", "test_solution.py"]


def test_worker_runs_the_tiny_model_and_the_task_fails_at_the_analysis(tenant, tmp_path):
    """The real tiny model, loaded by the worker from the Agent profile's model folder."""
    pytest.importorskip("mlx_lm")
    from agents.inference.tiny_model import tiny_model_build

    model = tiny_model_build(tmp_path / "tiny-qwen2")
    with tenant_context(tenant):
        agent = agent_create(name="tiny", model=str(model), parameters={"max_tokens": 32})
        task = new_task(tenant, agent)
        wait_for(lambda: finished(task), "the task to finish")
        assert task.status == DevelopmentTask.Status.FAILED
        assert task.error.startswith("analysis_invalid_json")
        assert [s.tokens_out for s in TaskStep.objects.filter(task=task)] == [32, 32]


def test_worker_runs_the_tiny_model_over_http_and_the_task_fails_at_the_analysis(tenant, tmp_path, settings):
    """The real tiny model served by a real ``mlx_lm.server`` on a loopback port; the worker
    builds ``OpenAIBackend`` from an "http" Agent profile with that base URL. The model's output
    is random, so the analysis and its repair hold no JSON plan and the task fails honestly."""
    pytest.importorskip("mlx_lm")
    from agents.inference.tiny_model import tiny_model_build
    from agents.tests.test_backends import server_start, server_stop

    settings.OUTBOUND_ALLOW_PRIVATE = True  # loopback (the default outside production)
    process, base_url = server_start(tiny_model_build(tmp_path / "tiny-qwen2"), tmp_path / "server.log")
    try:
        with tenant_context(tenant):
            agent = agent_create(
                name="tiny-http",
                backend=Agent.Backend.HTTP,
                base_url=base_url,
                model="default_model",  # mlx_lm.server's name for the model it serves (--model)
                parameters={"max_tokens": 32},
            )
            task = new_task(tenant, agent)
            wait_for(lambda: finished(task), "the task to finish")
            steps = list(TaskStep.objects.filter(task=task).order_by("id"))
            usage = period_usage(tenant, "ai_requests")
    finally:
        server_stop(process)
    assert task.status == DevelopmentTask.Status.FAILED
    assert task.error.startswith("analysis_invalid_json: no valid JSON plan after one repair request")
    assert [(s.name, s.attempt, s.status) for s in steps] == [
        ("analysis", 1, "completed"),
        ("analysis_repair", 2, "completed"),
    ]
    # Token counts are the server's own (its usage event): the whole answer, the whole prompt.
    assert [s.tokens_out for s in steps] == [32, 32]
    assert 0 < steps[0].tokens_in < steps[1].tokens_in  # the repair carries the first answer
    assert all(s.output for s in steps)
    assert usage == 2


def test_cancel_through_the_worker_stops_within_two_seconds(tenant, settings):
    """Recorded model answers: a slowly streamed design, cancelled by the user meanwhile."""
    settings.AGENTS_BACKEND_FACTORY = RECORDED
    with tenant_context(tenant):
        task = new_task(tenant, agent_create(name="recorded-slow", model="recorded"))
        wait_for(
            lambda: TaskEvent.objects.filter(task=task, type="tokens", data__step="architecture").exists(),
            "the design to stream",
        )
        asked = time.monotonic()
        task_cancel(task=task)
        wait_for(lambda: finished(task), "the task to stop", timeout=10)
        assert time.monotonic() - asked < 2
        assert task.status == DevelopmentTask.Status.CANCELLED
        assert TaskStep.objects.get(task=task, name="architecture").status == "cancelled"


def test_sweep_requeues_a_dead_workers_task_and_the_worker_runs_it(tenant, settings):
    """Recorded model answers. A task left in progress by a killed worker (old heartbeat, no
    message left) is requeued by the beat sweep, which also sends the message that runs it."""
    settings.AGENTS_BACKEND_FACTORY = RECORDED
    settings.AGENTS_HEARTBEAT_TIMEOUT = 60
    with tenant_context(tenant):
        agent = agent_create(name="recorded-ok", model="recorded")
        task = task_create(
            tenant=tenant, title="Add", description="Write add(a, b).", agent=agent, start=False
        )
        DevelopmentTask.objects.filter(id=task.id).update(
            status=DevelopmentTask.Status.IN_PROGRESS,
            runs=1,
            heartbeat_at=timezone.now() - timedelta(minutes=5),
        )
    tasks.agent_tasks_sweep.delay()
    with tenant_context(tenant):
        wait_for(lambda: finished(task), "the requeued task to finish")
        assert task.status == DevelopmentTask.Status.COMPLETED, task.error
        assert task.runs == 2
        statuses = [e.data.get("status") for e in TaskEvent.objects.filter(task=task, type="status")]
        assert statuses == ["pending", "queued", "in_progress"]
