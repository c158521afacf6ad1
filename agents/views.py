"""Tenant pages: the dashboard (projects, latest tasks, usage against the plan) and the
development tasks (list, new task form, a task's live page)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.permissions import role_required
from agents import selectors, services
from agents.artifacts import artifacts_zip, highlight_html
from agents.forms import STATUS_FOR_ACTION, ProjectActionForm, ProjectForm, TaskForm
from agents.journey import agent_code_downloaded_report
from agents.models import DevelopmentTask, Project
from leanvibe.errors import DomainError
from leanvibe.parsing import InvalidValue, parse_int
from tenants.usage import usage_for


def _dashboard(request: HttpRequest, form: ProjectForm | None = None, status: int = 200) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    projects = list(selectors.project_list())
    context = {
        "active_projects": [p for p in projects if p.status == Project.Status.ACTIVE],
        "archived_projects": [p for p in projects if p.status == Project.Status.ARCHIVED],
        "usage": usage_for(tenant),
        "form": form or ProjectForm(),
        "latest_tasks": list(selectors.task_list()[:5]),
    }
    return render(request, "agents/dashboard.html", context, status=status)


@role_required(Role.MEMBER)
def dashboard(request: HttpRequest) -> HttpResponse:
    return _dashboard(request)


@role_required(Role.MEMBER)
@require_POST
def project_create_view(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST)
    if form.is_valid():
        try:
            project = services.project_create(tenant=request.tenant, **form.cleaned_data)  # type: ignore[attr-defined]
        except DomainError as exc:
            form.add_error("name" if exc.code == "project_exists" else None, exc.detail)
        else:
            messages.success(request, f"Project “{project.name}” created.")
            return redirect("dashboard")
    return _dashboard(request, form, status=400)


@role_required(Role.MEMBER)
@require_POST
def project_update_view(request: HttpRequest, project_id: uuid.UUID) -> HttpResponse:
    project = selectors.project_get(project_id)
    if project is None:
        raise Http404("Project not found")
    form = ProjectActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(m) for errs in form.errors.values() for m in errs))
        return redirect("dashboard")
    action = form.cleaned_data["action"]
    name = project.name
    try:
        if action == "delete":
            services.project_delete(project=project)
            messages.success(request, f"Project “{name}” deleted.")
        elif action == "rename":
            services.project_update(project=project, name=form.cleaned_data["name"])
            messages.success(request, f"Renamed “{name}” to “{project.name}”.")
        else:
            services.project_update(project=project, status=STATUS_FOR_ACTION[action])
            done = "archived" if action == "archive" else "restored"
            messages.success(request, f"Project “{name}” {done}.")
    except DomainError as exc:
        messages.error(request, exc.detail)
    return redirect("dashboard")


# --- development tasks ---------------------------------------------------------------------------


def _task_or_404(task_id: uuid.UUID) -> DevelopmentTask:
    task = selectors.task_get(task_id)
    if task is None:
        raise Http404("Task not found")
    return task


@role_required(Role.MEMBER)
def task_list_view(request: HttpRequest) -> HttpResponse:
    status_filter = request.GET.get("status") or None
    if status_filter not in (None, *DevelopmentTask.Status.values):
        status_filter = None
    tasks = selectors.task_list(status=status_filter)[:200]
    context = {"tasks": tasks, "status_filter": status_filter, "statuses": DevelopmentTask.Status.choices}
    return render(request, "agents/tasks.html", context)


@role_required(Role.MEMBER)
def task_create_view(request: HttpRequest) -> HttpResponse:
    projects = list(selectors.project_list(status=Project.Status.ACTIVE))
    form = TaskForm(request.POST or None, projects=projects)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        project = selectors.project_get(data["project"]) if data["project"] else None
        try:
            task = services.task_create(
                tenant=request.tenant,  # type: ignore[attr-defined]
                title=data["title"],
                description=data["description"],
                requirements=data["requirements"],
                priority=data["priority"],
                project=project,
                created_by=request.user,  # type: ignore[arg-type]
            )
        except DomainError as exc:
            field = {"invalid_requirements": "requirements", "project_not_found": "project"}.get(exc.code)
            form.add_error(field, exc.detail)
        else:
            messages.success(request, f"Task “{task.title}” queued.")
            return redirect("task-detail", task_id=task.id)
    status = 400 if request.method == "POST" else 200
    return render(request, "agents/task_new.html", {"form": form}, status=status)


@role_required(Role.MEMBER)
def task_detail_view(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    task = _task_or_404(task_id)
    steps = list(selectors.task_steps(task=task))
    files = [
        {"path": a.path, "kind": a.kind, "html": highlight_html(a.path, a.content)}
        for a in selectors.task_artifacts(task=task)
    ]
    output = "\n".join(f"── {s.name} ──\n{s.output}" for s in steps if s.output)
    context = {
        "task": task,
        "steps": steps,
        "files": files,
        "output": output,
        "quality": task.quality if task.status == DevelopmentTask.Status.COMPLETED else None,
        "last_seq": selectors.task_last_seq(task=task),
        "can_cancel": services.task_cancel_allowed(task=task, user=request.user),
    }
    return render(request, "agents/task_detail.html", context)


@role_required(Role.MEMBER)
def task_events_view(request: HttpRequest, task_id: uuid.UUID) -> JsonResponse:
    """The task page's feed: the API's JSON page of events (``?after=``), for the signed-in
    member's session (the API takes bearer tokens only)."""
    task = _task_or_404(task_id)
    try:
        after = parse_int(request.GET.get("after", "0"), low=0, high=2**31 - 1)
    except InvalidValue as exc:
        return JsonResponse({"error": "validation_error", "detail": f"after: {exc}"}, status=400)
    page = selectors.task_events_page(task=task, after=after)
    events = [{"seq": e.seq, "type": e.type, "data": e.data, "ts": e.ts.isoformat()} for e in page.events]
    progress = DevelopmentTask.objects.filter(id=task.id).values_list("progress", "status").first()
    return JsonResponse(
        {
            "events": events,
            "next": page.next,
            "done": page.done,
            "progress_percentage": progress[0] if progress else 0,
            "status": progress[1] if progress else task.status,
        }
    )


@role_required(Role.MEMBER)
@require_POST
def task_cancel_view(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    task = _task_or_404(task_id)
    if task.is_finished:
        messages.error(request, f"The task is already {task.get_status_display().lower()}.")
    elif not services.task_cancel_allowed(task=task, user=request.user):
        messages.error(request, "Only the member who created the task or an admin can cancel it.")
    else:
        services.task_cancel(task=task, by=request.user)
        messages.success(request, "Cancellation requested." if not task.is_finished else "Task cancelled.")
    return redirect("task-detail", task_id=task.id)


@role_required(Role.MEMBER)
def task_download_view(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    task = _task_or_404(task_id)
    if task.status != DevelopmentTask.Status.COMPLETED:
        messages.error(request, "The code can be downloaded once the task is completed.")
        return redirect("task-detail", task_id=task.id)
    response = HttpResponse(artifacts_zip(task), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="task-{task.id}.zip"'
    agent_code_downloaded_report(tenant=request.tenant, task=task)  # type: ignore[attr-defined]
    return response
