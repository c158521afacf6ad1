"""API routes shared by the public and tenant URL configurations."""

from django.urls import include, path

from agents.api.views import ProjectDetailApi, ProjectListApi
from tenants.api.views import (
    TenantDetailApi,
    TenantListCreateApi,
    TenantResumeApi,
    TenantSuspendApi,
    UsageApi,
)

urlpatterns = [
    path("", include("accounts.api.urls")),
    path("tenants", TenantListCreateApi.as_view(), name="api-tenants"),
    path("tenants/<str:tenant_id>", TenantDetailApi.as_view(), name="api-tenant"),
    path("tenants/<str:tenant_id>/suspend", TenantSuspendApi.as_view(), name="api-tenant-suspend"),
    path("tenants/<str:tenant_id>/resume", TenantResumeApi.as_view(), name="api-tenant-resume"),
    path("projects", ProjectListApi.as_view(), name="api-projects"),
    path("projects/<str:project_id>", ProjectDetailApi.as_view(), name="api-project"),
    path("usage", UsageApi.as_view(), name="api-usage"),
    path("billing/", include("billing.api.urls")),
]
