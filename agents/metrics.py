"""The coding agents' metrics, counted by the pipeline (``agents.pipeline``) in the worker that
runs it: tasks by the status they ended with, how long they ran, and model tokens."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Histogram

AGENT_TASKS = Counter(
    "leanvibe_agent_tasks",
    "Development tasks that ended, by status (completed, failed, cancelled).",
    ["status"],
)
AGENT_TASK_DURATION = Histogram(
    "leanvibe_agent_task_duration_seconds",
    "Seconds from a development task's start to its end.",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf")),
)
AGENT_TOKENS = Counter(
    "leanvibe_agent_tokens",
    "Model tokens of the agents' steps: prompt (input) and answer (output).",
    ["direction"],
)


def agent_task_ended(*, status: str, started_at: datetime | None, completed_at: datetime | None) -> None:
    AGENT_TASKS.labels(status=status).inc()
    if started_at is not None and completed_at is not None:
        AGENT_TASK_DURATION.observe(max(0.0, (completed_at - started_at).total_seconds()))


def agent_tokens_used(*, tokens_in: int, tokens_out: int) -> None:
    if tokens_in > 0:
        AGENT_TOKENS.labels(direction="input").inc(tokens_in)
    if tokens_out > 0:
        AGENT_TOKENS.labels(direction="output").inc(tokens_out)
