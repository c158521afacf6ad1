"""The coding-agent pipeline (agents/pipeline.py) in the test's transaction: the real tenant
schema, Redis, sandbox (bubblewrap) and, for the plumbing, the real tiny mlx model.

Tests whose docstring says "recorded model answers" drive the pipeline with ``RecordedBackend``:
answers a capable model would give, written down in ``recorded_answers.py`` or in the test and
replayed through the real ``ModelBackend`` interface (streamed in chunks with token counts). The
tiny model's output is random, so with it a task honestly fails at the analysis (no JSON plan).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from agents import pipeline
from agents.events import task_stream_read
from agents.inference.recorded import RecordedAnswer, RecordedBackend
from agents.models import Agent, Artifact, DevelopmentTask, TaskEvent, TaskStep
from agents.selectors import task_events_after, task_get
from agents.services import agent_create, task_cancel, task_create
from agents.tests import recorded_answers as rec
from tenants.usage import period_usage

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@pytest.fixture(autouse=True)
def workspace(settings: Any, tmp_path: Path) -> Path:
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "workspace"
    return Path(settings.AGENTS_WORKSPACE_ROOT)


@pytest.fixture
def tenant(make_tenant: Any) -> Iterator[Any]:
    handle = make_tenant("Acme Agents")
    with tenant_context(handle.tenant):
        yield handle.tenant


@pytest.fixture
def agent(tenant: Any) -> Agent:
    return agent_create(name="Recorded", model="recorded", parameters={"max_tokens": 256})


def task_new(tenant: Any, agent: Agent, title: str = "Add two numbers") -> DevelopmentTask:
    return task_create(
        tenant=tenant,
        title=title,
        description="Write add(a, b) returning the sum of two integers.",
        requirements=["add(2, 3) == 5"],
        agent=agent,
    )


def run(
    tenant: Any, agent: Agent, answers: list[Any], **backend_kw: Any
) -> tuple[DevelopmentTask, RecordedBackend]:
    task = task_new(tenant, agent)
    claimed = pipeline.task_claim(tenant=tenant)
    assert claimed is not None and claimed.id == task.id
    backend = RecordedBackend(answers, **backend_kw)
    pipeline.task_execute(tenant=tenant, task=claimed, backend=backend)
    claimed.refresh_from_db()
    return claimed, backend


def steps(task: DevelopmentTask) -> list[tuple[str, int, str]]:
    return list(TaskStep.objects.filter(task=task).order_by("id").values_list("name", "attempt", "status"))


@needs_bwrap
@pytest.mark.django_db
def test_fail_fail_pass_completes_on_the_third_attempt(
    tenant, agent, workspace, django_capture_on_commit_callbacks
):
    """Recorded model answers: the first code and the first fix fail their test, the second fix
    passes; the pytest output goes back to the model each time."""
    answers = [rec.PLAN, rec.DESIGN, rec.CODE_BAD, rec.TESTS, rec.CODE_BAD, rec.CODE_GOOD, rec.README]
    with django_capture_on_commit_callbacks(execute=True):
        task, backend = run(tenant, agent, answers)

    assert task.status == DevelopmentTask.Status.COMPLETED, task.error
    assert task.progress == 100 and task.attempts == 3 and task.error == ""
    assert steps(task) == [
        ("analysis", 1, "completed"),
        ("architecture", 1, "completed"),
        ("implementation", 1, "completed"),
        ("tests", 1, "completed"),
        ("validation", 1, "failed"),
        ("fix", 2, "completed"),
        ("validation", 2, "failed"),
        ("fix", 3, "completed"),
        ("validation", 3, "completed"),
        ("documentation", 1, "completed"),
    ]
    fix_prompt = backend.calls[4][-1]["content"]
    assert "exited with code 1" in fix_prompt and "assert -1 == 5" in fix_prompt
    assert task.quality["tests_passed"] == 1 and task.quality["tests_failed"] == 0
    assert task.quality["attempts"] == 3 and task.quality["coverage"] is None
    assert task.quality["lint_findings"] == 0

    # Every model call is one recorded step with its prompt, answer and tokens, and one ai_request.
    model_steps = TaskStep.objects.filter(task=task).exclude(name="validation")
    assert model_steps.count() == len(answers) == len(backend.calls)
    for step in model_steps:
        assert step.prompt and step.output and step.tokens_in > 0 and step.tokens_out > 0
        assert step.finished_at is not None
    assert period_usage(tenant, "ai_requests") == len(answers)

    artifacts = {a.path: a for a in Artifact.objects.filter(task=task)}
    assert {p: a.kind for p, a in artifacts.items()} == {
        "solution.py": "code",
        "test_solution.py": "test",
        "README.md": "doc",
    }
    assert "a + b" in artifacts["solution.py"].content
    folder = workspace / tenant.schema_name / str(task.id)
    assert (folder / "solution.py").read_text() == artifacts["solution.py"].content
    assert (folder / "README.md").read_text().startswith("# add")
    assert not any((workspace / ".runs").iterdir())  # run folders are removed

    # Events: contiguous, replayable rows, and the same entries on the task's Redis Stream.
    events = list(TaskEvent.objects.filter(task=task).order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    types = [e.type for e in events]
    assert types[0] == "status" and types[-1] == "done" and events[-1].data["status"] == "completed"
    step_events = [e.data for e in events if e.type == "step"]
    assert [d["status"] for d in step_events].count("running") == 10 and len(step_events) == 20
    # Each validation says how long it spent in the sandbox, within the step's own duration.
    validations = [e.data for e in events if e.type == "validation"]
    durations = TaskStep.objects.filter(task=task, name="validation").order_by("attempt")
    for data, step in zip(validations, durations, strict=True):
        assert 0 < data["sandbox_ms"] <= step.duration_ms + 1
    assert [e.data["progress"] for e in events if e.type == "progress"] == [15, 25, 50, 65, 80, 90]
    assert list(task_events_after(task=task, seq=len(events) - 2)) == events[-2:]
    assert task_get(str(task.id)) == task and task_get("not-a-uuid") is None
    streamed = task_stream_read(schema_name=tenant.schema_name, task_id=task.id)
    assert [(e["seq"], e["type"]) for e in streamed] == [(e.seq, e.type) for e in events]


def _synchronous_commit() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


@needs_bwrap
@pytest.mark.django_db
def test_the_runs_writes_skip_the_wal_flush_and_the_setting_is_put_back(tenant, agent):
    """Recorded model answers. Progress commits are asynchronous during the run only."""
    before = _synchronous_commit()
    seen: list[str] = []
    design = RecordedAnswer(rec.DESIGN, on_chunk=lambda index: seen.append(_synchronous_commit()))
    task, _ = run(tenant, agent, [rec.PLAN, design, rec.CODE_GOOD, rec.TESTS, rec.README])

    assert task.status == DevelopmentTask.Status.COMPLETED, task.error
    assert seen and set(seen) == {"off"}
    assert _synchronous_commit() == before


@needs_bwrap
@pytest.mark.django_db
def test_three_failures_fail_the_task_with_three_attempt_records(tenant, agent):
    """Recorded model answers: the code and both fixes keep the bug."""
    task, backend = run(
        tenant, agent, [rec.PLAN, rec.DESIGN, rec.CODE_BAD, rec.TESTS, rec.CODE_BAD, rec.CODE_BAD]
    )

    assert task.status == DevelopmentTask.Status.FAILED
    assert task.error.startswith("tests_failed: the tests still fail after 3 attempts")
    assert task.attempts == 3 and task.progress == 65
    validations = TaskStep.objects.filter(task=task, name="validation").order_by("attempt")
    assert [(s.attempt, s.status) for s in validations] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert all("1 failed" in s.output for s in validations)
    assert task.quality["tests_failed"] == 1 and task.quality["attempts"] == 3
    assert not Artifact.objects.filter(task=task, kind="doc").exists()
    assert backend.remaining == 0
    assert period_usage(tenant, "ai_requests") == 6


@needs_bwrap
@pytest.mark.django_db
def test_invalid_json_plan_is_repaired_by_one_more_request(tenant, agent):
    """Recorded model answers: prose instead of a plan, then the plan when asked again."""
    answers = ["I would write a function.", rec.PLAN, rec.DESIGN, rec.CODE_GOOD, rec.TESTS, rec.README]
    task, backend = run(tenant, agent, answers)

    assert task.status == DevelopmentTask.Status.COMPLETED, task.error
    assert [s[:2] for s in steps(task)][:3] == [("analysis", 1), ("analysis_repair", 2), ("architecture", 1)]
    repair_prompt = backend.calls[1][-1]["content"]
    assert "not a valid plan" in repair_prompt and '"files"' in repair_prompt
    assert backend.calls[1][-2] == {"role": "assistant", "content": "I would write a function."}
    assert task.attempts == 1 and task.quality["plan"]["files"] == ["solution.py"]
    assert period_usage(tenant, "ai_requests") == 6


@needs_bwrap
@pytest.mark.django_db
def test_invalid_json_twice_fails_the_task_with_the_reason(tenant, agent):
    """Recorded model answers: no valid plan, even after the repair request (no canned plan)."""
    task, _ = run(tenant, agent, ["no plan", '{"files": ["a.py"], "functions": '])

    assert task.status == DevelopmentTask.Status.FAILED
    assert task.error.startswith("analysis_invalid_json: no valid JSON plan after one repair request")
    assert steps(task) == [("analysis", 1, "completed"), ("analysis_repair", 2, "completed")]
    assert task.progress == 0 and not Artifact.objects.filter(task=task).exists()
    assert period_usage(tenant, "ai_requests") == 2
    last = TaskEvent.objects.filter(task=task).order_by("seq").last()
    assert last is not None and last.data == {
        "status": "failed",
        "error": task.error,
        "progress": 0,
    }


@needs_bwrap
@pytest.mark.django_db
def test_cancel_mid_stream_stops_within_two_seconds(tenant, agent):
    """Recorded model answers: the design answer streams slowly (about 10 s); the user cancels
    while it streams."""
    cancelled_at: list[float] = []

    def cancel_at_chunk(index: int) -> None:
        if index == 5:
            task_cancel(task=DevelopmentTask.objects.get())
            cancelled_at.append(time.monotonic())

    slow = RecordedAnswer("design " * 200, on_chunk=cancel_at_chunk)
    task, backend = run(tenant, agent, [rec.PLAN, slow, rec.CODE_GOOD], chunk_chars=8, chunk_delay=0.05)
    stopped = time.monotonic() - cancelled_at[0]

    assert task.status == DevelopmentTask.Status.CANCELLED and task.cancel_requested
    assert stopped < 2, stopped
    assert steps(task) == [("analysis", 1, "completed"), ("architecture", 1, "cancelled")]
    partial = TaskStep.objects.get(task=task, name="architecture").output
    assert 0 < len(partial) < len(slow.text)
    assert backend.remaining == 1  # the implementation was never asked for
    types = list(TaskEvent.objects.filter(task=task).values_list("type", flat=True))
    assert "cancel_requested" in types and types[-1] == "done"


@pytest.mark.django_db
def test_cancel_of_a_queued_task_is_immediate_and_it_never_starts(tenant, agent):
    task = task_new(tenant, agent)
    task_cancel(task=task)
    assert task.status == DevelopmentTask.Status.CANCELLED
    assert pipeline.task_claim(tenant=tenant) is None


@pytest.mark.django_db
def test_sandbox_unavailable_fails_the_task_before_any_model_call(tenant, agent, settings, tmp_path):
    """Recorded model answers (never asked: the missing sandbox is found first)."""
    settings.SANDBOX_BWRAP = str(tmp_path / "no-such-bwrap")
    task, backend = run(tenant, agent, rec.COMPLETES_FIRST_TIME)

    assert task.status == DevelopmentTask.Status.FAILED
    assert task.error.startswith("sandbox_unavailable")
    assert backend.calls == [] and period_usage(tenant, "ai_requests") == 0


@needs_bwrap
@pytest.mark.django_db
def test_generated_paths_outside_the_folder_are_refused(tenant, agent, workspace, tmp_path):
    """Recorded model answers: the implementation tries to write outside its folder."""
    evil = (
        "```python path=../escape.py\nX = 1\n```\n"
        f"```python path={tmp_path}/absolute.py\nX = 1\n```\n"
        "```python path=pkg/../../up.py\nX = 1\n```\n"
        "```python path=.hidden.py\nX = 1\n```\n" + rec.CODE_GOOD
    )
    task, _ = run(tenant, agent, [rec.PLAN, rec.DESIGN, evil, rec.TESTS, rec.README])

    assert task.status == DevelopmentTask.Status.COMPLETED, task.error
    assert sorted(Artifact.objects.filter(task=task).values_list("path", flat=True)) == [
        "README.md",
        "solution.py",
        "test_solution.py",
    ]
    refused = [
        e.data["path"] for e in TaskEvent.objects.filter(task=task, type="file_refused").order_by("seq")
    ]
    assert refused == ["../escape.py", f"{tmp_path}/absolute.py", "pkg/../../up.py", ".hidden.py"]
    assert "refused paths: ../escape.py" in TaskStep.objects.get(task=task, name="implementation").error
    for leaked in (workspace / tenant.schema_name / "escape.py", workspace / "up.py", tmp_path / "up.py"):
        assert not leaked.exists()
    assert not (tmp_path / "absolute.py").exists()


@needs_bwrap
@pytest.mark.django_db
def test_only_refused_files_fail_the_implementation(tenant, agent):
    """Recorded model answers: every file has a bad path."""
    task, _ = run(tenant, agent, [rec.PLAN, rec.DESIGN, "```python path=../x.py\nX = 1\n```"])
    assert task.status == DevelopmentTask.Status.FAILED
    assert task.error.startswith("implementation_no_files")


@pytest.mark.parametrize(
    "path", ["../a.py", "/etc/passwd", "a/../../b.py", "a\\b.py", "C:x.py", ".env", "a//b.py", "-rf.py", ""]
)
def test_path_check_refuses(path):
    with pytest.raises(ValueError):
        pipeline.path_check(path)


@pytest.mark.parametrize("path", ["solution.py", "pkg/mod.py", "tests/test_x.py", "README.md"])
def test_path_check_accepts(path):
    assert pipeline.path_check(path) == path


def test_plan_parse_takes_fenced_or_bare_json_and_says_what_is_wrong():
    assert pipeline.plan_parse(rec.PLAN)["files"] == ["solution.py"]
    assert pipeline.plan_parse('ok {"files": [], "functions": [], "test_cases": []} done')["files"] == []
    with pytest.raises(ValueError, match="no list functions, test_cases"):
        pipeline.plan_parse('{"files": []}')
    with pytest.raises(ValueError, match="no JSON object"):
        pipeline.plan_parse("nothing")


@needs_bwrap
@pytest.mark.django_db
def test_starter_plan_runs_one_task_at_a_time_in_creation_order(tenant, agent):
    """Recorded model answers (two plans that fail validation early keep the test fast)."""
    first = task_new(tenant, agent, "first")
    second = task_new(tenant, agent, "second")

    claimed = pipeline.task_claim(tenant=tenant)
    assert claimed is not None and claimed.id == first.id
    assert pipeline.task_claim(tenant=tenant) is None  # starter: one at a time
    assert pipeline.tasks_startable(tenant=tenant) == []
    second.refresh_from_db()
    assert second.status == DevelopmentTask.Status.QUEUED

    pipeline.task_execute(tenant=tenant, task=claimed, backend=RecordedBackend(["x", "y"]))
    assert claimed.status == DevelopmentTask.Status.FAILED
    assert pipeline.tasks_startable(tenant=tenant) == [second.id]
    nxt = pipeline.task_claim(tenant=tenant)
    assert nxt is not None and nxt.id == second.id and nxt.status == DevelopmentTask.Status.IN_PROGRESS


@pytest.mark.django_db
def test_professional_plan_runs_three_at_once(make_tenant):
    handle = make_tenant("Pro Co", plan="professional")
    with tenant_context(handle.tenant):
        agent = agent_create(name="A", model="m")
        tasks = [task_new(handle.tenant, agent, f"t{i}") for i in range(4)]
        claimed = [pipeline.task_claim(tenant=handle.tenant) for _ in range(4)]
        assert [c.id if c else None for c in claimed] == [t.id for t in tasks[:3]] + [None]


@pytest.mark.django_db
def test_sweep_requeues_a_lost_task_once_then_fails_it(tenant, agent, settings):
    settings.AGENTS_HEARTBEAT_TIMEOUT = 60
    task = task_new(tenant, agent)
    assert pipeline.task_claim(tenant=tenant) is not None
    assert pipeline.tasks_lost_sweep() == []  # fresh heartbeat: left alone

    old = timezone.now() - timedelta(seconds=61)
    DevelopmentTask.objects.filter(id=task.id).update(heartbeat_at=old)
    assert pipeline.tasks_lost_sweep() == [task.id]
    task.refresh_from_db()
    assert task.status == DevelopmentTask.Status.QUEUED and task.runs == 1

    again = pipeline.task_claim(tenant=tenant)  # the worker that picks it up again
    assert again is not None and again.id == task.id
    DevelopmentTask.objects.filter(id=task.id).update(heartbeat_at=old)
    assert pipeline.tasks_lost_sweep() == []
    task.refresh_from_db()
    assert task.status == DevelopmentTask.Status.FAILED and task.runs == 2
    assert task.error.startswith("worker_lost")


@pytest.mark.django_db
def test_task_create_validates(tenant, agent):
    from leanvibe.errors import DomainError

    with pytest.raises(DomainError) as excinfo:
        task_create(tenant=tenant, title="", description="x", agent=agent)
    assert excinfo.value.code == "invalid_task"
    with pytest.raises(DomainError) as excinfo:
        task_create(tenant=tenant, title="t", description="x", requirements=[""], agent=agent)
    assert excinfo.value.code == "invalid_requirements"
    with pytest.raises(DomainError):
        task_create(tenant=tenant, title="t", description="x", priority="whenever", agent=agent)
    default = task_create(tenant=tenant, title="t", description="d").agent
    assert default.name == "Coder" and default.backend == "mlx"


# --- the real tiny model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mlx_lm")
    from agents.inference.tiny_model import tiny_model_build

    return tiny_model_build(tmp_path_factory.mktemp("tiny") / "tiny-qwen2")


@needs_bwrap
@pytest.mark.django_db
def test_tiny_model_task_fails_honestly_at_the_analysis(tenant, tiny_model):
    """The real tiny model through MlxBackend: random ASCII, never a JSON plan, so the analysis
    and its repair are recorded and the task fails with the reason."""
    from agents.inference.backends import MlxBackend

    agent = agent_create(name="Tiny", model=str(tiny_model), parameters={"max_tokens": 48})
    task = task_new(tenant, agent)
    claimed = pipeline.task_claim(tenant=tenant)
    assert claimed is not None
    pipeline.task_execute(tenant=tenant, task=claimed, backend=MlxBackend(tiny_model))
    task.refresh_from_db()

    assert task.status == DevelopmentTask.Status.FAILED
    assert task.error.startswith("analysis_invalid_json")
    recorded = list(TaskStep.objects.filter(task=task).order_by("id"))
    assert [(s.name, s.attempt) for s in recorded] == [("analysis", 1), ("analysis_repair", 2)]
    assert all(s.tokens_out == 48 and s.tokens_in > 0 and len(s.output) > 0 for s in recorded)
    assert recorded[1].tokens_in > recorded[0].tokens_in  # the repair carries the first answer
    tokens = TaskEvent.objects.filter(task=task, type="tokens")
    assert 2 <= tokens.count() < 2 * 48  # batched, not one event per token
    assert "".join(e.data["text"] for e in tokens) == recorded[0].output + recorded[1].output
    assert period_usage(tenant, "ai_requests") == 2


@needs_bwrap
@pytest.mark.django_db
def test_used_up_ai_requests_fail_the_task_without_calling_the_model(tenant, agent):
    """Recorded model answers (never asked: the starter plan's 100 AI requests are used up)."""
    from tenants.usage import usage_record

    usage_record(tenant=tenant, metric="ai_requests", quantity=100)
    task, backend = run(tenant, agent, rec.COMPLETES_FIRST_TIME)
    assert task.status == DevelopmentTask.Status.FAILED
    assert task.error.startswith("quota_exceeded")
    assert backend.calls == [] and period_usage(tenant, "ai_requests") == 100
    assert steps(task) == [("analysis", 1, "failed")]


@pytest.mark.django_db
def test_a_backend_the_worker_cannot_build_fails_the_task(tenant, tmp_path, settings):
    """No backend passed: the default factory builds it from the profile (like the worker): an
    HTTP profile with no server URL (its own or AGENTS_INFERENCE_URL), a missing model folder."""
    settings.AGENTS_INFERENCE_URL = ""
    for agent in (
        agent_create(name="Remote", model="qwen", backend="http", base_url=""),
        agent_create(name="Missing", model=str(tmp_path / "no-model")),
    ):
        task = task_new(tenant, agent)
        claimed = pipeline.task_claim(tenant=tenant)
        assert claimed is not None and claimed.id == task.id
        pipeline.task_execute(tenant=tenant, task=claimed)
        assert claimed.status == DevelopmentTask.Status.FAILED
        assert claimed.error.startswith("backend_unavailable")


@needs_bwrap
@pytest.mark.django_db
def test_every_prompt_extends_the_last_one_by_its_answer_and_one_request(tenant, agent):
    """Recorded model answers. One conversation per task, opened by the worked example: a
    backend's prompt cache (``session()``) then reads only the new messages at each step."""
    task, backend = run(tenant, agent, rec.COMPLETES_FIRST_TIME)
    assert task.status == DevelopmentTask.Status.COMPLETED, task.error
    first = backend.calls[0]
    assert first[: len(pipeline.EXAMPLE) + 1] == [
        {"role": "system", "content": pipeline.SYSTEM_PROMPT},
        *pipeline.EXAMPLE,
    ]
    assert first[-1]["content"].startswith("Task: Add two numbers\n\n")
    model_steps = list(TaskStep.objects.filter(task=task).exclude(name="validation").order_by("id"))
    assert len(model_steps) == len(backend.calls) == 5
    for before, after, step in zip(backend.calls, backend.calls[1:], model_steps, strict=False):
        assert after[: len(before)] == before
        assert after[len(before) : -1] == [{"role": "assistant", "content": step.output}]
        assert after[-1]["role"] == "user"
    assert all(s.prompt.startswith("[system]\n" + pipeline.SYSTEM_PROMPT) for s in model_steps)


@needs_bwrap
@pytest.mark.django_db
def test_the_workspace_files_count_in_the_tenants_storage(tenant, agent, workspace):
    """Recorded model answers: a completed task's files on disk are in the storage quota."""
    from agents.registrations import workspace_bytes
    from tenants.usage import storage_bytes

    assert workspace_bytes(tenant) == 0
    before = storage_bytes(tenant)
    task, _ = run(tenant, agent, rec.COMPLETES_FIRST_TIME)
    assert task.status == DevelopmentTask.Status.COMPLETED, task.error

    on_disk = pipeline.workspace_dir(schema_name=tenant.schema_name, task_id=task.id)
    files = sum(path.stat().st_size for path in on_disk.rglob("*") if path.is_file())
    assert files > 0 and workspace_bytes(tenant) == files
    assert files == sum(Artifact.objects.filter(task=task).values_list("size", flat=True))
    assert storage_bytes(tenant) >= before + files  # the rows grew too
