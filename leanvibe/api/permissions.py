"""DRF's default permission (``settings.REST_FRAMEWORK``): nothing is served by a view that has
not taken its access rules from a base class of ``leanvibe.api.base``.

A module of its own because DRF reads its defaults while ``rest_framework.views`` is still being
imported: this one must not import that module (``leanvibe.api.base`` does)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission


class DenyAll(BasePermission):
    message = "This endpoint has no access rule."

    def has_permission(self, request: Any, view: Any) -> bool:
        return False

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        return False
