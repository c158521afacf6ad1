"""The agents' metrics move when the pipeline really runs a task (recorded model answers through
the real ``ModelBackend`` interface, the real sandbox): tasks by final status, their duration,
and the model's tokens in and out."""

from __future__ import annotations

from typing import Any

import pytest

from agents.models import DevelopmentTask, TaskStep
from agents.tests import recorded_answers as rec
from agents.tests.test_pipeline import agent, needs_bwrap, run, tenant, workspace  # noqa: F401 - fixtures
from leanvibe.tests.metrics_helpers import value

TASKS = "leanvibe_agent_tasks_total"
DURATION = "leanvibe_agent_task_duration_seconds"
TOKENS = "leanvibe_agent_tokens_total"


@needs_bwrap
@pytest.mark.django_db
def test_a_completed_and_a_failed_task_count_with_their_duration_and_tokens(
    tenant: Any,  # noqa: F811
    agent: Any,  # noqa: F811
) -> None:
    before = {status: value(TASKS, status=status) for status in ("completed", "failed")}
    durations = value(f"{DURATION}_count")
    tokens_in, tokens_out = value(TOKENS, direction="input"), value(TOKENS, direction="output")

    done, _ = run(tenant, agent, [rec.PLAN, rec.DESIGN, rec.CODE_GOOD, rec.TESTS, rec.README])
    assert done.status == DevelopmentTask.Status.COMPLETED, done.error
    assert value(TASKS, status="completed") == before["completed"] + 1
    assert value(f"{DURATION}_count") == durations + 1
    used = TaskStep.objects.filter(task=done)
    assert value(TOKENS, direction="input") == tokens_in + sum(s.tokens_in or 0 for s in used)
    assert value(TOKENS, direction="output") == tokens_out + sum(s.tokens_out or 0 for s in used) > tokens_out

    failed, _ = run(tenant, agent, ["no plan", "still no plan"])
    assert failed.status == DevelopmentTask.Status.FAILED
    assert value(TASKS, status="failed") == before["failed"] + 1
    assert value(f"{DURATION}_count") == durations + 2
