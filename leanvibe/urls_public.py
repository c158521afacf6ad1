"""The public site: landing, sign-up, admin console, platform API, metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from accounts.views import login as login_views
from billing.views import pricing_page
from billing.webhooks import stripe_webhook
from leanvibe.views import metrics
from tenants import views as tenant_views

urlpatterns = [
    path("", tenant_views.landing, name="landing"),
    path("signup/", tenant_views.signup, name="signup"),
    path("pricing/", pricing_page, name="pricing"),
    # The console's sign-in, under the same sign-in lock as every other, and its password change,
    # which revokes the staff member's API tokens (both before admin's own URLs).
    path("admin/login/", login_views.console_login_view, name="console-login"),
    path(
        "admin/password_change/",
        login_views.console_password_change_view,
        name="console-password-change",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("leanvibe.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Stripe's webhooks (billing.webhooks: one fixed URL onto dj-stripe's WebhookEndpoint).
    path("stripe/webhook/", stripe_webhook, name="stripe-webhook"),
    path("metrics", metrics, name="prometheus-django-metrics"),
]

handler400 = "leanvibe.views.bad_request"
handler403 = "leanvibe.views.permission_denied"
handler404 = "leanvibe.views.not_found"
handler500 = "leanvibe.views.server_error"
