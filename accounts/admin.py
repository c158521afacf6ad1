"""Platform staff accounts in the admin console.

The console runs on the public host, so the users listed here are the public schema's: platform
staff, never a tenant's members (who live in their tenant's schema). Email is the login;
``username`` and ``role`` mean nothing for staff and are left out.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.http import HttpRequest, HttpResponse

from accounts.emails import email_canonical
from accounts.models import User
from accounts.services.passwords import password_changed_record


class StaffCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        return email_canonical(str(self.cleaned_data["email"]))


class StaffChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = ("email", "password", "full_name", "is_active", "is_staff", "is_superuser")

    def clean_email(self) -> str:
        return email_canonical(str(self.cleaned_data["email"]))


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    form = StaffChangeForm
    add_form = StaffCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "usable_password", "password1", "password2")}),
    )
    readonly_fields = ("last_login", "date_joined")
    list_display = ("email", "full_name", "is_staff", "is_superuser", "is_active", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "full_name")
    ordering = ("email",)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Setting a staff member's password also revokes their API tokens (as every password
        change does: ``accounts.services.passwords``)."""
        target = self.get_object(request, unquote(id))
        before = target.password if target is not None else None
        response = super().user_change_password(request, id, form_url)
        if target is not None and request.method == "POST":
            target.refresh_from_db(fields=["password"])
            if target.password != before:
                actor = request.user if request.user.pk != target.pk else None
                password_changed_record(user=target, via="console", actor=actor, request=request)  # type: ignore[arg-type]
        return response

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting would cascade into tables of tenant-only apps (allauth.mfa, django-otp...) that the
        # public schema does not have; staff leave by being deactivated, which keeps the audit log.
        return False
