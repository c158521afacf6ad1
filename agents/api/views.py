"""Projects API: ``/api/v1/projects`` and ``/api/v1/projects/{id}``."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors, services
from agents.models import Project
from leanvibe.api.base import StrictSerializer, TenantAPIView
from leanvibe.errors import DomainError


class ProjectOutput(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "status", "created_at", "updated_at"]


class ProjectCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=100, trim_whitespace=True)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ProjectUpdateInput(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, trim_whitespace=True)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=[Project.Status.ACTIVE, Project.Status.ARCHIVED], required=False)


def _project_or_404(project_id: str) -> Project:
    project = selectors.project_get(project_id)
    if project is None:
        raise DomainError("not_found", "Project not found.", status=404)
    return project


class ProjectListApi(TenantAPIView):
    def get(self, request: Request) -> Response:
        status_filter = request.query_params.get("status")
        if status_filter not in (None, Project.Status.ACTIVE, Project.Status.ARCHIVED):
            raise DomainError("invalid_filter", "status must be 'active' or 'archived'.", status=400)
        projects = selectors.project_list(status=status_filter)
        return Response({"results": ProjectOutput(projects, many=True).data})

    def post(self, request: Request) -> Response:
        data = ProjectCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(tenant=request.tenant, **data.validated_data)  # type: ignore[attr-defined]
        return Response(ProjectOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(TenantAPIView):
    def get(self, request: Request, project_id: str) -> Response:
        return Response(ProjectOutput(_project_or_404(project_id)).data)

    def patch(self, request: Request, project_id: str) -> Response:
        project = _project_or_404(project_id)
        data = ProjectUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_update(project=project, **data.validated_data)
        return Response(ProjectOutput(project).data)

    def delete(self, request: Request, project_id: str) -> Response:
        services.project_delete(project=_project_or_404(project_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
