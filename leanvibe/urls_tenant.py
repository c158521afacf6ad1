"""A tenant's site: its dashboard and pages, sign-in, and the tenant API."""

from django.urls import include, path

from agents import views as agent_views

urlpatterns = [
    path("", agent_views.dashboard, name="dashboard"),
    path("projects/", agent_views.project_create_view, name="project-create"),
    path("projects/<uuid:project_id>/", agent_views.project_update_view, name="project-update"),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("leanvibe.api.urls")),
]

handler400 = "leanvibe.views.bad_request"
handler403 = "leanvibe.views.permission_denied"
handler404 = "leanvibe.views.not_found"
handler500 = "leanvibe.views.server_error"
