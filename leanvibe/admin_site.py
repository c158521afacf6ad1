"""The platform admin console: Django's admin, limited to what lives in the public schema.

The console is served on the public host only, where the connection's schema is ``public``.
Apps that exist only in tenant schemas (allauth, django-otp, agents) register admin classes
of their own; their tables are absent from the public schema, so their pages could only fail.
This site therefore accepts a registration only for models of a shared app.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.db.models import Model
from django.db.models.base import ModelBase
from django.http import HttpRequest
from django_tenants.routers import TenantSyncRouter


def lives_in_public_schema(model: type[Model]) -> bool:
    return TenantSyncRouter().app_in_list(model._meta.app_label, settings.SHARED_APPS)


class PlatformAdminSite(admin.AdminSite):
    """Staff must also pass a verified second factor, as with django-otp's ``OTPAdminSite``: a
    TOTP device of ``django_otp.plugins.otp_totp`` (public schema). A signed-in but unverified
    staff member is treated as not staff and sent to the login form, which asks for the code.
    (``OTPAdminSite`` itself cannot be the base class: this module is imported while apps load,
    before django-otp's admin module can be.)"""

    site_header = "LeanVibe platform console"
    site_title = "LeanVibe console"
    index_title = "Platform administration"
    login_template = "otp/admin111/login.html"

    @property
    def login_form(self) -> Any:  # type: ignore[override]
        from leanvibe.admin_forms import PlatformOTPAuthenticationForm

        return PlatformOTPAuthenticationForm

    def has_permission(self, request: HttpRequest) -> bool:
        # request.user.is_verified comes from django_otp.middleware.OTPMiddleware.
        return super().has_permission(request) and bool(request.user.is_verified())  # type: ignore[union-attr]

    def register(
        self,
        model_or_iterable: type[Model] | Iterable[type[Model]],
        admin_class: type[admin.ModelAdmin[Any]] | None = None,
        **options: Any,
    ) -> None:
        models = [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else model_or_iterable
        public = [model for model in models if lives_in_public_schema(model)]  # type: ignore[union-attr]
        if public:
            super().register(public, admin_class, **options)


class PlatformAdminConfig(AdminConfig):
    default_site = "leanvibe.admin_site.PlatformAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscover: every app's admin module registers its classes
        # Imported here, once apps are loaded (this module is imported while they load).
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from leanvibe.admin_otp import PlatformTOTPDeviceAdmin

        admin.site.unregister(TOTPDevice)
        admin.site.register(TOTPDevice, PlatformTOTPDeviceAdmin)
