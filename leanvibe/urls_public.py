"""The public site: landing, sign-up, admin console, platform API, metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from leanvibe.views import metrics
from tenants import views as tenant_views

urlpatterns = [
    path("", tenant_views.landing, name="landing"),
    path("signup/", tenant_views.signup, name="signup"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("leanvibe.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("metrics", metrics, name="prometheus-django-metrics"),
]

handler400 = "leanvibe.views.bad_request"
handler403 = "leanvibe.views.permission_denied"
handler404 = "leanvibe.views.not_found"
handler500 = "leanvibe.views.server_error"
