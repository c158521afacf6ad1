"""A worker killed mid-task (SIGKILL of the whole worker, as when its machine dies): the task is
not left ``in_progress`` for ever. Nothing of the worker survives to say so, so beat's sweep
finds the task by its stale heartbeat, requeues it, and a new worker runs it to the end.

The workers are real Celery worker processes (``celery -A leanvibe worker``) on this test run's
private queue and database; the model answers are recorded ones, streamed slowly enough for
the kill to land inside a step (``recorded-slow``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django_tenants.utils import tenant_context

from agents import tasks
from agents.models import DevelopmentTask, TaskEvent, TaskStep
from agents.services import agent_create, task_create
from tenants import schemas
from tenants.models import PooledSchema, Tenant
from tenants.services import tenant_provision
from tenants.tests.test_tasks import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed"),
]

RECORDED = "agents.tests.recorded_answers.backend_for_agent"


def _test_database_url() -> str:
    """DATABASE_URL of the process, pointed at this run's test database."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return url._replace(path="/" + django_settings.DATABASES["default"]["NAME"]).geturl()


class WorkerProcess:
    def __init__(self, queue: str, workspace: Path) -> None:
        self.log = tempfile.NamedTemporaryFile("w+", prefix="agents-worker-", suffix=".log", delete=False)  # noqa: SIM115
        env = {
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "CACHE_KEY_PREFIX": django_settings.CACHE_KEY_PREFIX,
            "AGENTS_BACKEND_FACTORY": RECORDED,
            "AGENTS_WORKSPACE_ROOT": str(workspace),
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        }
        command = [sys.executable, "-m", "celery", "-A", "leanvibe", "worker", "--queues", queue]
        command += ["--pool", "solo", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        command += ["--without-heartbeat", "--hostname", f"killed-{os.getpid()}-{time.monotonic_ns()}@%h"]
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=django_settings.BASE_DIR,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while "ready." not in Path(self.log.name).read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start: {Path(self.log.name).read_text()[-2000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture
def committed(transactional_db: None, settings: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Committed data a worker process can see; every tenant and schema made here dropped after."""
    from leanvibe.celery import app

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.TENANT_POOL_SIZE = 0
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    queue = app.conf.task_default_queue
    assert queue.startswith("lvtest-"), queue  # never a real deployment's queue
    app.control.purge()
    workers: list[WorkerProcess] = []
    try:
        yield {"queue": queue, "workers": workers, "workspace": tmp_path / "workspace"}
    finally:
        for worker in workers:
            worker.stop()
        app.control.purge()
        connections.close_all()
        for tenant in Tenant.objects.all():
            tenant.delete(force_drop=True)
        for pooled in PooledSchema.objects.all():
            schemas.schema_drop(pooled.schema_name)
            pooled.delete()


def test_a_task_of_a_killed_worker_is_requeued_by_the_sweep_and_finished_by_another(committed, settings):
    """Recorded model answers, streamed slowly."""
    tenant = tenant_provision(
        organization_name="Killed Inc",
        billing_email="owner@killed.test",
        admin_email="owner@killed.test",
        admin_password="correct-horse-battery",
    ).tenant
    first = WorkerProcess(committed["queue"], committed["workspace"])
    committed["workers"].append(first)
    with tenant_context(tenant):
        agent = agent_create(name="recorded-slow", model="recorded")
        task = task_create(tenant=tenant, title="Add", description="Write add(a, b).", agent=agent)

        def in_architecture() -> bool:
            return TaskStep.objects.filter(task=task, name="architecture", status="running").exists()

        wait_for(in_architecture, "the worker to be inside the architecture step", timeout=90)
    first.kill()  # no warm shutdown: nothing of the worker runs after this
    with tenant_context(tenant):
        task.refresh_from_db()
        assert task.status == DevelopmentTask.Status.IN_PROGRESS and task.runs == 1
        stuck_at = task.heartbeat_at

    # Beat's sweep, once the heartbeat is older than the timeout: requeued, and a message sent.
    settings.AGENTS_HEARTBEAT_TIMEOUT = 1
    time.sleep(1.5)
    tasks.agent_tasks_sweep.apply()
    with tenant_context(tenant):
        task.refresh_from_db()
        assert task.status == DevelopmentTask.Status.QUEUED
        lost = TaskEvent.objects.filter(task=task, type="status", data__reason="worker_lost")
        assert lost.count() == 1

    settings.AGENTS_HEARTBEAT_TIMEOUT = 600  # the second worker's run must not be swept
    second = WorkerProcess(committed["queue"], committed["workspace"])
    committed["workers"].append(second)
    with tenant_context(tenant):

        def finished() -> bool:
            task.refresh_from_db()
            return task.is_finished

        wait_for(finished, "the requeued task to finish on the second worker", timeout=120)
        assert task.status == DevelopmentTask.Status.COMPLETED, task.error
        assert task.runs == 2
        assert stuck_at is not None and task.heartbeat_at is not None and task.heartbeat_at > stuck_at
        # The killed run's architecture step stays as it was left; the second run did every step.
        assert TaskStep.objects.filter(task=task, name="architecture").count() == 2
        assert TaskStep.objects.filter(task=task, name="validation", status="completed").exists()
