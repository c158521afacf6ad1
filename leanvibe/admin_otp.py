"""django-otp's TOTP device admin, with a 404 for a device that does not exist.

Its ``config`` and ``qrcode`` views call ``TOTPDevice.objects.get(pk=...)`` and let
``DoesNotExist`` through: a 500 for any id that is not a device. ``PlatformAdminConfig.ready``
registers this class in its place.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice


class PlatformTOTPDeviceAdmin(TOTPDeviceAdmin):
    def config_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        get_object_or_404(TOTPDevice, pk=pk)
        return super().config_view(request, pk)  # type: ignore[no-any-return]

    def qrcode_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        get_object_or_404(TOTPDevice, pk=pk)
        return super().qrcode_view(request, pk)  # type: ignore[no-any-return]
