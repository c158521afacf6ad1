"""Tenant dashboard: projects and usage against the plan."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.permissions import role_required
from agents import selectors, services
from agents.forms import STATUS_FOR_ACTION, ProjectActionForm, ProjectForm
from agents.models import Project
from leanvibe.errors import DomainError
from tenants.usage import usage_for


def _dashboard(request: HttpRequest, form: ProjectForm | None = None, status: int = 200) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    projects = list(selectors.project_list())
    context = {
        "active_projects": [p for p in projects if p.status == Project.Status.ACTIVE],
        "archived_projects": [p for p in projects if p.status == Project.Status.ARCHIVED],
        "usage": usage_for(tenant),
        "form": form or ProjectForm(),
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
