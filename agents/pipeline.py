"""The coding-agent pipeline: one development task from its description to tested files.

Steps (progress when done): analysis 15 % (a JSON plan) → architecture 25 % → implementation
50 % (code files) → tests 65 % (test files) → validation 80 % (compile, ruff, pytest in the
sandbox; a failure goes back to the model, at most ``MAX_ATTEMPTS`` validations) → documentation
90 % (README.md) → quality report → completed 100 %. Any failure ends the task ``failed`` with a
reason (``<code>: <sentence>``); a cancellation requested by ``task_cancel`` ends it ``cancelled``
within ``CANCEL_CHECK_SECONDS`` of a streamed chunk or at the next step.

Run by the worker (``agents.tasks``) in the tenant's schema, outside any transaction: each write
commits at once, so the task's progress and events are visible while it runs. The model is
whatever ``ModelBackend`` the caller passes, or the one ``AGENTS_BACKEND_FACTORY`` builds from the
task's Agent profile. Generated code never runs outside ``agents.sandbox.sandbox_run``.

Files from the model: one fenced block per file whose info string names the path, e.g.::

    ```python path=solution.py
    def add(a, b):
        return a + b
    ```

Paths must be relative, inside the run folder, made of ``[A-Za-z0-9_.-]`` parts joined by ``/``
(no ``..``, no absolute path, no backslash, no hidden part); others are refused (a
``file_refused`` event and the step's error), never written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from agents.events import task_event_append
from agents.journey import agent_task_passed_report
from agents.metrics import agent_task_ended, agent_tokens_used
from agents.models import Artifact, DevelopmentTask, TaskStep
from agents.sandbox import SandboxLimits, SandboxUnavailable, sandbox_check, sandbox_run
from leanvibe.errors import UsageLimitReached
from tenants.models import Tenant
from tenants.plans import Resource, limits_for
from tenants.usage import usage_record

if TYPE_CHECKING:
    from agents.inference.backends import Message, ModelBackend
    from agents.models import Agent

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
FEEDBACK_CHARS = 1200  # the end of pytest's output sent back (prefill is slow on CPU)
CANCEL_CHECK_SECONDS = 0.2
HEARTBEAT_SECONDS = 5.0
TOKEN_EVENT_CHARS = 256
TOKEN_EVENT_SECONDS = 0.5
DEFAULT_MAX_TOKENS = 1024
VALIDATION_LIMITS = SandboxLimits(wall_seconds=60, cpu_seconds=30)
PROGRESS = {
    "analysis": 15,
    "architecture": 25,
    "implementation": 50,
    "tests": 65,
    "validation": 80,
    "documentation": 90,
}

# Small models (SmolLM2-135M) follow a worked example far better than instructions: the
# conversation starts with the system prompt and ``EXAMPLE``, one whole task done the expected
# way (a different function, so what the model writes for the real task is its own). Every step
# then appends its short request and the model's answer to the same conversation, so a backend
# with a prompt cache (``MlxBackend.session()``) reads only the new messages at each step.
SYSTEM_PROMPT = "You are a Python coding agent. You write each file as a fenced code block with its path."

PLAN_REQUEST = "Plan it as JSON."
PLAN_FORMAT = (
    'Answer with one JSON object only: {"files": [<paths>], "functions": [<signatures>], '
    '"test_cases": [<one sentence each>]}.'
)

EXAMPLE: list[Message] = [
    {
        "role": "user",
        "content": "Task: a function mul(a, b) that returns the product, with pytest tests\n\n"
        + PLAN_REQUEST,
    },
    {
        "role": "assistant",
        "content": '{"files": ["mul.py", "test_mul.py"], "functions": ["mul(a, b)"], '
        '"test_cases": ["mul(2, 3) == 6"]}',
    },
    {"role": "user", "content": "Write the code."},
    {"role": "assistant", "content": "```python path=mul.py\ndef mul(a, b):\n    return a * b\n```"},
    {"role": "user", "content": "Write the pytest tests, checking: mul(2, 3) == 6"},
    {
        "role": "assistant",
        "content": "```python path=test_mul.py\nfrom mul import mul\n\ndef test_mul():\n"
        "    assert mul(2, 3) == 6\n```",
    },
]

#: The most tokens a step's answer may take, below the profile's ``max_tokens``: a plan, a design
#: or a README that runs on is cut short instead of costing minutes on a slow model.
STEP_MAX_TOKENS = {"analysis": 160, "analysis_repair": 160, "architecture": 96, "documentation": 192}


class TaskCancelled(Exception):
    pass


class TaskFailed(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        return str(self)


# --- parsing the model's answers -------------------------------------------------------------

_FENCED_JSON = re.compile(r"```(?:json)?[ \t]*\n(?P<body>.*?)\n```", re.S)
_FENCED_FILE = re.compile(
    r"^```[A-Za-z0-9_+.-]*[ \t]+path=(?P<path>[^\s`]+)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S
)
_FENCED_BLOCK_END = re.compile(r"^```[^\n`]*\n.*?^```[ \t]*$", re.M | re.S)
_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
PATH_MAX = 200
PATH_DEPTH = 6


def plan_parse(text: str) -> dict[str, list[Any]]:
    """The JSON plan in a model's answer (a fenced block or the outermost braces), checked to have
    ``files``, ``functions`` and ``test_cases`` lists. Raises ``ValueError`` saying what is wrong."""
    candidates = [m.group("body") for m in _FENCED_JSON.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    if not candidates:
        raise ValueError("the answer holds no JSON object")
    error = "the answer holds no JSON object"
    for candidate in candidates:
        try:
            plan = json.loads(candidate)
        except json.JSONDecodeError as exc:
            error = f"invalid JSON: {exc}"
            continue
        if not isinstance(plan, dict):
            error = "the JSON is not an object"
            continue
        missing = [key for key in ("files", "functions", "test_cases") if not isinstance(plan.get(key), list)]
        if missing:
            error = f"the JSON object has no list {', '.join(missing)}"
            continue
        return {key: plan[key] for key in ("files", "functions", "test_cases")}
    raise ValueError(error)


def path_check(path: str) -> str:
    """``path`` if it is a safe relative path inside the run folder, else ``ValueError``."""
    if not path or len(path) > PATH_MAX:
        raise ValueError("empty or too long")
    if path.startswith(("/", "~")) or "\\" in path or ":" in path or "\x00" in path:
        raise ValueError("absolute or not a plain relative path")
    parts = path.split("/")
    if len(parts) > PATH_DEPTH:
        raise ValueError("too deep")
    for part in parts:
        if part in ("", ".", ".."):
            raise ValueError("empty, '.' or '..' part")
        if not _PATH_PART.match(part):
            raise ValueError(f"part {part!r} is not [A-Za-z0-9_.-] (or starts with '.'/'-')")
    return path


@dataclass
class ParsedFiles:
    files: dict[str, str] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def files_parse(text: str) -> ParsedFiles:
    parsed = ParsedFiles()
    for match in _FENCED_FILE.finditer(text):
        raw = match.group("path")
        try:
            path = path_check(raw)
        except ValueError as exc:
            parsed.refused.append((raw[:PATH_MAX], str(exc)))
            continue
        parsed.files[path] = match.group("body") + "\n"
    return parsed


def artifact_kind(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    if (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or path.startswith("tests/")
    ):
        return Artifact.Kind.TEST
    if name.lower().endswith((".md", ".rst", ".txt")):
        return Artifact.Kind.DOC
    return Artifact.Kind.CODE


def pytest_counts(output: str) -> tuple[int, int]:
    """(passed, failed + errors) from pytest's summary line."""

    def count(word: str) -> int:
        found = re.findall(rf"(\d+) {word}", output)
        return int(found[-1]) if found else 0

    return count("passed"), count("failed") + count("errors?")


