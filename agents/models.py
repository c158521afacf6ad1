"""Projects live in each tenant's schema."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Lower


class Project(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"
        DELETED = "deleted", "Deleted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=2000)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A deleted project frees its name.
            models.UniqueConstraint(
                Lower("name"),
                condition=~models.Q(status="deleted"),
                name="project_name_unique_while_not_deleted",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "archived", "deleted"]),
                name="project_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    """A coding agent's profile: which model runs it and how. New profiles take the model and
    backend of the settings ``AGENTS_MODEL_PATH`` / ``AGENTS_BACKEND`` (``agent_default_get``)."""

    class Kind(models.TextChoices):
        L3_CODER = "l3_coder", "L3 coder"

    class Backend(models.TextChoices):
        MLX = "mlx", "mlx-lm in the worker"
        HTTP = "http", "OpenAI-compatible server"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.L3_CODER)
    backend = models.CharField(max_length=10, choices=Backend.choices, default=Backend.MLX)
    #: A local model folder (mlx) or the model's name on the server (http).
    model = models.CharField(max_length=500)
    base_url = models.URLField(blank=True)
    #: Generation parameters: ``max_tokens`` (int), ``temperature`` (float).
    parameters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["l3_coder"]), name="agent_kind_valid"),
            models.CheckConstraint(
                condition=models.Q(backend__in=["mlx", "http"]), name="agent_backend_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class DevelopmentTask(models.Model):
    class Priority(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        QUEUED = "queued", "Queued"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(max_length=10_000)
    #: A list of short sentences the code must satisfy.
    requirements = models.JSONField(default=list, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="development_tasks"
    )
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="tasks")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    #: Set by the worker while it runs the task; the sweep fails or requeues a stale one.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    #: The reason of a failure (a code, then a sentence).
    error = models.TextField(blank=True)
    #: Validation attempts of the fix loop (at most 3).
    attempts = models.PositiveSmallIntegerField(default=0)
    #: Times a worker claimed the task (a lost worker's task is requeued once).
    runs = models.PositiveSmallIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    #: The quality report: tests_passed, tests_failed, lint_findings, coverage, attempts.
    quality = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="devtask_status_created")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["pending", "queued", "in_progress", "completed", "failed", "cancelled"]
                ),
                name="devtask_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(priority__in=["low", "medium", "high", "urgent"]),
                name="devtask_priority_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0, progress__lte=100), name="devtask_progress_range"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class TaskStep(models.Model):
    """One step of the pipeline; a step that calls the model records the call."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    task = models.ForeignKey(DevelopmentTask, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=50)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    attempt = models.PositiveSmallIntegerField(default=1)
    prompt = models.TextField(blank=True)
    output = models.TextField(blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        return f"{self.name} #{self.attempt}"


class Artifact(models.Model):
    class Kind(models.TextChoices):
        CODE = "code", "Code"
        TEST = "test", "Test"
        DOC = "doc", "Documentation"

    task = models.ForeignKey(DevelopmentTask, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=255)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    content = models.TextField()
    size = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["task", "path"], name="artifact_task_path_unique"),
            models.CheckConstraint(
                condition=models.Q(kind__in=["code", "test", "doc"]), name="artifact_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.path


class TaskEvent(models.Model):
    """What happened to a task, in order (``seq``), for replay by a late subscriber; the live copy
    is the task's Redis Stream."""

    task = models.ForeignKey(DevelopmentTask, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=30)
    data = models.JSONField(default=dict, blank=True)
    ts = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "seq"]
        constraints = [models.UniqueConstraint(fields=["task", "seq"], name="taskevent_task_seq_unique")]

    def __str__(self) -> str:
        return f"{self.seq} {self.type}"
