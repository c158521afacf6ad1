"""Development tasks API: ``/api/v1/tasks``, a task, its status, code, download, cancellation and
events, and ``/api/v1/analytics/ai-productivity``.

The events endpoint answers ``Accept: text/event-stream`` with server-sent events: the response
is a ``StreamingHttpResponse`` over an async iterator (``agents.api.streams``), so under the ASGI
worker no thread is held while the stream waits on Redis. Access rules stay those of
``TenantAPIView``: the sync view authenticates and finds the task, then hands the stream over.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework import serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors, services
from agents.api.streams import event_stream
from agents.artifacts import artifacts_zip
from agents.journey import agent_code_downloaded_report
from agents.models import DevelopmentTask, TaskEvent, TaskStep
from leanvibe.api.base import StrictSerializer, TenantAPIView
from leanvibe.errors import DomainError
from leanvibe.parsing import InvalidValue, bad_parameter, parse_int

SEQ_MAX = 2**31 - 1


class TaskOutput(serializers.ModelSerializer):
    progress_percentage = serializers.IntegerField(source="progress")
    project_id = serializers.UUIDField(allow_null=True)
    agent = serializers.CharField(source="agent.name")

    class Meta:
        model = DevelopmentTask
        fields = [
            "id",
            "title",
            "description",
            "requirements",
            "priority",
            "status",
            "progress_percentage",
            "created_at",
            "started_at",
            "completed_at",
            "error",
            "attempts",
            "project_id",
            "agent",
        ]


class StepOutput(serializers.ModelSerializer):
    class Meta:
        model = TaskStep
        fields = ["name", "status", "attempt", "tokens_in", "tokens_out", "duration_ms", "error"]


class EventOutput(serializers.ModelSerializer):
    class Meta:
        model = TaskEvent
        fields = ["seq", "type", "data", "ts"]


class TaskCreateInput(StrictSerializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000)
    priority = serializers.ChoiceField(choices=DevelopmentTask.Priority.choices, required=False)
    requirements = serializers.ListField(
        child=serializers.CharField(max_length=services.REQUIREMENT_CHARS),
        max_length=services.REQUIREMENTS_MAX,
        required=False,
    )
    project_id = serializers.UUIDField(required=False, allow_null=True)

    def validate_requirements(self, value: list[Any]) -> list[Any]:
        # ListField's CharField child would turn 42 into "42": texts only.
        if not all(isinstance(item, str) for item in self.initial_data.get("requirements", [])):
            raise serializers.ValidationError("Expected a list of strings.")
        return value

    def validate_project_id(self, value: Any) -> Any:
        # UUIDField would take the integer 7 as a uuid.
        raw = self.initial_data.get("project_id")
        if raw is not None and not isinstance(raw, str):
            raise serializers.ValidationError("Expected a string.")
        return value


def task_or_404(task_id: str) -> DevelopmentTask:
    task = selectors.task_get(task_id)
    if task is None:
        raise DomainError("not_found", "Task not found.", status=404)
    return task


def _not_completed(task: DevelopmentTask) -> DomainError:
    return DomainError(
        "task_not_completed",
        f"The task is {task.status}: its code is ready once it is completed.",
        status=400,
    )


class JsonOnlyNegotiation(BaseContentNegotiation):
    """Errors are always JSON, whatever the client accepts (``text/event-stream``,
    ``application/zip``); the endpoints that answer something else build the response themselves."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, str(renderer.media_type)


class TaskListApi(TenantAPIView):
    def get(self, request: Request) -> Response:
        status_filter = request.query_params.get("status")
        if status_filter is not None and status_filter not in DevelopmentTask.Status.values:
            choices = ", ".join(DevelopmentTask.Status.values)
            raise bad_parameter("status", f"Expected one of {choices}.", code="invalid_filter")
        project_filter = request.query_params.get("project_id")
        project = None
        if project_filter is not None:
            project = selectors.project_get(project_filter)
            if project is None:
                raise DomainError("project_not_found", "The project does not exist.", status=404)
        tasks = selectors.task_list(status=status_filter, project_id=project.id if project else None)
        return Response({"results": TaskOutput(tasks, many=True).data})

    def post(self, request: Request) -> Response:
        data = TaskCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        project_id = values.pop("project_id", None)
        project = None
        if project_id is not None:
            project = selectors.project_get(project_id)
            if project is None:
                raise DomainError("project_not_found", "The project does not exist.", status=404)
        task = services.task_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            project=project,
            created_by=request.user,  # type: ignore[arg-type]
            **values,
        )
        return Response(TaskOutput(task).data, status=status.HTTP_201_CREATED)


