"""The admin console's sign-in form: password, then a code from the staff member's TOTP device.

The console's sign-in view (routed before the admin's own URLs) puts it under the same sign-in
lock as every other sign-in; a wrong code is reported as a failed sign-in."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.signals import user_login_failed
from django.db.models.fields import BLANK_CHOICE_DASH
from django_otp.admin import OTPAdminAuthenticationForm
from django_otp.plugins.otp_totp.models import TOTPDevice


class PlatformOTPAuthenticationForm(OTPAdminAuthenticationForm):
    """django-otp's admin form, limited to TOTP devices: the other device types (email, static)
    have tables in tenant schemas only, so listing them on the public host would fail. A staff
    member with a single device need not pick it from the list."""

    @staticmethod
    def device_choices(user: Any) -> list[tuple[str, str]]:
        devices = TOTPDevice.objects.devices_for_user(user, confirmed=True)
        return [*BLANK_CHOICE_DASH, *((d.persistent_id, d.name) for d in devices)]

    def clean_otp(self, user: Any) -> None:
        try:
            super().clean_otp(user)
        except forms.ValidationError:
            if user is not None and self.cleaned_data.get("otp_token"):
                # A wrong (or throttled) code is a failed sign-in like a wrong password: Django's
                # own signal, so the sign-in lock counts it (accounts.services.throttle).
                user_login_failed.send(
                    sender=type(self), credentials={"username": user.get_username()}, request=self.request
                )
            raise

    def _chosen_device(self, user: Any) -> Any:
        device = super()._chosen_device(user)
        if device is None:
            # Called inside clean_otp's transaction: lock the row like for_verify=True does.
            devices = list(TOTPDevice.objects.devices_for_user(user, confirmed=True).select_for_update()[:2])
            if len(devices) == 1:
                device = devices[0]
        return device