# --- files on disk ----------------------------------------------------------------------------


def workspace_dir(*, schema_name: str, task_id: uuid.UUID) -> Path:
    return Path(settings.AGENTS_WORKSPACE_ROOT) / schema_name / str(task_id)


def _file_write(root: Path, path: str, content: str) -> None:
    """Write ``root/path`` (``path`` already checked), never following a symlink."""
    target = root / path_check(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not target.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{path} leaves {root}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class _Run:
    tenant: Tenant
    task: DevelopmentTask
    backend: ModelBackend
    schema_name: str
    max_tokens: int
    temperature: float
    files: dict[str, str] = field(default_factory=dict)
    plan: dict[str, list[Any]] = field(default_factory=dict)
    design: str = ""
    #: The task's one conversation: the system prompt, the worked example, then each step's
    #: request and answer (``ask``).
    conversation: list[Message] = field(
        default_factory=lambda: [{"role": "system", "content": SYSTEM_PROMPT}, *EXAMPLE]
    )
    last_cancel_check: float = 0.0
    last_heartbeat: float = 0.0

    # events, progress, heartbeat, cancellation

    def event(self, type: str, **data: Any) -> None:
        task_event_append(task=self.task, type=type, data=data)

    def progress(self, value: int) -> None:
        DevelopmentTask.objects.filter(id=self.task.id).update(progress=value, heartbeat_at=timezone.now())
        self.task.progress = value
        self.event("progress", progress=value)

    def cancel_check(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_cancel_check < CANCEL_CHECK_SECONDS:
            return
        self.last_cancel_check = now
        if now - self.last_heartbeat >= HEARTBEAT_SECONDS:
            self.last_heartbeat = now
            DevelopmentTask.objects.filter(id=self.task.id).update(heartbeat_at=timezone.now())
        if DevelopmentTask.objects.filter(id=self.task.id, cancel_requested=True).exists():
            raise TaskCancelled()

    # steps

    def step_start(self, name: str, *, attempt: int = 1, prompt: str = "") -> TaskStep:
        self.cancel_check(force=True)
        step = TaskStep.objects.create(task=self.task, name=name, attempt=attempt, prompt=prompt)
        self.event("step", step=name, attempt=attempt, step_id=step.id, status=TaskStep.Status.RUNNING)
        return step

    def step_finish(self, step: TaskStep, status: str, *, error: str = "", started: float) -> None:
        step.status = status
        step.error = error
        step.duration_ms = int((time.perf_counter() - started) * 1000)
        step.finished_at = timezone.now()
        step.save()
        agent_tokens_used(tokens_in=step.tokens_in or 0, tokens_out=step.tokens_out or 0)
        self.event(
            "step",
            step=step.name,
            attempt=step.attempt,
            status=status,
            error=error,
            tokens_in=step.tokens_in,
            tokens_out=step.tokens_out,
            duration_ms=step.duration_ms,
        )

    def ask(
        self, name: str, request: str, *, attempt: int = 1, until: Callable[[str], bool] | None = None
    ) -> str:
        """Append ``request`` to the task's conversation, the model's answer to it, and return the
        answer: the next step's prompt extends this one, which a prompt cache reads no more."""
        self.conversation.append({"role": "user", "content": request})
        answer = self.model_call(name, list(self.conversation), attempt=attempt, until=until)
        self.conversation.append({"role": "assistant", "content": answer})
        return answer

    def model_call(
        self,
        name: str,
        messages: list[Message],
        *,
        attempt: int = 1,
        until: Callable[[str], bool] | None = None,
    ) -> str:
        """One model call as one recorded step, counted as one ``ai_requests``. With ``until``,
        the answer ends (the stream is closed) as soon as ``until(answer so far)`` holds."""
        started = time.perf_counter()
        step = self.step_start(name, attempt=attempt, prompt=_prompt_text(messages))
        try:
            usage_record(tenant=self.tenant, metric=Resource.AI_REQUESTS, quantity=1)
        except UsageLimitReached as exc:
            self.step_finish(step, TaskStep.Status.FAILED, error="quota_exceeded", started=started)
            raise TaskFailed("quota_exceeded", "the plan's AI requests for this period are used up") from exc
        parts: list[str] = []
        pending: list[str] = []
        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal last_flush
            if pending:
                self.event(
                    "tokens", step=name, attempt=attempt, text="".join(pending), tokens_out=step.tokens_out
                )
                pending.clear()
            last_flush = time.monotonic()

        try:
            max_tokens = min(self.max_tokens, STEP_MAX_TOKENS.get(name, self.max_tokens))
            stream = self.backend.stream(messages, max_tokens=max_tokens, temperature=self.temperature)
            for chunk in stream:
                parts.append(chunk.text)
                pending.append(chunk.text)
                step.tokens_in, step.tokens_out = chunk.tokens_in, chunk.tokens_out
                if (
                    sum(map(len, pending)) >= TOKEN_EVENT_CHARS
                    or time.monotonic() - last_flush >= TOKEN_EVENT_SECONDS
                ):
                    flush()
                self.cancel_check()
                if until is not None and until("".join(parts)):
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()
                    break
            flush()
        except TaskCancelled:
            step.output = "".join(parts)
            self.step_finish(step, TaskStep.Status.CANCELLED, started=started)
            raise
        except Exception as exc:
            step.output = "".join(parts)
            self.step_finish(
                step, TaskStep.Status.FAILED, error=f"{type(exc).__name__}: {exc}", started=started
            )
            raise TaskFailed("model_error", f"{type(exc).__name__}: {exc}") from exc
        step.output = "".join(parts)
        self.step_finish(step, TaskStep.Status.COMPLETED, started=started)
        return step.output

    # artifacts

    def files_take(self, text: str, *, step_name: str, attempt: int = 1) -> list[str]:
        parsed = files_parse(text)
        for path, why in parsed.refused:
            self.event("file_refused", step=step_name, attempt=attempt, path=path, reason=why)
        if parsed.refused:
            TaskStep.objects.filter(task=self.task, name=step_name, attempt=attempt).update(
                error="refused paths: " + "; ".join(f"{p} ({why})" for p, why in parsed.refused)
            )
        for path, content in parsed.files.items():
            self.artifact_save(path, content)
        return list(parsed.files)

    def artifact_save(self, path: str, content: str, kind: str | None = None) -> None:
        self.files[path] = content
        Artifact.objects.update_or_create(
            task=self.task,
            path=path,
            defaults={"kind": kind or artifact_kind(path), "content": content, "size": len(content.encode())},
        )
        _file_write(workspace_dir(schema_name=self.schema_name, task_id=self.task.id), path, content)
        self.event("artifact", path=path, size=len(content.encode()))


def _prompt_text(messages: list[Message]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def _task_brief(task: DevelopmentTask) -> str:
    """The task in the shape of ``EXAMPLE``'s: ``Task: <title>``, then what else the user wrote."""
    parts = [f"Task: {task.title}"]
    if task.description and task.description != task.title:
        parts.append(task.description)
    if task.requirements:
        parts.append("Requirements:\n" + "\n".join(f"- {r}" for r in task.requirements))
    return "\n\n".join(parts)


def _analysis(run: _Run) -> None:
    answer = run.ask("analysis", f"{_task_brief(run.task)}\n\n{PLAN_REQUEST}")
    try:
        run.plan = plan_parse(answer)
    except ValueError as first:
        answer = run.ask("analysis_repair", f"That was not a valid plan ({first}). {PLAN_FORMAT}", attempt=2)
        try:
            run.plan = plan_parse(answer)
        except ValueError as second:
            raise TaskFailed(
                "analysis_invalid_json", f"no valid JSON plan after one repair request ({second})"
            ) from second
    DevelopmentTask.objects.filter(id=run.task.id).update(quality={"plan": run.plan})
    run.progress(PROGRESS["analysis"])


def _architecture(run: _Run) -> None:
    run.design = run.ask("architecture", "Describe the design in one sentence.")
    run.progress(PROGRESS["architecture"])


def _implementation(run: _Run) -> None:
    answer = run.ask("implementation", "Write the code.")
    if not run.files_take(answer, step_name="implementation"):
        raise TaskFailed("implementation_no_files", "the model's answer held no acceptable file")
    run.progress(PROGRESS["implementation"])


def _tests(run: _Run) -> None:
    cases = "; ".join(str(case) for case in run.plan.get("test_cases", []))
    request = f"Write the pytest tests, checking: {cases}" if cases else "Write the pytest tests."
    answer = run.ask("tests", request)
    written = run.files_take(answer, step_name="tests")
    if not any(artifact_kind(p) == Artifact.Kind.TEST for p in written):
        raise TaskFailed("tests_no_files", "the model's answer held no acceptable test file")
    run.progress(PROGRESS["tests"])


@dataclass
class Validation:
    passed: bool
    exit_code: int
    output: str
    tests_passed: int
    tests_failed: int
    lint_findings: int | None
    compile_errors: list[str]
    #: Seconds spent inside ``sandbox_run`` (ruff and pytest, sandbox start-up included): what
    #: the validation step costs beyond the pipeline's own work (``bench/agents.py`` reads it).
    sandbox_seconds: float = 0.0


def _compile_errors(files: dict[str, str]) -> list[str]:
    """Syntax errors of the Python files; ``compile`` builds code objects, it runs nothing."""
    errors = []
    for path, content in sorted(files.items()):
        if not path.endswith(".py"):
            continue
        try:
            compile(content, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            errors.append(f"{path}: {type(exc).__name__}: {exc}")
    return errors


def files_validate(files: dict[str, str], *, label: str) -> Validation:
    """Compile, lint (ruff) and test (pytest) ``files`` in a fresh run folder, ruff and pytest
    inside the sandbox. Raises ``SandboxUnavailable`` rather than run anything unsandboxed."""
    sandbox_check()
    runs = Path(settings.AGENTS_WORKSPACE_ROOT) / ".runs"
    runs.mkdir(parents=True, exist_ok=True, mode=0o700)
    run_dir = runs / f"{label}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(mode=0o700)
    try:
        for path, content in files.items():
            _file_write(run_dir, path, content)
        compile_errors = _compile_errors(files)
        sandbox_started = time.perf_counter()
        lint = sandbox_run(
            ["ruff", "check", "--isolated", "--no-cache", "--output-format", "json", "."],
            run_dir=run_dir,
            limits=VALIDATION_LIMITS,
        )
        try:
            lint_findings: int | None = len(json.loads(lint.stdout or b"[]"))
        except (json.JSONDecodeError, TypeError):
            lint_findings = None
        result = sandbox_run(
            ["python", "-m", "pytest", "-q", "--tb=short", "-p", "no:cacheprovider"],
            run_dir=run_dir,
            limits=VALIDATION_LIMITS,
        )
        sandbox_seconds = time.perf_counter() - sandbox_started
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    output = (result.stdout + result.stderr).decode(errors="replace")
    if result.killed_reason:
        output += f"\n[killed by the sandbox: {result.killed_reason}]"
    if compile_errors:
        output = "Compile errors:\n" + "\n".join(compile_errors) + "\n\n" + output
    passed, failed = pytest_counts(output)
    return Validation(
        passed=result.ok and not compile_errors and passed > 0,
        exit_code=result.exit_code,
        output=output,
        tests_passed=passed,
        tests_failed=failed,
        lint_findings=lint_findings,
        compile_errors=compile_errors,
        sandbox_seconds=sandbox_seconds,
    )


def _validation_and_fixes(run: _Run) -> Validation:
    validation: Validation | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if validation is not None:
            answer = run.ask(
                "fix",
                f"`pytest -q --tb=short` exited with code {validation.exit_code}. "
                f"The end of its output:\n{validation.output[-FEEDBACK_CHARS:]}\n\n"
                "Write every file that must change, corrected.",
                attempt=attempt,
            )
            run.files_take(answer, step_name="fix", attempt=attempt)
        started = time.perf_counter()
        step = run.step_start(
            "validation",
            attempt=attempt,
            prompt="compile; ruff check; python -m pytest -q --tb=short (sandboxed)",
        )
        DevelopmentTask.objects.filter(id=run.task.id).update(attempts=attempt)
        try:
            validation = files_validate(run.files, label=f"{run.task.id}-{attempt}")
        except SandboxUnavailable as exc:
            run.step_finish(
                step, TaskStep.Status.FAILED, error=f"sandbox_unavailable: {exc.reason}", started=started
            )
            raise TaskFailed("sandbox_unavailable", exc.reason) from exc
        step.output = validation.output[-20_000:]
        verdict = "passed" if validation.passed else f"failed (exit code {validation.exit_code})"
        run.step_finish(
            step,
            TaskStep.Status.COMPLETED if validation.passed else TaskStep.Status.FAILED,
            error="" if validation.passed else f"tests {verdict}",
            started=started,
        )
        run.event(
            "validation",
            attempt=attempt,
            passed=validation.passed,
            tests_passed=validation.tests_passed,
            tests_failed=validation.tests_failed,
            lint_findings=validation.lint_findings,
            sandbox_ms=round(validation.sandbox_seconds * 1000, 1),
        )
        if validation.passed:
            break
    if validation is None:  # MAX_ATTEMPTS < 1
        raise TaskFailed("no_validation", "no validation attempt was made")
    return validation


def _quality(validation: Validation, attempts: int, plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "tests_passed": validation.tests_passed,
        "tests_failed": validation.tests_failed,
        "lint_findings": validation.lint_findings,
        "coverage": None,  # coverage.py is not installed in the sandbox's environment
        "attempts": attempts,
        "plan": plan,
    }


def _documentation(run: _Run) -> None:
    # Ends at the first whole fenced block: a small model tends to repeat it until max_tokens.
    answer = run.ask(
        "documentation",
        "Write README.md: what the code does and how to run the tests.",
        until=lambda text: bool(_FENCED_BLOCK_END.search(text)),
    )
    fenced = files_parse(answer).files
    readme = fenced.get("README.md") or answer
    run.artifact_save("README.md", readme if readme.endswith("\n") else readme + "\n", kind=Artifact.Kind.DOC)
    run.progress(PROGRESS["documentation"])


def _finish(
    task: DevelopmentTask, status: str, *, error: str = "", passed_for: Tenant | None = None, **extra: Any
) -> None:
    """``passed_for``: the tenant of a task completed with its validation passed, whose journey
    step (``agents.journey``) is ticked in the transaction that marks it completed."""
    values: dict[str, Any] = {"status": status, "error": error, "completed_at": timezone.now(), **extra}
    with transaction.atomic():
        # The end of a task is written durably, whatever the run's commits (_run_commits_async).
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO on")
        DevelopmentTask.objects.filter(id=task.id).update(**values)
        task.refresh_from_db()
        task_event_append(
            task=task, type="done", data={"status": status, "error": error, "progress": task.progress}
        )
        if passed_for is not None:
            agent_task_passed_report(tenant=passed_for, task=task)
    agent_task_ended(status=status, started_at=task.started_at, completed_at=task.completed_at)


@contextmanager
def _run_commits_async() -> Iterator[None]:
    """The run's own writes (steps, events, progress, artifacts: a few dozen statements per task,
    each committed at once so that it can be followed) commit without waiting for the WAL flush
    (``synchronous_commit = off`` for this session, put back afterwards). The flush took 0.6 to 1.3
    ms per commit here against 0.1 ms for the statement: about half of the pipeline's own time
    (``bench/agents.py``). A PostgreSQL crash can lose the last few hundred milliseconds of them,
    never corrupt anything; the task's end (``_finish``) is written durably, and a task whose
    progress was lost looks lost and is swept like one (``tasks_lost_sweep``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('synchronous_commit'), set_config('synchronous_commit', 'off', false)"
        )
        row = cursor.fetchone()
    previous = str(row[0]) if row else "on"
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('synchronous_commit', %s, false)", [previous])
        except DatabaseError:  # the connection broke; a new one starts with the server's default
            logger.warning("synchronous_commit not restored", exc_info=True)


def backend_build(agent: Agent) -> ModelBackend:
    factory: Callable[[Agent], ModelBackend] = import_string(settings.AGENTS_BACKEND_FACTORY)
    return factory(agent)


def task_execute(
    *, tenant: Tenant, task: DevelopmentTask, backend: ModelBackend | None = None
) -> DevelopmentTask:
    """Run the pipeline for ``task`` (claimed: ``in_progress``) to its end; returns it finished.

    ``backend`` defaults to the one the ``AGENTS_BACKEND_FACTORY`` builds from the task's agent.
    """
    schema_name: str = connection.schema_name  # type: ignore[attr-defined]
    parameters = task.agent.parameters or {}
    try:
        if backend is None:
            backend = backend_build(task.agent)
        sandbox_check()  # refuse before spending model calls when nothing could be validated
    except SandboxUnavailable as exc:
        _finish(task, DevelopmentTask.Status.FAILED, error=f"sandbox_unavailable: {exc.reason}")
        return task
    except Exception as exc:
        _finish(task, DevelopmentTask.Status.FAILED, error=f"backend_unavailable: {exc}")
        return task
    run = _Run(
        tenant=tenant,
        task=task,
        backend=backend.session(),  # one conversation per task: its prompt cache, if any
        schema_name=schema_name,
        max_tokens=int(parameters.get("max_tokens", DEFAULT_MAX_TOKENS)),
        temperature=float(parameters.get("temperature", 0.0)),
        last_heartbeat=time.monotonic(),
    )
    with _run_commits_async():
        _run_steps(run, task)
    return task


def _run_steps(run: _Run, task: DevelopmentTask) -> None:
    validation: Validation | None = None
    try:
        _analysis(run)
        _architecture(run)
        _implementation(run)
        _tests(run)
        validation = _validation_and_fixes(run)
        attempts = DevelopmentTask.objects.values_list("attempts", flat=True).get(id=task.id)
        quality = _quality(validation, attempts, run.plan)
        DevelopmentTask.objects.filter(id=task.id).update(quality=quality)
        if not validation.passed:
            raise TaskFailed(
                "tests_failed",
                f"the tests still fail after {attempts} attempts "
                f"({validation.tests_failed} failed, exit code {validation.exit_code})",
            )
        run.progress(PROGRESS["validation"])
        _documentation(run)
        run.cancel_check(force=True)
        _finish(task, DevelopmentTask.Status.COMPLETED, progress=100, passed_for=run.tenant)
    except TaskCancelled:
        _finish(task, DevelopmentTask.Status.CANCELLED)
    except TaskFailed as exc:
        _finish(task, DevelopmentTask.Status.FAILED, error=exc.reason)
    except Exception as exc:  # never leave a task in progress
        logger.exception("development task %s failed", task.id)
        _finish(task, DevelopmentTask.Status.FAILED, error=f"internal_error: {type(exc).__name__}: {exc}")


# --- claiming and sweeping (the worker's side of the queue) -----------------------------------


def concurrent_limit(tenant: Tenant) -> int:
    return limits_for(tenant.plan).agent_tasks_concurrent


def task_claim(*, tenant: Tenant) -> DevelopmentTask | None:
    """Move the tenant's oldest queued task to ``in_progress`` if the plan has a free slot.

    The tenant's row is locked while counting, so two workers cannot both take the last slot;
    ``skip_locked`` keeps a task another transaction is changing (a cancel) out of the claim.
    """
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(id=tenant.id).first()
        running = DevelopmentTask.objects.filter(status=DevelopmentTask.Status.IN_PROGRESS).count()
        if running >= concurrent_limit(tenant):
            return None
        task = (
            DevelopmentTask.objects.select_for_update(skip_locked=True)
            .filter(status=DevelopmentTask.Status.QUEUED)
            .order_by("created_at", "id")
            .first()
        )
        if task is None:
            return None
        now = timezone.now()
        task.status = DevelopmentTask.Status.IN_PROGRESS
        task.started_at = task.started_at or now
        task.heartbeat_at = now
        task.runs += 1
        task.save(update_fields=["status", "started_at", "heartbeat_at", "runs"])
        task_event_append(task=task, type="status", data={"status": task.status, "run": task.runs})
        return task


def tasks_startable(*, tenant: Tenant) -> list[uuid.UUID]:
    """Queued tasks that free slots could start now, oldest first (one message each)."""
    running = DevelopmentTask.objects.filter(status=DevelopmentTask.Status.IN_PROGRESS).count()
    free = max(0, concurrent_limit(tenant) - running)
    queued = DevelopmentTask.objects.filter(status=DevelopmentTask.Status.QUEUED).order_by("created_at", "id")
    return list(queued.values_list("id", flat=True)[:free])


def tasks_lost_sweep(*, now: datetime | None = None) -> list[uuid.UUID]:
    """Tasks in progress whose heartbeat is older than ``AGENTS_HEARTBEAT_TIMEOUT``: requeued
    once (their worker died; a redelivered message or the next dispatch runs them again), failed
    with ``worker_lost`` the second time. Returns the requeued ids."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.AGENTS_HEARTBEAT_TIMEOUT)
    requeued: list[uuid.UUID] = []
    with transaction.atomic():
        stale = DevelopmentTask.objects.select_for_update(skip_locked=True).filter(
            status=DevelopmentTask.Status.IN_PROGRESS, heartbeat_at__lt=cutoff
        )
        for task in stale:
            if task.runs < 2 and not task.cancel_requested:
                task.status = DevelopmentTask.Status.QUEUED
                task.progress = 0
                task.attempts = 0
                task.save(update_fields=["status", "progress", "attempts"])
                task_event_append(
                    task=task, type="status", data={"status": task.status, "reason": "worker_lost"}
                )
                requeued.append(task.id)
            else:
                status = (
                    DevelopmentTask.Status.CANCELLED
                    if task.cancel_requested
                    else DevelopmentTask.Status.FAILED
                )
                error = "" if task.cancel_requested else "worker_lost: the worker stopped sending heartbeats"
                _finish(task, status, error=error)
    return requeued