class TaskDetailApi(TenantAPIView):
    def get(self, request: Request, task_id: str) -> Response:
        return Response(TaskOutput(task_or_404(task_id)).data)


class TaskStatusApi(TenantAPIView):
    def get(self, request: Request, task_id: str) -> Response:
        task = task_or_404(task_id)
        return Response(
            {
                "status": task.status,
                "progress_percentage": task.progress,
                "steps": StepOutput(selectors.task_steps(task=task), many=True).data,
            }
        )


QUALITY_FIELDS = ("tests_passed", "tests_failed", "lint_findings", "coverage", "attempts")


class TaskCodeApi(TenantAPIView):
    def get(self, request: Request, task_id: str) -> Response:
        task = task_or_404(task_id)
        if task.status != DevelopmentTask.Status.COMPLETED:
            raise _not_completed(task)
        artifacts = selectors.task_artifacts(task=task)
        files = [{"path": a.path, "kind": a.kind, "content": a.content} for a in artifacts]
        quality = {name: task.quality.get(name) for name in QUALITY_FIELDS}
        return Response({"files": files, "quality": quality})


class TaskDownloadApi(TenantAPIView):
    content_negotiation_class = JsonOnlyNegotiation

    def get(self, request: Request, task_id: str) -> HttpResponse:
        task = task_or_404(task_id)
        if task.status != DevelopmentTask.Status.COMPLETED:
            raise _not_completed(task)
        response = HttpResponse(artifacts_zip(task), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="task-{task.id}.zip"'
        agent_code_downloaded_report(tenant=request.tenant, task=task)  # type: ignore[attr-defined]
        return response


class TaskCancelApi(TenantAPIView):
    def post(self, request: Request, task_id: str) -> Response:
        task = task_or_404(task_id)
        if task.is_finished:
            raise DomainError("task_finished", f"The task is already {task.status}.", status=409)
        task = services.task_cancel(task=task, by=request.user)
        if task.is_finished:
            return Response(TaskOutput(task).data, status=status.HTTP_200_OK)
        # In progress: its worker stops within seconds.
        return Response(TaskOutput(task).data, status=status.HTTP_202_ACCEPTED)


def _seq(name: str, raw: str) -> int:
    try:
        return parse_int(raw, low=0, high=SEQ_MAX)
    except InvalidValue as exc:
        raise bad_parameter(name, exc) from exc


class TaskEventsApi(TenantAPIView):
    """JSON pages of events (``?after=<seq>``), or with ``Accept: text/event-stream`` (and no
    ``after``) server-sent events from ``Last-Event-ID`` on, following the task until done."""

    content_negotiation_class = JsonOnlyNegotiation

    def get(self, request: Request, task_id: str) -> Response | StreamingHttpResponse:
        task = task_or_404(task_id)
        after_raw = request.query_params.get("after")
        wants_stream = "text/event-stream" in request.headers.get("Accept", "")
        if after_raw is None and wants_stream:
            last_id = request.headers.get("Last-Event-ID", "").strip()
            after = _seq("Last-Event-ID", last_id) if last_id else 0
            response = StreamingHttpResponse(
                event_stream(schema_name=connection.schema_name, task_id=task.id, after=after),  # type: ignore[attr-defined]
                content_type="text/event-stream",
            )
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            return response
        after = _seq("after", after_raw) if after_raw is not None else 0
        page = selectors.task_events_page(task=task, after=after)
        events = EventOutput(page.events, many=True).data
        return Response({"events": events, "next": page.next, "done": page.done})


class AiProductivityApi(TenantAPIView):
    def get(self, request: Request) -> Response:
        return Response(selectors.ai_productivity())
