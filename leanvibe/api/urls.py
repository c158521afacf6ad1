"""API routes shared by the public and tenant URL configurations."""

from django.urls import include, path

from agents.api.tasks import (
    AiProductivityApi,
    TaskCancelApi,
    TaskCodeApi,
    TaskDetailApi,
    TaskDownloadApi,
    TaskEventsApi,
    TaskListApi,
    TaskStatusApi,
)
from agents.api.views import ProjectDetailApi, ProjectListApi
from tenants.api.views import (
    TenantDetailApi,
    TenantListCreateApi,
    TenantResumeApi,
    TenantSuspendApi,
    UsageApi,
)
from tenants.journey.api import JourneyApi

urlpatterns = [
    path("", include("accounts.api.urls")),
    path("tenants", TenantListCreateApi.as_view(), name="api-tenants"),
    path("tenants/<str:tenant_id>", TenantDetailApi.as_view(), name="api-tenant"),
    path("tenants/<str:tenant_id>/suspend", TenantSuspendApi.as_view(), name="api-tenant-suspend"),
    path("tenants/<str:tenant_id>/resume", TenantResumeApi.as_view(), name="api-tenant-resume"),
    path("projects", ProjectListApi.as_view(), name="api-projects"),
    path("projects/<str:project_id>", ProjectDetailApi.as_view(), name="api-project"),
    path("tasks", TaskListApi.as_view(), name="api-tasks"),
    path("tasks/<str:task_id>", TaskDetailApi.as_view(), name="api-task"),
    path("tasks/<str:task_id>/status", TaskStatusApi.as_view(), name="api-task-status"),
    path("tasks/<str:task_id>/code", TaskCodeApi.as_view(), name="api-task-code"),
    path("tasks/<str:task_id>/download", TaskDownloadApi.as_view(), name="api-task-download"),
    path("tasks/<str:task_id>/cancel", TaskCancelApi.as_view(), name="api-task-cancel"),
    path("tasks/<str:task_id>/events", TaskEventsApi.as_view(), name="api-task-events"),
    path("analytics/ai-productivity", AiProductivityApi.as_view(), name="api-ai-productivity"),
    path("usage", UsageApi.as_view(), name="api-usage"),
    path("journey", JourneyApi.as_view(), name="api-journey"),
    path("billing/", include("billing.api.urls")),
]
